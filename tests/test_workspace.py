"""Finding the repository (git decides), and listing runs without loading libgit2."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from gitexp.workspace import open_workspace

from .conftest import git, gitexp, gitexp_process, on_terminal, read_fifo, run_ids


def _one_run(project: Path) -> str:
    assert gitexp("run", "--", sys.executable, "-c", "pass").exit_code == 0
    return run_ids(project)[0]


def _loaded_by(
    args: list[str], cwd: Path, env: dict[str, str] | None = None
) -> tuple[str, set[str]]:
    """What `gitexp ARGS` prints to a pipe, and the modules its process had loaded by then."""
    code = (
        "import json, sys\n"
        "from gitexp.cli import cli\n"
        f"try:\n    cli({args!r}, prog_name='gitexp')\n"
        "except SystemExit as e:\n    assert not e.code, e.code\n"
        "print('\\x00' + json.dumps(sorted(sys.modules)))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True, text=True, check=True
    )
    printed, modules = done.stdout.rsplit("\x00", 1)
    return printed, set(json.loads(modules))


_HEAVY = {"pygit2", "ruamel", "rich"}


def test_a_warm_listing_loads_neither_libgit2_nor_yaml_nor_rich(project: Path) -> None:
    first, second = _one_run(project), _one_run(project)
    gitexp("log")  # brings the index up to the branch
    for args in (["log"], ["log", "--json"], ["log", "--csv"], ["log", "-w", "status=succeeded"]):
        printed, loaded = _loaded_by(args, project)
        assert first in printed and second in printed
        assert not _HEAVY & {name.split(".")[0] for name in loaded}, args


@pytest.mark.slow
def test_a_listing_after_a_new_run_reads_it(project: Path) -> None:
    _one_run(project)
    gitexp("log")
    newest = _one_run(project)  # the branch moved since the index read it
    printed, loaded = _loaded_by(["log", "--json"], project)
    assert json.loads(printed)[0]["id"] == newest
    assert "pygit2" in loaded  # the new folder was read from git objects
    printed, loaded = _loaded_by(["log", "--json"], project)
    assert json.loads(printed)[0]["id"] == newest and "pygit2" not in loaded


_LIVE = """
import os, sys
with open(sys.argv[1], "w") as ready:
    ready.write(os.environ["GITEXP_RUN_ID"])
