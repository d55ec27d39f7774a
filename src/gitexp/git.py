"""git itself, run as a program: for what git alone decides (where a repository is, what a
ref name may be) and for reads cheaper than loading libgit2.

A training container may have no git on PATH: callers then fall back to pygit2.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from gitexp.errors import GitexpError

_TIMEOUT_S = 60


def run(
    cwd: Path | None, *args: str, stdin: bytes | None = None
) -> subprocess.CompletedProcess[str] | None:
    """`git ARGS` in `cwd`, fed `stdin`; None when git is not installed. Its output is decoded
    as the file system's names are (a path that is not UTF-8 survives), its errors as text."""
    try:
        done = subprocess.run(
            ["git", *args], cwd=cwd, capture_output=True, timeout=_TIMEOUT_S, input=stdin,
            stdin=subprocess.DEVNULL if stdin is None else None,
        )  # fmt: skip
    except FileNotFoundError:
        return None
    except subprocess.TimeoutExpired:
        raise GitexpError(f"git did not answer within {_TIMEOUT_S} s; try again") from None
    return subprocess.CompletedProcess(
        done.args, done.returncode, os.fsdecode(done.stdout), done.stderr.decode(errors="replace")
    )


def said(done: subprocess.CompletedProcess[str]) -> str:
    """What git said on failing, on one line: its reason and any advice after it."""
    lines = [line.strip() for line in done.stderr.splitlines() if line.strip()]
    return " ".join(lines).removeprefix("fatal: ") or f"git exited {done.returncode}"
