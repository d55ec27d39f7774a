"""Which runs in progress still live, read from their folders under `.git/gitexp/pending/`
without taking a lock: what listings and `recover` need before anything is committed.

A live run holds an exclusive lock on its folder and names its processes in `owners`
(see pending); a run on another host (a shared filesystem) is alive while it writes.
"""

from __future__ import annotations

import fcntl
import os
import time
from datetime import datetime
from pathlib import Path

from gitexp.workspace import Workspace

PENDING = "pending"
LOCK = "lock"
OWNERS = "owners"  # the processes of a live run: `<role> <pid> <start time>` on `host`
GONE = ".gone-"  # the prefix of a folder being deleted
# A run seen from another host (a shared filesystem) is alive while its heartbeat is this fresh.
_REMOTE_SILENCE_S = 300.0


def parse_utc(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _proc_stat(pid: int) -> list[str] | None:
    """The fields of /proc/<pid>/stat after the command name, or None where there is none."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def start_time(pid: int) -> str | None:
    """When process `pid` started (clock ticks since boot), so a reused pid is not taken for it.

    None where /proc is not there: then the pid alone is checked.
    """
    fields = _proc_stat(pid)
    return fields[19] if fields is not None else None


def is_alive(pid: int, started: str | None) -> bool:
    if pid == os.getpid():
        return False  # this process let the run go (its lock is free): nothing else holds it
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # alive, under another account
    fields = _proc_stat(pid)
    if fields is None:
        return True
    # A zombie has ended: its parent (gitexp, killed) is not there to reap it.
    return fields[0] not in ("Z", "X") and (started is None or fields[19] == started)


def owners(folder: Path) -> tuple[str | None, dict[str, list[tuple[int, str | None]]]]:
    """The host a run lives on and its processes by role."""
    host: str | None = None
    roles: dict[str, list[tuple[int, str | None]]] = {}
    try:
        lines = (folder / OWNERS).read_text().splitlines()
    except OSError:
        return None, roles
    for line in lines:
        parts = line.split()
        if len(parts) == 2 and parts[0] == "host":
            host = parts[1]
        elif len(parts) == 3 and parts[1].isdigit():
            started = None if parts[2] == "-" else parts[2]
            roles.setdefault(parts[0], []).append((int(parts[1]), started))
    return host, roles


def last_sign_of_life(folder: Path) -> float:
    return max(p.stat().st_mtime for p in folder.iterdir())


def still_running(folder: Path) -> bool:
    """Whether any process of the run lives: its wrapper, its command or its script."""
    host, roles = owners(folder)
    # The name socket.gethostname() wrote, read without loading socket (a listing's cost).
    if host is not None and host != os.uname().nodename:
        return time.time() - last_sign_of_life(folder) < _REMOTE_SILENCE_S
    return any(is_alive(pid, started) for pids in roles.values() for pid, started in pids)


def in_progress(ws: Workspace) -> list[tuple[Path, bool]]:
    """The folder of every run not yet recorded, newest first, and whether a process of it
    still lives (else it waits for `recover`).

    Read-only and lock-free, for listings: it never disturbs a run that trains, and never
    recovers one. Folders being made or deleted, and folders not made by gitexp, are left out.
    """
    try:
        folders = sorted((ws.state_dir / PENDING).iterdir(), reverse=True)
    except OSError:
        return []
    found = []
    for folder in folders:
        if folder.name.startswith(".") or not (folder / LOCK).is_file():
            continue
        try:
            found.append((folder, still_running(folder)))
        except (OSError, ValueError):  # removed as we looked: recorded meanwhile
            continue
    return found


def left_behind(ws: Workspace) -> bool:
    """Whether `pending.recover` may have work: a run folder whose lock no process holds.

    A hint, so that listing runs beside live ones need not load what committing takes;
    recover decides under the lock.
    """
    try:
        folders = list((ws.state_dir / PENDING).iterdir())
    except OSError:
        return False
    for folder in folders:
        if folder.name.startswith("."):
            return True  # being made or deleted: rare and brief
        try:
            with open(folder / LOCK, "rb") as lock:
                fcntl.flock(lock, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError:
            continue  # held: its run lives; or no lock file: not gitexp's folder
        return True
    return False
