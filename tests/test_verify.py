"""`gitexp verify` and annotations: a tampering matrix on real signed records."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from gitexp import yamlio

from .conftest import git, gitexp, gitexp_process, run_ids, ssh_key


@pytest.fixture
def two_runs(project: Path, signing: Path) -> list[str]:
    """Two signed runs, oldest first."""
    for lr in ("0.1", "0.2"):
        result = gitexp("run", "--", sys.executable, "train.py", "--lr", lr)
        assert result.exit_code == 0, result.output
    return sorted(run_ids(project))


def _verdicts(*args: str) -> dict[str, tuple[str, str]]:
    result = gitexp("verify", "--json", *args)
    found = json.loads(result.stdout)
    assert result.exit_code == (0 if found["ok"] else 4)
    return {run["id"]: (run["status"], run["detail"]) for run in found["runs"]}


def _on_branch(project: Path, tmp_path: Path, change: Callable[[Path], None], *commit: str) -> str:
    """Change the runs branch with plain git, as someone tampering would; returns the commit."""
    tree = tmp_path / "branch"
    git(project, "worktree", "add", "-q", str(tree), "gitexp/runs")
    change(tree / "experiments")
    git(tree, "add", "-A")
    git(tree, "commit", "-q", "-m", "tamper", *commit)
    git(project, "worktree", "remove", str(tree))
    return git(project, "rev-parse", "gitexp/runs").strip()


def _replace_tip(project: Path, content: str) -> None:
    """Force the branch onto a commit object written by hand."""
    made = subprocess.run(
        ["git", "hash-object", "-t", "commit", "-w", "--stdin"],
        cwd=project, input=content, capture_output=True, text=True, check=True,
    )  # fmt: skip
    git(project, "update-ref", "refs/heads/gitexp/runs", made.stdout.strip())


def test_signed_runs_verify(project: Path, two_runs: list[str]) -> None:
    result = gitexp("verify", "--all")

    assert result.exit_code == 0
    for line, run_id in zip(result.stdout.splitlines(), reversed(two_runs), strict=True):
        assert line.startswith(f'ok  {run_id}  Good "git" signature for ada@example.com')
    assert result.stderr == "2 runs verified\n"


def test_unsigned_runs_fail(project: Path) -> None:
    assert gitexp("run", "--", sys.executable, "train.py").exit_code == 0
    (run_id,) = run_ids(project)

    assert _verdicts() == {
        run_id: ("unsigned", f"commit {_creator(project)}: the commit has no signature")
    }


def _creator(project: Path) -> str:
    return git(project, "rev-parse", "--short=12", "gitexp/runs").strip()


def test_a_file_edited_in_a_later_commit(
    project: Path, two_runs: list[str], tmp_path: Path
) -> None:
    first, second = two_runs

    def edit(experiments: Path) -> None:
        (experiments / first / "config.yaml").write_text("lr: 100\n")

    _on_branch(project, tmp_path, edit, "-S")  # even signed by the trusted key

    assert _verdicts() == {
        second: ("ok", ""),
        first: (
            "modified after signing",
            f"config.yaml changed after commit {_at(project, first)}",
        ),
    }
    result = gitexp("verify")
    assert result.exit_code == 4
    assert f"modified after signing  {first}  config.yaml changed after commit" in result.stdout
    assert result.stderr == "Error: 1 of 2 runs failed verification; see the lines above\n"


def _at(project: Path, run_id: str) -> str:
    """The commit that created a run's folder, abbreviated."""
    out = git(project, "log", "--first-parent", "--format=%h", "--abbrev=12", "--diff-filter=A",
              "gitexp/runs", "--",
              f"experiments/{run_id}/run.yaml")  # fmt: skip
    return out.split()[-1]


def test_a_forged_unsigned_run(project: Path, two_runs: list[str], tmp_path: Path) -> None:
    forged = "20261122-000000-forged1"

    def forge(experiments: Path) -> None:
        shutil.copytree(experiments / two_runs[0], experiments / forged)

    made = _on_branch(project, tmp_path, forge)

    assert _verdicts()[forged] == ("unsigned", f"commit {made[:12]}: the commit has no signature")


