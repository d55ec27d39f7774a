from __future__ import annotations

import sys
from pathlib import Path

import pygit2

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
