"""A command that never started is no run: exit 127, and no phantom `crashed` record."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from ..conftest import gitexp
from .conftest import check_branch, cli, no_crash_report, pending_folders, read_branch


@pytest.mark.parametrize("program", ["/nonexistent", "gitexp-test-no-such-program"])
def test_a_command_that_cannot_start_exits_127_and_leaves_no_record(
    project: Path, program: str
) -> None:
    assert gitexp("run", "--", sys.executable, "train.py").exit_code == 0
    before = read_branch(project).ids

    done = cli(["run", "--", program, "--lr", "0.1"], project)

    assert done.returncode == 127, done.stderr
    no_crash_report(done.stdout + done.stderr)
    assert len(done.stderr.splitlines()) == 1 and program in done.stderr, done.stderr
    assert read_branch(project).ids == before
    assert pending_folders(project) == []

    recovered = gitexp("recover")
    assert recovered.exit_code == 0, recovered.output
    assert recovered.stdout == "nothing to recover\n"
    assert read_branch(project).ids == before
    check_branch(project)