def test_a_run_recommitted_with_an_untrusted_key(
    project: Path, two_runs: list[str], tmp_path: Path
) -> None:
    eve = ssh_key(tmp_path, "eve")
    tip = git(project, "rev-parse", "gitexp/runs").strip()
    parents = git(project, "log", "-1", "--format=%P", tip).split()
    resigned = git(project, "-c", f"user.signingkey={eve}", "commit-tree", "-S", "-m", "run",
                   *(a for p in parents for a in ("-p", p)), f"{tip}^{{tree}}").strip()  # fmt: skip
    git(project, "update-ref", "refs/heads/gitexp/runs", resigned)

    status, detail = _verdicts()[two_runs[1]]

    assert status == "untrusted key"
    assert "No principal matched" in detail


def test_an_altered_signature(project: Path, two_runs: list[str]) -> None:
    lines = git(project, "cat-file", "commit", "gitexp/runs").split("\n")
    # The signature's last bytes, not its first, which hold the public key.
    end = next(i for i, line in enumerate(lines) if "END SSH SIGNATURE" in line)
    line = lines[end - 2]
    lines[end - 2] = line[:20] + ("A" if line[20] != "A" else "B") + line[21:]
    _replace_tip(project, "\n".join(lines))

    status, _ = _verdicts()[two_runs[1]]

    assert status == "bad signature"


def test_a_deleted_record_folder(project: Path, two_runs: list[str], tmp_path: Path) -> None:
    _on_branch(project, tmp_path, lambda experiments: shutil.rmtree(experiments / two_runs[0]))

    status, detail = _verdicts()[two_runs[0]]

    assert status == "missing"
    assert detail.startswith("seen in this repository on 20")  # gitexp saw it recorded
    assert detail.endswith(
        f"; its folder, added by {_at(project, two_runs[0])}, is gone from the branch"
    )


def test_history_rewritten_by_a_forced_ref_update(project: Path, two_runs: list[str]) -> None:
    old_tip = git(project, "rev-parse", "gitexp/runs").strip()
    git(project, "update-ref", "refs/heads/gitexp/runs", "gitexp/runs~1")  # drops the newest run

    result = gitexp("verify")

    assert result.exit_code == 4
    lines = result.stdout.splitlines()
    missing = f"missing  {two_runs[1]}  it was on the branch's former tip {old_tip[:12]}; seen "
    assert any(line.startswith(missing) for line in lines), lines
    rewritten = f"history rewritten: {old_tip[:12]}, a former tip of the branch, is no longer"
    assert lines[-1] == f"{rewritten} in its history"


def test_base_catches_a_rewrite_without_a_reflog(project: Path, two_runs: list[str]) -> None:
    """In CI a fresh clone has no reflog: --base names the branch the records must keep."""
    old_tip = git(project, "rev-parse", "gitexp/runs").strip()
    dropped = git(project, "rev-parse", "gitexp/runs~1").strip()

    found = _verdicts("--ref", dropped, "--base", old_tip)

    assert found[two_runs[1]][0] == "missing"
    assert _verdicts("--ref", old_tip, "--base", dropped) == {r: ("ok", "") for r in two_runs}


def test_annotations_never_invalidate_verification(project: Path, two_runs: list[str]) -> None:
    run_id = two_runs[0]
    assert gitexp("tag", run_id, "best", "baseline").exit_code == 0
    assert gitexp("note", run_id, "the one to beat").exit_code == 0
    result = gitexp("tag", "--remove", run_id, "baseline")
    assert result.stdout == f"run {run_id}: tags best; 1 note\n"

    assert _verdicts() == {r: ("ok", "") for r in two_runs}
    git(project, "verify-commit", "gitexp/runs")  # the annotation commit is signed too
    stored = yamlio.load(
        git(project, "show", f"gitexp/runs:experiments/{run_id}/annotations.yaml"), "a"
    )
    assert stored["tags"] == ["best"]
    assert [note["text"] for note in stored["notes"]] == ["the one to beat"]
    assert [r["id"] for r in json.loads(gitexp("log", "--tag", "best", "--json").stdout)] == [
        run_id
    ]
    changed = git(project, "show", "--name-only", "--format=", "gitexp/runs").split()
    assert changed == [f"experiments/{run_id}/annotations.yaml"]


