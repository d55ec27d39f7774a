"""git itself, run as a program: for what git alone decides (where a repository is, what a
ref name may be) and for reads cheaper than loading libgit2.

A training container may have no git on PATH: callers then fall back to pygit2.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from gitexp.errors import GitexpError

_TIMEOUT_S = 60


def run(cwd: Path | None, *args: str) -> subprocess.CompletedProcess[str] | None:
    """`git ARGS` in `cwd`, its output as text; None when git is not installed."""
    try:
        return subprocess.run(
            ["git", *args],
            cwd=cwd,
            capture_output=True,
            text=True,
            errors="replace",
            stdin=subprocess.DEVNULL,
            timeout=_TIMEOUT_S,
        )
    except FileNotFoundError:
        return None
    except subprocess.TimeoutExpired:
        raise GitexpError(f"git did not answer within {_TIMEOUT_S} s; try again") from None
