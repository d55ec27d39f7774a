"""gitexp push / pull between two clones, a bare git remote and a DVC directory remote."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import dvc, git, gitexp, run_ids


@pytest.fixture
def two_machines(
    project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> tuple[Path, Path]:
    """`project` and a clone of it, sharing a bare git remote and a DVC directory remote."""
    assert gitexp("init", "--remote", str(tmp_path / "dvc-remote")).exit_code == 0
    (project / "data").mkdir()
    (project / "data" / "train.csv").write_text("x,y\n1,2\n")
    dvc(project, "add", "data/train.csv")
    git(project, "add", "-A")
    git(project, "commit", "-q", "-m", "data")
    git(tmp_path, "init", "-q", "--bare", "shared.git")
    git(project, "remote", "add", "origin", str(tmp_path / "shared.git"))
    git(project, "push", "-q", "origin", "main")
    dvc(project, "push")
    other = tmp_path / "other"
    git(tmp_path, "clone", "-q", str(tmp_path / "shared.git"), str(other))
    dvc(other, "pull")
    return project, other


@pytest.mark.slow
def test_runs_from_two_machines_merge_as_a_union(
    two_machines: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    here, there = two_machines
    assert gitexp("run", "--name", "here", "--", sys.executable, "train.py").exit_code == 0
    pushed = gitexp("push")
    assert pushed.exit_code == 0, pushed.stderr
    monkeypatch.chdir(there)
    assert gitexp("run", "--name", "there", "--", sys.executable, "train.py").exit_code == 0
    pulled = gitexp("pull")
    assert pulled.exit_code == 0, pulled.stderr
    assert pulled.stdout.startswith("pulled 1 new runs from origin")
    assert len(run_ids(there)) == 2
    merge = git(there, "log", "-1", "--format=%s%n%P", "gitexp/runs").splitlines()
    assert merge[0] == "gitexp: merge runs recorded elsewhere" and len(merge[1].split()) == 2
    git(there, "fsck", "--strict")
    assert gitexp("push").exit_code == 0
    monkeypatch.chdir(here)
    assert gitexp("pull").exit_code == 0  # a fast-forward
    assert run_ids(here) == run_ids(there)


@pytest.mark.slow
def test_pull_brings_the_artifacts_a_run_made(
    two_machines: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    _, there = two_machines
    assert (
        gitexp(
            "run", "--output", "model.bin", "--", "sh", "-c", "echo weights > model.bin"
        ).exit_code
        == 0
    )
    assert gitexp("push").stdout.endswith("1 new DVC objects\n")
    monkeypatch.chdir(there)
    shutil.rmtree(there / ".dvc" / "cache", ignore_errors=True)
    assert gitexp("pull").exit_code == 0
    restored = gitexp("checkout", "@", "model.bin")
    assert restored.exit_code == 0, restored.stderr
    assert (there / "model.bin").read_text() == "weights\n"


def test_push_without_runs(project: Path) -> None:
    result = gitexp("push")
    assert (result.exit_code, result.stderr) == (
        1,
        "Error: there are no runs to push; record one with `gitexp run -- CMD`\n",
    )


@pytest.mark.slow
def test_a_run_annotated_on_both_machines_keeps_both(
    two_machines: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    here, there = two_machines
    assert gitexp("run", "--", sys.executable, "train.py").exit_code == 0
    assert gitexp("push").exit_code == 0
    (run_id,) = run_ids(here)
    assert gitexp("tag", run_id, "from-here").exit_code == 0
    assert gitexp("push").exit_code == 0
    monkeypatch.chdir(there)
    assert gitexp("pull").exit_code == 0
    assert gitexp("tag", "--remove", run_id, "from-here").exit_code == 0
    assert gitexp("note", run_id, "seen there").exit_code == 0
    monkeypatch.chdir(here)
    assert gitexp("note", run_id, "seen here").exit_code == 0
    assert gitexp("push").exit_code == 0

    monkeypatch.chdir(there)
    pulled = gitexp("pull")

    assert pulled.exit_code == 0, pulled.stderr
    shown = json.loads(gitexp("show", run_id, "--json").stdout)["annotations"]
    assert shown["tags"] == ["from-here"]  # a union: a removal on one side does not win
    assert sorted(note["text"] for note in shown["notes"]) == ["seen here", "seen there"]


@pytest.mark.parametrize("command", ["push", "pull"])
@pytest.mark.parametrize("remote", ["--upload-pack=touch hacked", "--receive-pack=touch hacked"])
def test_a_remote_that_looks_like_an_option_is_refused(
    project: Path, command: str, remote: str
) -> None:
    assert gitexp("run", "--", sys.executable, "train.py").exit_code == 0

    result = gitexp(command, "--", remote)

    assert result.exit_code == 2
    assert result.stderr == (
        f"Error: {remote!r} is not a git remote: give a remote's name (see `git remote -v`), "
        "a URL or a path\n"
    )
    assert not (project / "hacked").exists()


def test_pull_from_a_path_needs_no_remote_name(
    project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    other = tmp_path / "other"
    git(tmp_path, "clone", "-q", str(project), str(other))
    assert gitexp("run", "--", sys.executable, "train.py").exit_code == 0  # after the clone
    monkeypatch.chdir(other)

    result = gitexp("pull", str(project))

    assert result.exit_code == 0, result.stderr
    assert result.stdout.startswith(f"pulled 1 new runs from {project}")
    assert run_ids(other) == run_ids(project)


def test_a_push_behind_the_remote_says_to_pull_first(
    project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    git(tmp_path, "init", "-q", "--bare", "shared.git")
    git(project, "remote", "add", "origin", str(tmp_path / "shared.git"))
    other = tmp_path / "other"
    git(tmp_path, "clone", "-q", str(project), str(other))
    git(other, "remote", "set-url", "origin", str(tmp_path / "shared.git"))
    assert gitexp("run", "--", sys.executable, "train.py").exit_code == 0
    assert gitexp("push").exit_code == 0
    monkeypatch.chdir(other)
    assert gitexp("run", "--", sys.executable, "train.py").exit_code == 0

    refused = gitexp("push")

    assert refused.exit_code == 1
    assert refused.stderr == (
        "Error: origin has runs that this repository lacks; run `gitexp pull origin` first, "
        "then push again\n"
    )
    assert gitexp("pull").exit_code == 0
    assert gitexp("push").exit_code == 0


@pytest.mark.slow
def test_runs_travel_without_a_dvc_remote_and_say_their_data_stayed(
    project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert gitexp("init").exit_code == 0  # DVC, with a local cache and no remote
    git(project, "add", "-A")
    git(project, "commit", "-q", "-m", "gitexp init")
    git(tmp_path, "init", "-q", "--bare", "shared.git")
    git(project, "remote", "add", "origin", str(tmp_path / "shared.git"))
    git(project, "push", "-q", "origin", "HEAD")
    made = gitexp("run", "--output", "model.bin", "--", "sh", "-c", "echo w > model.bin")
    assert made.exit_code == 0, made.output

    pushed = gitexp("push")

    assert pushed.exit_code == 0, pushed.output
    assert pushed.stdout.startswith("pushed 1 runs to origin; no DVC remote is configured")
    other = tmp_path / "other"
    git(tmp_path, "clone", "-q", str(tmp_path / "shared.git"), str(other))
    monkeypatch.chdir(other)
    pulled = gitexp("pull")
    assert pulled.exit_code == 0, pulled.output
    assert "no DVC remote is configured" in pulled.stdout
    assert len(run_ids(other)) == 1


def test_a_fresh_clone_sees_the_remotes_runs_and_records_after_them(
    project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert gitexp("run", "--", sys.executable, "train.py").exit_code == 0
    first = run_ids(project)[0]
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(project), str(clone))
    monkeypatch.chdir(clone)
    assert [run["id"] for run in json.loads(gitexp("log", "--json").stdout)] == [first]
    assert gitexp("run", "--", sys.executable, "train.py").exit_code == 0
    assert run_ids(clone)[1] == first  # the new run follows the remote's, one history
    assert git(clone, "merge-base", "--is-ancestor", "origin/gitexp/runs", "gitexp/runs") == ""


def test_git_failures_are_one_sentence_saying_what_to_do(project: Path, tmp_path: Path) -> None:
    assert gitexp("run", "--", sys.executable, "train.py").exit_code == 0
    (tmp_path / "plain").mkdir()
    git(tmp_path, "init", "-q", "--bare", "empty.git")
    expected = {
        ("push", str(tmp_path / "nowhere")): "is not a git repository: give a remote's name",
        ("push", str(tmp_path / "plain")): "is not a git repository: give a remote's name",
        ("pull", str(tmp_path / "plain")): "is not a git repository: give a remote's name",
        ("pull", str(tmp_path / "empty.git")): "has no runs branch (gitexp/runs) yet",
    }
    for (command, remote), words in expected.items():
        result = gitexp(command, remote)
        assert result.exit_code == 1
        assert result.stderr.startswith(f"Error: {remote} {words}"), result.stderr
        assert result.stderr.count("\n") == 1 and "fatal" not in result.stderr


@pytest.mark.slow
def test_pull_from_a_dvc_remote_that_lacks_the_data_is_an_error(
    two_machines: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, there = two_machines
    made = gitexp("run", "--output", "model.bin", "--", "sh", "-c", "echo weights > model.bin")
    assert made.exit_code == 0
    assert gitexp("push").exit_code == 0
    monkeypatch.chdir(there)
    (tmp_path / "wrong-remote").mkdir()
    name = _dvc_default_remote(there)
    dvc(there, "remote", "modify", "--local", name, "url", str(tmp_path / "wrong-remote"))
    pulled = gitexp("pull")
    assert pulled.exit_code == 1
    assert pulled.stdout.startswith("pulled 1 new runs from origin, 0 DVC objects")
    assert f"the DVC remote ({tmp_path / 'wrong-remote'}" in pulled.stderr
    assert "lacks 1 data objects the runs name" in pulled.stderr
    assert len(run_ids(there)) == 1  # the records came: only their data is missing


def _dvc_default_remote(root: Path) -> str:
    done = subprocess.run([sys.executable, "-m", "dvc", "config", "core.remote"], cwd=root,
                          capture_output=True, text=True, check=True)  # fmt: skip
    return done.stdout.strip()
