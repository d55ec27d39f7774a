"""Two clones pushing to one bare remote in a loop while runs finish in each: none is lost."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

import pytest

from ..conftest import git
from .conftest import check_branch, cli, fsck, no_crash_report, read_branch

RUNS_EACH = 4
MARK = "import os, sys; open(os.path.join(sys.argv[1], os.environ['GITEXP_RUN_ID']), 'w').close()"


def _runs(clone: Path, ran: Path, results: list[subprocess.CompletedProcess[str]]) -> None:
    for _ in range(RUNS_EACH):
        results.append(cli(["run", "--", sys.executable, "-c", MARK, str(ran)], clone))


def _sync(
    clone: Path, running: threading.Thread, results: list[subprocess.CompletedProcess[str]]
) -> None:
    """Pull and push for as long as runs finish here, and once more after."""
    while True:
        last = not running.is_alive()
        for args in (["pull"], ["push"]):
            results.append(cli(args, clone))
        if last:
            return


@pytest.mark.slow
def test_two_clones_pushing_and_pulling_while_runs_finish_lose_nothing(
    project: Path, tmp_path: Path
) -> None:
    remote = tmp_path / "shared.git"
    git(tmp_path, "init", "-q", "--bare", str(remote))
    git(project, "remote", "add", "origin", str(remote))
    git(project, "push", "-q", "origin", "main")
    other = tmp_path / "other"
    git(tmp_path, "clone", "-q", str(remote), str(other))
    clones = {"here": project, "there": other}
    ran = {name: tmp_path / f"ran-{name}" for name in clones}
    runs: dict[str, list[subprocess.CompletedProcess[str]]] = {name: [] for name in clones}
    syncs: dict[str, list[subprocess.CompletedProcess[str]]] = {name: [] for name in clones}
    threads = []
    for name, clone in clones.items():
        ran[name].mkdir()
        running = threading.Thread(target=_runs, args=(clone, ran[name], runs[name]))
        syncing = threading.Thread(target=_sync, args=(clone, running, syncs[name]))
        threads += [running, syncing]
        running.start()
        syncing.start()
    for thread in threads:
        thread.join(timeout=600)

    for done in (r for results in runs.values() for r in results):
        no_crash_report(done.stdout + done.stderr)
        assert done.returncode == 0, done.stderr
    for done in (r for results in syncs.values() for r in results):
        # A push that lost the race to the other clone's is refused by git: one clear line.
        no_crash_report(done.stdout + done.stderr)
        assert done.returncode in (0, 1), done.stderr
        if done.returncode:
            assert len(done.stderr.splitlines()) == 1, done.stderr
    refused = [r.stderr.strip() for results in syncs.values() for r in results if r.returncode]
    print(f"{sum(map(len, syncs.values()))} pulls and pushes, {len(refused)} refused: {refused}")
    # Then each side syncs in turn, as people would once the runs are over.
    for clone in (project, other, project):
        for args in (["pull"], ["push"]):
            done = cli(args, clone)
            assert done.returncode == 0, (clone, args, done.stderr)

    every = {p.name for folder in ran.values() for p in folder.iterdir()}
    assert len(every) == 2 * RUNS_EACH
    for clone in clones.values():
        branch = check_branch(clone, one_commit_per_run=False)
        assert branch.ids == every, f"{clone.name} lacks {every - branch.ids}"
    remote_runs = git(remote, "ls-tree", "--name-only", "gitexp/runs:experiments").split()
    assert set(remote_runs) == every
    fsck(remote)
    assert read_branch(project).first_parent[0] == read_branch(other).first_parent[0]