def test_removing_a_note_that_is_not_there(project: Path, two_runs: list[str]) -> None:
    result = gitexp("note", "--remove", two_runs[0], "never written")

    assert result.exit_code == 1
    assert (
        result.stderr
        == f"Error: run {two_runs[0]} has no note 'never written'; see `gitexp show`\n"
    )


def test_no_allowed_signers_means_untrusted(project: Path, two_runs: list[str]) -> None:
    git(project, "config", "--unset", "gpg.ssh.allowedSignersFile")

    assert {status for status, _ in _verdicts().values()} == {"untrusted key"}


def test_verify_exit_status_in_a_real_process(project: Path, two_runs: list[str]) -> None:
    git(project, "update-ref", "refs/heads/gitexp/runs", "gitexp/runs~1")

    process = gitexp_process(
        ["verify", "--all"], project, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    _, err = process.communicate()

    assert process.returncode == 4
    assert "Traceback" not in err


def test_an_unknown_id_is_missing(project: Path, two_runs: list[str]) -> None:
    assert _verdicts("nope") == {"nope": ("missing", "no run with this id was ever on the branch")}


# --- what a verify remembers for the next ---------------------------------------------------


def _without_ssh_keygen(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """git alone on PATH: a signature git has to check now cannot be checked."""
    tools = tmp_path / "git-only"
    tools.mkdir()
    (tools / "git").symlink_to(shutil.which("git") or "git")
    monkeypatch.setenv("PATH", str(tools))


def test_a_second_verify_reuses_verdicts_until_the_trust_configuration_changes(
    project: Path, two_runs: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert set(_verdicts().values()) == {("ok", "")}
    path = shutil.which("ssh-keygen")
    assert path is not None
    eve = ssh_key(tmp_path, "eve")
    _without_ssh_keygen(tmp_path, monkeypatch)

    assert set(_verdicts().values()) == {("ok", "")}  # no signature asked of git again

    allowed = tmp_path / "allowed_signers"  # the file now trusts another key only
    allowed.write_text(f"ada@example.com {eve.read_text()}")
    assert "ok" not in {status for status, _ in _verdicts().values()}
    monkeypatch.setenv("PATH", str(Path(path).parent))
    assert {status for status, _ in _verdicts().values()} == {"untrusted key"}


def test_a_changed_trust_setting_is_a_new_trust_configuration(
    project: Path, two_runs: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert set(_verdicts().values()) == {("ok", "")}
    same = tmp_path / "same_signers"  # the same lines, in another file that git is told of
    same.write_text((tmp_path / "allowed_signers").read_text())
    git(project, "config", "gpg.ssh.allowedSignersFile", str(same))
    _without_ssh_keygen(tmp_path, monkeypatch)

    assert "ok" not in {status for status, _ in _verdicts().values()}


def test_tampering_after_a_verify_is_still_found(
    project: Path, two_runs: list[str], tmp_path: Path
) -> None:
    first, second = two_runs
    assert set(_verdicts().values()) == {("ok", "")}  # every commit so far remembered

    def edit(experiments: Path) -> None:
        (experiments / first / "config.yaml").write_text("lr: 100\n")

    _on_branch(project, tmp_path, edit, "-S")
    assert _verdicts()[first][0] == "modified after signing"

    git(project, "update-ref", "refs/heads/gitexp/runs", "gitexp/runs~2")  # drop `second`
    assert _verdicts()[second][0] == "missing"
