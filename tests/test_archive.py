"""`gitexp archive` / `unarchive`: hiding runs from listings with an annotation."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from .conftest import git, gitexp, run_ids


def _listed(*options: str) -> list[str]:
    return [run["id"] for run in json.loads(gitexp("log", "--json", *options).stdout)]


def test_archive_hides_a_run_until_unarchived(project: Path) -> None:
    for _ in range(3):
        assert gitexp("run", "--", sys.executable, "train.py").exit_code == 0
    newest, middle, oldest = run_ids(project)
    before = git(project, "rev-parse", f"gitexp/runs:experiments/{middle}/run.yaml")

    archived = gitexp("archive", middle, oldest)
    assert archived.exit_code == 0, archived.output
    assert archived.stdout == f"archived run {middle}\narchived run {oldest}\n"
    assert _listed() == [newest]
    assert _listed("--all") == [newest, middle, oldest]
    every = json.loads(gitexp("log", "--json", "--all").stdout)
    assert [run["archived"] for run in every] == [False, True, True]
    table = gitexp("log", "--all").stdout.splitlines()
    assert table[2].split()[:3] == [middle, "succeeded", "(archived)"]
    assert gitexp("log", "--all", "-w", "archived=true", "-c", "status").stdout.splitlines() == [
        "id                       status",
        f"{middle}  succeeded (archived)",
        f"{oldest}  succeeded (archived)",
    ]
    # An annotation: the record itself is untouched, and `show` still finds the run.
    assert git(project, "show", f"gitexp/runs:experiments/{middle}/annotations.yaml") == (
        "tags: []\nnotes: []\narchived: true\n"
    )
    assert git(project, "rev-parse", f"gitexp/runs:experiments/{middle}/run.yaml") == before
    assert gitexp("show", middle).exit_code == 0

    assert gitexp("unarchive", middle).stdout == f"unarchived run {middle}\n"
    assert gitexp("unarchive", middle).stdout == f"run {middle} was unarchived already\n"
    assert _listed() == [newest, middle]
    # Nothing left to say: annotations.yaml is gone again, as before the run was archived.
    files = git(project, "ls-tree", "--name-only", f"gitexp/runs:experiments/{middle}")
    assert "annotations.yaml" not in files.split()


def test_archive_unknown_run(project: Path) -> None:
    result = gitexp("archive", "nope")
    assert result.exit_code == 1
    assert result.stderr == "Error: no run 'nope'; see `gitexp log`\n"
