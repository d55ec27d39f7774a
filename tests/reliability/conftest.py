"""What the reliability tests share: real processes, deadlines instead of sleeps, and one
check of the runs branch that every test ends with."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import pygit2
from hypothesis.configuration import set_hypothesis_home_dir

from gitexp import yamlio

T = TypeVar("T")
# Hypothesis keeps caches (constants, Unicode tables) in .hypothesis/ under the current
# directory: keep them out of the working tree.
set_hypothesis_home_dir(os.path.join(tempfile.gettempdir(), "gitexp-tests-hypothesis"))

BRANCH = "gitexp/runs"
FINAL = ("succeeded", "failed", "interrupted", "crashed")
# Every record, however its run ended (a crash, a failed commit recovered later), has these.
ALWAYS = ("run.yaml", "config.yaml", "code.yaml", "env.yaml")


def wait_for(check: Callable[[], T], what: str, timeout: float = 60.0, every: float = 0.02) -> T:
    """Poll `check` until it returns something true; fail naming `what` after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up after {timeout:.0f} s waiting for {what}")
        time.sleep(every)


def cli(
    args: Sequence[str],
    cwd: Path,
    env: Mapping[str, str] | None = None,
    timeout: float = 120,
) -> subprocess.CompletedProcess[str]:
    """`gitexp ARGS` as a real process, run to its end."""
    return subprocess.run(
        [sys.executable, "-m", "gitexp", *args],
        cwd=cwd,
        env={**(env if env is not None else os.environ), "PYTHONUNBUFFERED": "1"},
        capture_output=True,
        text=True,
        errors="replace",
        timeout=timeout,
        check=False,
    )


def no_crash_report(text: str) -> None:
    """gitexp's own failures are one line: never a traceback, never the unexpected-error path."""
    assert "Traceback" not in text, text
    assert "unexpected" not in text, text


def alive(pid: int) -> bool:
    """Whether process `pid` still runs. A zombie has ended: nobody may have reaped it yet
    (a container whose first process reaps no orphans, like this machine's)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def pending_folders(root: Path) -> list[Path]:
    """Runs kept under .git/gitexp/pending/, not yet on the branch."""
    folder = root / ".git" / "gitexp" / "pending"
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def tip(root: Path, ref: str = BRANCH) -> str | None:
    done = subprocess.run(
        ["git", "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}"],
        cwd=root, capture_output=True, text=True, check=False,
    )  # fmt: skip
    return done.stdout.strip() or None


def fsck(git_dir: Path) -> None:
    """git's own verdict on every object and ref: no error, nothing missing."""
    done = subprocess.run(
        ["git", f"--git-dir={git_dir}", "fsck", "--strict", "--no-dangling", "--no-progress"],
        capture_output=True, text=True, errors="replace", check=False,
    )  # fmt: skip
    assert done.returncode == 0, f"git fsck failed in {git_dir}:\n{done.stdout}{done.stderr}"


@dataclass(frozen=True)
class Branch:
    """The runs branch as git stores it: each record's files and run.yaml."""

    files: dict[str, dict[str, bytes]]
    runs: dict[str, dict[str, Any]]
    first_parent: list[str]  # commit ids, newest first

    @property
    def ids(self) -> set[str]:
        return set(self.runs)


def read_branch(root: Path, ref: str = BRANCH) -> Branch:
    """Every record on `ref` (empty when the branch does not exist yet)."""
    repo = pygit2.Repository(str(root))
    try:
        commit = repo.revparse_single(ref).peel(pygit2.Commit)
    except (KeyError, pygit2.GitError):
        return Branch({}, {}, [])
    chain = []
    walk: pygit2.Commit | None = commit
    while walk is not None:
        chain.append(str(walk.id))
        walk = walk.parents[0] if walk.parents else None
    files: dict[str, dict[str, bytes]] = {}
    runs: dict[str, dict[str, Any]] = {}
    if "experiments" in commit.tree:
        for entry in commit.tree["experiments"].peel(pygit2.Tree):
            folder = repo[entry.id].peel(pygit2.Tree)
            files[entry.name] = {f.name: repo[f.id].peel(pygit2.Blob).data for f in folder}
            if "run.yaml" in files[entry.name]:
                runs[entry.name] = yamlio.load(files[entry.name]["run.yaml"], entry.name)
    return Branch(files, runs, chain)


def _count_runs(repo: pygit2.Repository, commit: pygit2.Commit) -> int:
    if "experiments" not in commit.tree:
        return 0
    return len(commit.tree["experiments"].peel(pygit2.Tree))


def check_branch(root: Path, one_commit_per_run: bool = True, context: str = "") -> Branch:
    """The runs branch points at a valid commit, fsck is clean and every record is whole.

    With `one_commit_per_run` (no merges or annotations on the branch), each first-parent
    commit adds exactly one run to its parent: none twice, none half.
    """
    where = f" ({context})" if context else ""
    assert tip(root) is not None, f"{BRANCH} does not point at a commit{where}"
    fsck(root / ".git")
    branch = read_branch(root)
    for run_id, files in branch.files.items():
        missing = [name for name in ALWAYS if name not in files]
        assert not missing, f"run {run_id} is missing {missing}{where}"
        run = branch.runs[run_id]
        assert isinstance(run, dict) and run.get("id") == run_id, f"{run_id}: {run!r}{where}"
        assert run.get("status") in FINAL, f"run {run_id} is {run.get('status')!r}{where}"
        assert run.get("finished") and run.get("duration_s") is not None, f"{run!r}{where}"
    if one_commit_per_run:
        repo = pygit2.Repository(str(root))
        counts = [_count_runs(repo, repo[c].peel(pygit2.Commit)) for c in branch.first_parent]
        assert counts == list(range(len(counts) - 1, -1, -1)), (
            f"first-parent commits hold {counts[::-1]} runs from the root on: each must add "
            f"exactly one{where}"
        )
        assert len(branch.first_parent) == len(branch.files) + 1, where
    return branch


def utc(text: str) -> float:
    """A recorded ISO-8601 UTC time as a POSIX timestamp."""
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
