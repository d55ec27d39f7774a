"""Locks: git's ref lock left by a killed process is broken with a notice, a fresh one is
waited for, and gitexp's own branch lock held by a live process makes the run wait, then
stay pending for `gitexp recover`, never fail the command."""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ..conftest import gitexp, gitexp_process
from .conftest import check_branch, cli, no_crash_report, pending_folders, read_branch, wait_for

STALE_NOTICE = "gitexp: removed a stale lock"


def _ref_lock(project: Path) -> Path:
    return project / ".git" / "refs" / "heads" / "gitexp" / "runs.lock"


def _left_by_a_killed_process(lock: Path) -> None:
    """What SIGKILL leaves of a git ref update: an empty lock file, here a minute old."""
    lock.parent.mkdir(parents=True, exist_ok=True)
    lock.write_bytes(b"")
    an_hour_ago = time.time() - 60
    os.utime(lock, (an_hour_ago, an_hour_ago))


@pytest.mark.parametrize("first", ["run", "tag"])
def test_a_stale_git_ref_lock_is_broken_with_a_notice(project: Path, first: str) -> None:
    assert gitexp("run", "--name", "before", "--", sys.executable, "train.py").exit_code == 0
    lock = _ref_lock(project)
    _left_by_a_killed_process(lock)

    if first == "run":
        done = cli(["run", "--", sys.executable, "-c", "print('trained')"], project)
    else:
        done = cli(["tag", "before", "kept"], project)

    assert done.returncode == 0, done.stderr
    no_crash_report(done.stdout + done.stderr)
    notices = [line for line in done.stderr.splitlines() if line.startswith(STALE_NOTICE)]
    assert len(notices) == 1, done.stderr
    assert not lock.exists()
    branch = read_branch(project)
    if first == "run":
        assert len(branch.ids) == 2
        assert sorted(run["status"] for run in branch.runs.values()) == ["succeeded"] * 2
    else:
        (files,) = branch.files.values()
        assert b"kept" in files["annotations.yaml"]
    # Every other command keeps working.
    for args in (["log"], ["show", "before"], ["note", "before", "still here"], ["recover"]):
        result = gitexp(*args)
        assert result.exit_code == 0, (args, result.output)
        no_crash_report(result.output)
    check_branch(project, one_commit_per_run=False)


@pytest.mark.slow
def test_a_fresh_git_ref_lock_is_waited_for_not_broken(project: Path, tmp_path: Path) -> None:
    assert gitexp("run", "--", sys.executable, "train.py").exit_code == 0
    lock = _ref_lock(project)
    lock.write_bytes(b"")  # a git process (pack-refs, update-ref) holding the ref right now
    ended = tmp_path / "ended"
    process = gitexp_process(
        ["run", "--", sys.executable, "-c", f"open({str(ended)!r}, 'w').close()"],
        project,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    wait_for(ended.exists, "the command to end")
    # Our git process holds its lock a second more while gitexp wants to commit: the
    # duration of the scenario, not a synchronisation.
    time.sleep(1.0)
    assert lock.exists(), "gitexp broke a lock that a live git process had just taken"
    assert process.poll() is None, f"gitexp gave up at once: {process.communicate()}"
    lock.unlink()  # that git process is done

    out, err = process.communicate(timeout=120)

    assert process.returncode == 0, err
    no_crash_report(out + err)
    assert STALE_NOTICE not in err
    assert len(check_branch(project).ids) == 2


@pytest.mark.slow
def test_a_branch_lock_held_by_a_live_process_keeps_the_run_for_recover(project: Path) -> None:
    state = project / ".git" / "gitexp"
    state.mkdir(parents=True, exist_ok=True)
    holder = open(state / "branch.lock", "a")  # noqa: SIM115 - released halfway through
    try:
        fcntl.flock(holder, fcntl.LOCK_EX)
        env = {**os.environ, "GITEXP_LOCK_TIMEOUT": "1"}
        command = ["run", "--", sys.executable, "-c", "print('trained')"]
        done = cli(command, project, env=env, timeout=30)

        assert done.returncode == 0, done.stderr  # the command's own status
        no_crash_report(done.stdout + done.stderr)
        lines = done.stderr.splitlines()
        assert len(lines) == 1, done.stderr
        assert "kept" in lines[0] and "gitexp recover" in lines[0], lines[0]
        assert read_branch(project).ids == set()
        (folder,) = pending_folders(project)
    finally:
        holder.close()

    recovered = gitexp("recover")

    assert recovered.exit_code == 0, recovered.output
    assert recovered.stdout == f"recovered run {folder.name} as succeeded\n"
    branch = check_branch(project)
    run = branch.runs[folder.name]
    assert (run["status"], run["exit_code"]) == ("succeeded", 0)
    assert b"trained\n" in branch.files[folder.name]["output.log"]
    assert pending_folders(project) == []
