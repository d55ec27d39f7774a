"""Long output through a pager, chosen the way git chooses one."""

from __future__ import annotations

import os
import subprocess
import sys

import pygit2


def command(repo: pygit2.Repository | None) -> str | None:
    """The pager git would use: GIT_PAGER, core.pager, PAGER, then `less`; None for none."""
    chosen = os.environ.get("GIT_PAGER")
    if chosen is None and repo is not None:
        try:
            chosen = repo.config["core.pager"]
        except (KeyError, pygit2.GitError):
            chosen = None
    if chosen is None:
        chosen = os.environ.get("PAGER", "less")
    return None if chosen.strip() in ("", "cat") else chosen


def write(data: bytes, pager: str | None) -> None:
    """Write `data` to stdout, through `pager` when one is given (a shell command, as in git)."""
    if pager is None:
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
        return
    env = dict(os.environ)
    env.setdefault("LESS", "FRX")  # git's defaults: quit if one screen, keep colour, no clear
    env.setdefault("LV", "-c")
    sys.stdout.flush()
    try:
        process = subprocess.Popen(pager, shell=True, stdin=subprocess.PIPE, env=env)
    except OSError:
        write(data, None)
        return
    assert process.stdin is not None
    try:
        process.stdin.write(data)
        process.stdin.close()
    except BrokenPipeError:
        pass  # the reader quit early, as `q` in less does
    process.wait()
