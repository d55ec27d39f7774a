from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pygit2
import pytest

from gitexp import store
from gitexp.workspace import open_workspace

from .conftest import git, gitexp


def _loose_objects(root: Path) -> int:
    counted = git(root, "count-objects", "-v")
    return int(dict(line.split(": ") for line in counted.splitlines())["count"])


def test_branch_starts_with_a_readme_for_reviewers(project: Path) -> None:
    tip = store.ensure_branch(open_workspace())
    assert tip.parents == []
    readme = git(project, "show", "gitexp/runs:README.md")
    assert readme.startswith("# Experiment records\n")
    assert "git log --first-parent gitexp/runs" in readme


def test_writing_a_run_again_keeps_the_first_record(project: Path) -> None:
    ws = open_workspace()
    first = store.write_run(ws, "r1", {"run.yaml": b"id: r1\n"}, ("one", ""))
    again = store.write_run(ws, "r1", {"run.yaml": b"id: changed\n"}, ("two", ""))
    assert again == first
    assert git(project, "show", "gitexp/runs:experiments/r1/run.yaml") == "id: r1\n"


def test_writing_leaves_the_users_tree_alone(project: Path) -> None:
    (project / "train.py").write_text("print('dirty')\n")
    repo = pygit2.Repository(str(project))
    head, status = repo.head.target, repo.status()
    store.write_run(open_workspace(), "r1", {"run.yaml": b"id: r1\n"}, ("one", ""))
    assert (repo.head.target, repo.status()) == (head, status)


def test_runs_branch_name_comes_from_settings(project: Path) -> None:
    (project / ".gitexp.yaml").write_text("branch: lab/records\n")
    assert gitexp("run", "--", sys.executable, "train.py").exit_code == 0
    assert git(project, "branch", "--list", "lab/records").strip() == "lab/records"
    assert git(project, "branch", "--list", "gitexp/runs") == ""


@pytest.mark.slow
def test_loose_objects_are_packed_automatically(project: Path) -> None:
    git(project, "config", "gc.auto", "1000")
    # Pile up loose objects until git's own estimate (objects/17 times 256) passes the threshold.
    # They must be reachable (here from a side branch): git never packs garbage.
    repo = pygit2.Repository(str(project))
    sample = project / ".git" / "objects" / "17"
    pile = repo.TreeBuilder()
    while not sample.is_dir() or len(list(sample.iterdir())) <= 1000 // 256 + 1:
        name = f"f{len(pile)}"
        pile.insert(name, repo.create_blob(name.encode()), pygit2.enums.FileMode.BLOB)
    who = repo.default_signature
    repo.create_commit("refs/heads/pile", who, who, "pile", pile.write(), [])
    before = _loose_objects(project)

    assert gitexp("run", "--", sys.executable, "train.py").exit_code == 0
    assert _loose_objects(project) < before // 10
    git(project, "fsck", "--strict")


