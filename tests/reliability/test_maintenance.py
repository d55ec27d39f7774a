"""A dozen runs committing at once while git packs refs and collects garbage beside them."""

from __future__ import annotations

import itertools
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from ..conftest import git, gitexp_process
from .conftest import check_branch, no_crash_report

RUNS = 12
# git's maintenance as users and `git maintenance` run it; `gc --auto` made to act every time.
MAINTENANCE = (
    ("pack-refs", "--all"),
    ("-c", "gc.auto=1", "-c", "gc.autoPackLimit=1", "gc", "--auto", "--quiet"),
    ("gc", "--quiet"),
)
# Each command marks that it ran, waits until all have, then ends: the commits come together.
TOGETHER = """\
import os, sys, time
folder, runs = sys.argv[1], int(sys.argv[2])
open(os.path.join(folder, os.environ["GITEXP_RUN_ID"]), "w").close()
deadline = time.monotonic() + 120
while len(os.listdir(folder)) < runs:
    if time.monotonic() > deadline:
        sys.exit("not every run started")
    time.sleep(0.01)
"""


def _maintain(root: Path, stop: threading.Event, cycles: list[int]) -> None:
    while not stop.is_set():
        for args in MAINTENANCE:
            # git's own maintenance may fail to take a lock that gitexp holds: that is git's
            # business; only what happens to the runs matters here.
            subprocess.run(["git", *args], cwd=root, capture_output=True, check=False)
        cycles.append(1)


@pytest.mark.slow
def test_runs_committing_beside_pack_refs_and_gc_are_all_kept(
    project: Path, tmp_path: Path
) -> None:
    script = tmp_path / "together.py"
    script.write_text(TOGETHER)
    started = tmp_path / "started"
    started.mkdir()
    stop, cycles = threading.Event(), []
    maintenance = threading.Thread(target=_maintain, args=(project, stop, cycles))
    maintenance.start()
    try:
        processes = [
            gitexp_process(
                ["run", "--", sys.executable, str(script), str(started), str(RUNS)],
                project,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
            )
            for _ in range(RUNS)
        ]
        errors = [p.communicate(timeout=300)[1] for p in processes]
    finally:
        stop.set()
        maintenance.join()

    for process, err in zip(processes, errors, strict=True):
        no_crash_report(err)
        assert process.returncode == 0, err  # the command's own status, never a lock's
    assert cycles, "git's maintenance never completed a cycle beside the runs"
    branch = check_branch(project)  # fsck --strict, every record whole, one commit per run
    ran = {path.name for path in started.iterdir()}
    assert branch.ids == ran
    first_parent = git(project, "rev-list", "--first-parent", "gitexp/runs").split()
    assert len(first_parent) == RUNS + 1
    # Each move of the branch went forward from where it was: none replaced another's.
    moves = git(project, "reflog", "show", "--format=%H", "refs/heads/gitexp/runs").split()
    # One move per run (the first may also create the branch with its root in one step).
    assert RUNS <= len(moves) <= RUNS + 1, moves
    assert set(first_parent[:RUNS]) <= set(moves), "a tip of the branch is missing from its reflog"
    for newer, older in itertools.pairwise(moves):
        forward = subprocess.run(
            ["git", "merge-base", "--is-ancestor", older, newer], cwd=project, check=False
        )
        assert forward.returncode == 0, f"the branch moved from {older} to {newer}, not forward"
