"""A run whose record cannot be written: a full disk (ENOSPC, a small tmpfs the command fills)
or a file size limit on gitexp itself (EFBIG). `gitexp run` exits with the command's status and
one clear line, the branch is untouched, and once there is room `gitexp recover` records it."""

from __future__ import annotations

import resource
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from ..conftest import TRAIN, git
from .conftest import check_branch, cli, no_crash_report, pending_folders, tip, wait_for

# Fills the disk it runs on to the last byte, then ends well: exit 0.
FILL = """\
import os
fd = os.open("fill.bin", os.O_WRONLY | os.O_CREAT, 0o644)
chunk = 1 << 20
while chunk:
    try:
        os.write(fd, b"x" * chunk)
    except OSError:
        chunk //= 2
os.close(fd)
"""
# Waits for the test to limit gitexp's file size, then ends well: exit 0.
WAIT = """\
import os, sys, time
open(sys.argv[1], "w").close()
deadline = time.monotonic() + 120
while not os.path.exists(sys.argv[2]):
    if time.monotonic() > deadline:
        sys.exit("the test never said go")
    time.sleep(0.01)
"""


def _project(root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "train.py").write_text(TRAIN)
    (root / ".gitignore").write_text("fill.bin\n")
    git(root, "init", "-q")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "initial")
    return root


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 16 MiB tmpfs, mounted for this test: a disk that can really fill up."""
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(disk)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({mounted.stderr.strip()}); the EFBIG case runs")
    try:
        yield disk
    finally:
        subprocess.run(["umount", "--lazy", str(disk)], check=False)


def _kept_in_one_line(done: subprocess.CompletedProcess[str]) -> None:
    assert done.returncode == 0, done.stderr  # the command's own status
    no_crash_report(done.stdout + done.stderr)
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert "gitexp recover" in lines[0], lines[0]


def _recovered_later(project: Path, before: str | None) -> None:
    assert tip(project) == before  # the branch is untouched
    git(project, "fsck", "--strict", "--no-dangling")
    (folder,) = pending_folders(project)

    done = cli(["recover"], project)

    assert done.returncode == 0, done.stderr
    no_crash_report(done.stdout + done.stderr)
    assert done.stdout.startswith(f"recovered run {folder.name} as "), done.stdout
    run = check_branch(project).runs[folder.name]
    # gitexp saw the command end well; if the full disk kept it from saying so, `crashed`.
    assert run["status"] in ("succeeded", "crashed"), run
    if run["status"] == "succeeded":
        assert run["exit_code"] == 0, run
    assert pending_folders(project) == []


def test_a_full_disk_keeps_the_run_for_recover(small_disk: Path) -> None:
    project = _project(small_disk / "project")
    first = cli(["run", "--", sys.executable, "train.py"], project)
    assert first.returncode == 0, first.stderr
    before = tip(project)

    done = cli(["run", "--", sys.executable, "-c", FILL], project)

    _kept_in_one_line(done)
    (project / "fill.bin").unlink()  # room again
    _recovered_later(project, before)


@pytest.mark.slow
def test_a_file_size_limit_keeps_the_run_for_recover(project: Path, tmp_path: Path) -> None:
    assert cli(["run", "--", sys.executable, "train.py"], project).returncode == 0
    before = tip(project)
    started, go = tmp_path / "started", tmp_path / "go"
    command = [sys.executable, "-c", WAIT, str(started), str(go)]
    process = subprocess.Popen(
        [sys.executable, "-m", "gitexp", "run", "--", *command],
        cwd=project,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    wait_for(started.exists, "the command to start")
    # From now on gitexp (not its command, which started before) can write no byte: EFBIG.
    # Python ignores SIGXFSZ, so gitexp gets the error instead of dying of the signal.
    resource.prlimit(process.pid, resource.RLIMIT_FSIZE, (0, 0))
    go.touch()
    out, err = process.communicate(timeout=120)

    _kept_in_one_line(subprocess.CompletedProcess(process.args, process.returncode, out, err))
    _recovered_later(project, before)
