from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import git, gitexp_process, run_ids

RUNS = 32


@pytest.mark.slow
def test_32_runs_finishing_at_once_leave_32_records(project: Path) -> None:
    # Each command waits until all 32 have started, then they all finish together.
    (project / "together.py").write_text(
        "import os, sys, time\n"
        "open(os.path.join('started', os.environ['GITEXP_RUN_ID']), 'w').close()\n"
        "deadline = time.monotonic() + 120\n"
        "while len(os.listdir('started')) < int(sys.argv[1]):\n"
        "    if time.monotonic() > deadline:\n"
        "        sys.exit('not every run started')\n"
        "    time.sleep(0.01)\n"
    )
    (project / "started").mkdir()
    git(project, "add", "together.py")
    git(project, "commit", "-q", "-m", "together")
    (project / ".git" / "info" / "exclude").write_text("started/\n")
    processes = [
        gitexp_process(
            ["run", "--tag", f"n{i}", "--", sys.executable, "together.py", str(RUNS)],
            project,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        for i in range(RUNS)
    ]
    errors = [p.communicate(timeout=240)[1] for p in processes]
    failed = [err for p, err in zip(processes, errors, strict=True) if p.returncode != 0]
    assert not failed, failed[0]

    assert len(set(run_ids(project))) == RUNS
    first_parent = git(project, "rev-list", "--first-parent", "gitexp/runs").split()
    assert len(first_parent) == RUNS + 1  # the README root, then one commit per run
    git(project, "fsck", "--strict")