def test_a_ref_lock_left_by_a_killed_process_is_broken_with_a_notice(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ws = open_workspace()
    store.write_run(ws, "r1", {"run.yaml": b"id: r1\n"}, ("one", ""))
    stale = project / ".git" / "refs" / "heads" / "gitexp" / "runs.lock"
    stale.touch()  # what a SIGKILL in the middle of a ref update leaves
    old = time.time() - 60
    os.utime(stale, (old, old))

    store.write_run(ws, "r2", {"run.yaml": b"id: r2\n"}, ("two", ""))

    assert not stale.exists()
    assert capsys.readouterr().err == (
        f"gitexp: removed a stale lock {stale} left by a killed process (60 s old)\n"
    )
    assert git(project, "ls-tree", "--name-only", "gitexp/runs:experiments").split() == [
        "r1",
        "r2",
    ]


def test_a_branch_lock_held_by_a_live_process_is_waited_for_then_named(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ws = open_workspace()
    store.ensure_branch(ws)
    monkeypatch.setenv("GITEXP_LOCK_TIMEOUT", "0.2")
    holder = subprocess.Popen(  # another writer, alive, that never lets go
        [sys.executable, "-c", _HOLD_LOCK, str(ws.state_dir / "branch.lock")],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "locked\n"
        with pytest.raises(store.BranchBusy) as refused:
            store.write_run(ws, "r1", {"run.yaml": b"id: r1\n"}, ("one", ""))
    finally:
        holder.kill()
        holder.wait()
    assert str(refused.value) == (
        f"the runs branch stayed locked by pid {holder.pid} for 0 s "
        f"({ws.state_dir / 'branch.lock'})"
    )
    store.write_run(ws, "r1", {"run.yaml": b"id: r1\n"}, ("one", ""))  # free once it is gone


_HOLD_LOCK = """\
import fcntl, os, sys, time
lock = open(sys.argv[1], "a+")
fcntl.flock(lock, fcntl.LOCK_EX)
lock.truncate(0)
lock.write(f"pid {os.getpid()}")
lock.flush()
print("locked", flush=True)
time.sleep(600)
"""


def test_records_never_go_onto_a_code_branch(project: Path) -> None:
    git(project, "branch", "release")
    (project / ".gitexp.yaml").write_text("branch: release\n")
    before = git(project, "rev-parse", "release")

    result = gitexp("run", "--", sys.executable, "train.py")

    assert result.exit_code == 1
    assert result.stderr == (
        "Error: the branch release holds '.gitignore', so it is not a runs branch; gitexp "
        "writes runs only to a branch of its own: set another `branch:` in .gitexp.yaml\n"
    )
    assert "training" not in result.stdout  # refused before the command ran
    assert git(project, "rev-parse", "release") == before


def test_a_moved_branch_is_never_overwritten(project: Path) -> None:
    """The compare-and-swap: a tip read before another writer moved the branch loses."""
    ws = open_workspace()
    store.write_run(ws, "r1", {"run.yaml": b"id: r1\n"}, ("one", ""))
    stale_tip = store.tip(ws)
    assert stale_tip is not None

    def late_writer(parent: pygit2.Commit | None) -> pygit2.Oid | None:
        if parent is not None and parent.id == stale_tip.id:
            # Another process records r2 between our read of the tip and our move.
            git(project, "update-ref", "refs/heads/gitexp/runs", str(_other_run(ws)))
        return ws.repo.create_commit(
            None, ws.repo.default_signature, ws.repo.default_signature, "ours",
            stale_tip.tree.id, [parent.id if parent else stale_tip.id],
        )  # fmt: skip

    store.advance(ws, late_writer, "test")

    first_parent = git(project, "log", "--first-parent", "--format=%s", "gitexp/runs").split("\n")
    assert first_parent[:3] == ["ours", "two", "one"]


def _other_run(ws: object) -> pygit2.Oid:
    from gitexp.workspace import Workspace

    assert isinstance(ws, Workspace)
    tip = store.tip(ws)
    assert tip is not None
    return ws.repo.create_commit(
        None, ws.repo.default_signature, ws.repo.default_signature, "two", tip.tree.id, [tip.id]
    )


def test_without_git_on_path_the_branch_still_moves_by_compare_and_swap(
    project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ws = open_workspace()
    store.write_run(ws, "r1", {"run.yaml": b"id: r1\n"}, ("one", ""))
    snapshot = str(ws.repo.head.target)
    with monkeypatch.context() as without_git:
        without_git.setenv("PATH", str(tmp_path / "nothing"))  # a container with no git in it
        store.protect(ws, "r2", snapshot)
        store.write_run(ws, "r2", {"run.yaml": b"id: r2\n"}, ("two", ""), snapshot=snapshot)

    names = git(project, "ls-tree", "--name-only", "gitexp/runs:experiments").split()
    assert names == ["r1", "r2"]
    assert "refs/gitexp/pending/r2" not in git(project, "for-each-ref")