open(sys.argv[2]).read()
"""


@pytest.mark.slow
def test_a_listing_beside_a_live_run_stays_light(project: Path, tmp_path: Path) -> None:
    done = _one_run(project)
    gitexp("log")
    ready, go = tmp_path / "ready", tmp_path / "go"
    os.mkfifo(ready)
    os.mkfifo(go)
    command = [sys.executable, "-c", _LIVE, str(ready), str(go)]
    live = gitexp_process(["run", "--", *command], project, stderr=subprocess.DEVNULL)
    try:
        running = read_fifo(ready, live)
        assert running
        printed, loaded = _loaded_by(["log"], project)
        assert f"{running}  " in printed and "running" in printed and done in printed
        assert "pygit2" not in loaded  # no run left behind to recover, so nothing to commit
    finally:
        with open(go, "w"):
            pass
        live.wait(timeout=60)
    assert live.returncode == 0


def test_log_works_where_git_is_not_installed(
    project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = _one_run(project)
    (tmp_path / "empty").mkdir()
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))  # a training container without git
    result = gitexp("log", "--json")
    assert result.exit_code == 0
    assert [run["id"] for run in json.loads(result.stdout)] == [first]
    (project / "sub").mkdir()
    ws = open_workspace(project / "sub")  # found by libgit2 instead
    assert ws.workdir == project.resolve()
    assert ws.state_dir == project.resolve() / ".git" / "gitexp"


def test_the_repository_is_found_from_a_subfolder(project: Path) -> None:
    (project / "deep" / "er").mkdir(parents=True)
    ws = open_workspace(project / "deep" / "er")
    assert ws.workdir == project.resolve()
    assert ws.git_dir == project.resolve() / ".git"


def test_a_linked_worktree_shares_the_state_folder(project: Path, tmp_path: Path) -> None:
    git(project, "worktree", "add", "-q", str(tmp_path / "other"))
    main, other = open_workspace(project), open_workspace(tmp_path / "other")
    assert other.workdir == (tmp_path / "other").resolve()
    assert other.state_dir == main.state_dir == project.resolve() / ".git" / "gitexp"
    assert other.git_dir != main.git_dir  # each worktree has its own HEAD and index
    assert other.repo.workdir.rstrip("/") == str((tmp_path / "other").resolve())


def test_outside_a_repository_and_in_a_bare_one_the_error_says_what_to_do(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))
    (tmp_path / "nowhere").mkdir()
    monkeypatch.chdir(tmp_path / "nowhere")
    result = gitexp("log")
    assert result.exit_code == 1
    assert f"{tmp_path / 'nowhere'} is not inside a git repository" in result.stderr
    git(tmp_path, "init", "-q", "--bare", "bare.git")
    monkeypatch.chdir(tmp_path / "bare.git")
    result = gitexp("log")
    assert result.exit_code == 1
    assert "bare repository; run gitexp from a working tree" in result.stderr


def _on_terminal(args: list[str], cwd: Path) -> str:
    env = {**os.environ, "TERM": "xterm-256color", "COLUMNS": "200"}
    env.pop("NO_COLOR", None)
    return on_terminal(args, cwd, env, errors=True)


@pytest.mark.slow
def test_on_a_terminal_a_cold_index_shows_progress_and_the_table_colour(project: Path) -> None:
    first = _one_run(project)
    shown = _on_terminal(["log"], project)  # the index is built now
    assert "reading run records" in shown
    assert "\x1b[32msucceeded" in shown and first in shown  # green
    again = _on_terminal(["log"], project)
    assert "reading run records" not in again and "\x1b[32msucceeded" in again
    piped = gitexp("log")
    assert "\x1b" not in piped.stdout + piped.stderr and first in piped.stdout


def test_the_index_follows_the_branch_the_settings_name(project: Path) -> None:
    first = _one_run(project)
    (project / ".gitexp.yaml").write_text("branch: team/runs\n")
    assert gitexp("run", "--", sys.executable, "-c", "pass").exit_code == 0
    on_team = [run["id"] for run in json.loads(gitexp("log", "--json").stdout)]
    assert len(on_team) == 1 and on_team != [first]
    (project / ".gitexp.yaml").unlink()
    listed = [run["id"] for run in json.loads(gitexp("log", "--json").stdout)]
    assert listed == [first]  # the default branch's runs, not the ones indexed last
    assert gitexp("show", first).exit_code == 0


def test_a_relative_git_dir_is_taken_from_where_gitexp_started(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = _one_run(project)
    (project / "sub").mkdir()
    monkeypatch.chdir(project / "sub")
    monkeypatch.setenv("GIT_DIR", "../.git")
    monkeypatch.setenv("GIT_WORK_TREE", "..")
    assert [run["id"] for run in json.loads(gitexp("log", "--json").stdout)] == [first]


def test_gitexp_started_outside_the_working_tree_git_names_says_so(
    project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    monkeypatch.setenv("GIT_DIR", str(project / ".git"))
    monkeypatch.setenv("GIT_WORK_TREE", str(project))
    result = gitexp("run", "--", sys.executable, "-c", "pass")
    assert result.exit_code == 1
    assert "is outside the working tree" in result.stderr and "Traceback" not in result.output


@pytest.mark.slow
@pytest.mark.parametrize("name", [b"not-utf8-\xff", b"sep-\x1c-ch", b"nel-\xc2\x85-ch"])
def test_a_repository_at_an_unusual_path_is_found(tmp_path: Path, name: bytes) -> None:
    root = tmp_path / os.fsdecode(name)
    root.mkdir()
    git(root, "init", "-q")
    git(root, "commit", "-q", "--allow-empty", "-m", "initial")
    ws = open_workspace(root)
    assert ws.workdir == root.resolve() and ws.state_dir == root.resolve() / ".git" / "gitexp"
    done = subprocess.run([sys.executable, "-m", "gitexp", "run", "--", sys.executable, "-c",
                           "pass"], cwd=root, capture_output=True, text=True)  # fmt: skip
    assert done.returncode == 0, done.stderr
    listed = subprocess.run([sys.executable, "-m", "gitexp", "log", "--json"], cwd=root,
                            capture_output=True, text=True, check=True)  # fmt: skip
    assert len(json.loads(listed.stdout)) == 1
    assert sorted(tmp_path.iterdir()) == [root]  # nothing made at a mangled name beside it


def test_inside_the_git_folder_the_error_says_where_to_go(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(project / ".git")
    result = gitexp("log")
    assert result.exit_code == 1
    assert "is inside the .git folder; run gitexp from the working tree" in result.stderr


def test_a_branch_read_again_follows_every_move_of_it(project: Path) -> None:
    """One process asks for the runs branch many times; each answer is where it is now,
    whether another process moved it loose, packed it, or deleted it."""
    ws = open_workspace()
    ref = "refs/heads/gitexp/runs"
    first = git(project, "rev-parse", "HEAD").strip()
    git(project, "update-ref", ref, first)
    assert ws.ref_target(ref) == ws.ref_target(ref) == first

    git(project, "commit", "-q", "--allow-empty", "-m", "another")
    second = git(project, "rev-parse", "HEAD").strip()
    git(project, "update-ref", ref, second)
    assert ws.ref_target(ref) == second
    git(project, "pack-refs", "--all")
    assert ws.ref_target(ref) == second
    git(project, "update-ref", ref, first)  # packed, and now loose again
    assert ws.ref_target(ref) == first
    git(project, "pack-refs", "--all")
    git(project, "update-ref", "-d", ref)
    assert ws.ref_target(ref) is None
