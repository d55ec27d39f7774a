"""Runs in progress, kept under `.git/gitexp/pending/<id>/` until their record is committed.

A live run holds an exclusive lock on its folder and lists its processes (the `gitexp run`
wrapper, its command, or the script that called gitexp.init). A folder whose lock is free and
whose processes are all gone belongs to a run that died (SIGKILL, OOM, node loss); the next
gitexp command commits it with status `crashed` and everything it had written so far, so
nothing is silently lost, and a run that is still training is never touched.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import socket
import sys
import time
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import IO

import pygit2

from gitexp import store, yamlio
from gitexp.atomic import replace_file
from gitexp.errors import GitexpError
from gitexp.liveness import (
    GONE,
    LOCK,
    OWNERS,
    PENDING,
    last_sign_of_life,
    owners,
    parse_utc,
    start_time,
    still_running,
)
from gitexp.record import (
    CODE,
    ENV,
    ENV_PROBE,
    FROM_CODE,
    HEARTBEAT,
    METRICS,
    OUTPUT,
    RUN,
    SUMMARY,
    RunInfo,
    Status,
    redactions,
)
from gitexp.workspace import Workspace

TOTAL = "output.total"
HEARTBEAT_S = 1.0  # how often a live run says so
_ABANDONED_S = 600.0  # a run folder still unnamed after this long was abandoned
UNSEEN_END = "the run's process ended unseen (killed, out of memory, or its node lost)"
# Files written at launch that go into the record as they are.
_AS_WRITTEN = ("config.yaml", "code.yaml", "code.diff", "env.yaml", "seeds.yaml", "data.yaml")
_ENV_MISSING = yamlio.dump(
    {"captured_by": "nobody: gitexp stopped before it had read the environment"}
)


@dataclass
class PendingRun:
    """The on-disk state of one live run, locked by the process that owns it."""

    run_id: str
    folder: Path
    _lock: IO[bytes]

    @classmethod
    def start(cls, ws: Workspace, run_id: str, role: str) -> PendingRun:
        """Create and lock the run's folder; it appears under its name only once locked.

        `role` says what this process is: `wrapper` (`gitexp run`, which then names its
        command with `add_owner`) or `script` (a training script that called gitexp.init).
        """
        root = ws.state_dir / PENDING
        root.mkdir(parents=True, exist_ok=True)
        building = root / f".{run_id}"
        building.mkdir()
        lock = open(building / LOCK, "wb")  # noqa: SIM115 - held for the run's lifetime
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        (building / OWNERS).write_text(f"host {socket.gethostname()}\n")
        run = cls(run_id, building, lock)
        run.add_owner(role, os.getpid())
        run.beat()
        folder = root / run_id
        building.rename(folder)
        run.folder = folder
        return run

    def add_owner(self, role: str, pid: int) -> None:
        """Name a process of this run: while any lives, no other gitexp recovers the run."""
        with open(self.folder / OWNERS, "a") as f:
            f.write(f"{role} {pid} {start_time(pid) or '-'}\n")

    def beat(self) -> None:
        """Say that the run is alive now."""
        (self.folder / HEARTBEAT).touch()

    def write(self, name: str, data: bytes) -> None:
        """Replace one file atomically: a reader sees the old or the new bytes, never half."""
        replace_file(self.folder / name, data)

    def protect(self, ws: Workspace, snapshot: str) -> None:
        store.protect(ws, self.run_id, snapshot)

    def commit(self, ws: Workspace, info: RunInfo, printed: int | None) -> pygit2.Oid:
        """Commit the record, then forget the folder. Safe to repeat after a crash.

        If the commit fails, the folder stays, with the run's outcome, for `gitexp recover`,
        and the error says so.
        """
        try:
            oid = _commit(ws, self.folder, info, printed)
        except (GitexpError, OSError) as e:
            self._lock.close()
            reason = e if isinstance(e, GitexpError) else f"could not write the record ({e})"
            kept = f"{reason}; run {self.run_id} is kept, and `gitexp recover` will record it"
            raise NotRecorded(kept, getattr(e, "exit_code", 1)) from None
        _remove(self.folder)
        self._lock.close()
        return oid

    def lock_fd(self) -> int:
        """The run's lock, for the command to inherit: the run then counts as alive while
        the command lives, even if gitexp dies before it could name the command."""
        return self._lock.fileno()

    def close(self) -> None:
        """Let go of the run's lock, leaving its folder for `gitexp recover`."""
        self._lock.close()

    def release(self, ws: Workspace) -> None:
        """Forget a run that never ran (it failed to start)."""
        _forget(ws, self.run_id, self.folder)
        self._lock.close()


class NotRecorded(GitexpError):
    """A finished run whose record could not be committed: it stays pending."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def _forget(ws: Workspace, run_id: str, folder: Path) -> None:
    store.release(ws, run_id)
    _remove(folder)


def _remove(folder: Path) -> None:
    """Delete a run's folder: renamed away first, in one step, so that a kill halfway
    through the deletion never leaves a folder that looks like a run."""
    gone = folder.with_name(f"{GONE}{folder.name}")
    try:
        folder.rename(gone)
    except OSError:
        gone = folder
    shutil.rmtree(gone, ignore_errors=True)


def _with_code_side(info: RunInfo, folder: Path) -> RunInfo:
    """Add what the training code told `gitexp.init` while running under `gitexp run`."""
    path = folder / FROM_CODE
    if not path.exists():
        return info
    given = yamlio.load(path.read_bytes(), str(path)) or {}
    return replace(
        info,
        name=info.name or given.get("name"),
        notes=info.notes or given.get("notes"),
        tags=tuple(dict.fromkeys([*info.tags, *(given.get("tags") or [])])),
        error=info.error or given.get("error"),
        inputs=tuple(sorted({*info.inputs, *(given.get("inputs") or [])})),
        redacted=tuple(dict.fromkeys([*info.redacted, *redactions(given.get("redacted"))])),
        hydra=info.hydra or given.get("hydra"),
    )


def _commit(ws: Workspace, folder: Path, info: RunInfo, printed: int | None) -> pygit2.Oid:
    # Only committing reads what a run left: commands that merely recover nothing skip these.
    from gitexp import artifacts, metrics, observed, output

    info = _with_code_side(info, folder)
    if info.error:  # an exception's words can carry a token (an HTTP error's URL, say)
        from gitexp import secrets_scan

        info = replace(info, error=secrets_scan.redact_value(info.error, ws.settings.secrets)[0])
    files = {}
    for name in _AS_WRITTEN:
        path = folder / name
        if path.exists():
            files[name] = path.read_bytes()
    # What the training process reported from inside: its parsed arguments, seeds, interpreter.
    try:
        cwd = ws.workdir / info.cwd
        redacted = observed.settle(
            folder, files, info.command, ws.workdir, ws.settings.secrets, cwd
        )
    except Exception as e:  # a record of what gitexp saw at launch beats no record
        redacted = []
        print(
            f"gitexp: warning: what run {info.id}'s process reported could not be read ({e!r}); "
            "its record keeps what gitexp saw at launch",
            file=sys.stderr,
        )
    if redacted:
        info = replace(info, redacted=tuple(dict.fromkeys([*info.redacted, *redacted])))
    files[RUN] = info.to_yaml()
    if ENV not in files and (folder / ENV_PROBE).exists():
        files[ENV] = (folder / ENV_PROBE).read_bytes()
    files.setdefault(ENV, _ENV_MISSING)
    if any(folder.glob("output.*")):  # a run started by `gitexp.init` alone has no output
        files[OUTPUT] = output.assemble(
            folder, ws.settings.output_limit, printed, ws.settings.secrets
        )
    files.update(artifacts.record_files(folder))
    series = metrics.record(folder)
    if series is not None:
        files[METRICS], files[SUMMARY] = series
    snapshot = yamlio.load(files[CODE], CODE).get("snapshot") if CODE in files else None
    from gitexp.message import record_message

    message = record_message(info, files.get(METRICS))
    return store.write_run(ws, info.id, files, message, snapshot=snapshot)


def recover(ws: Workspace, failed: dict[str, str] | None = None) -> dict[str, str]:
    """Commit every run left behind: as `crashed` if its owner died while it ran, with its
    own outcome if only its commit failed. Returns each run's id and recorded status.

    A run any of whose processes still lives is left alone, whatever became of the others:
    a training script whose `gitexp run` was killed trains on, and is recorded once it ends.
    A run that cannot be committed now (its signing key is not at hand, say) stays for a
    later try, its error put in `failed`: recovering one run must not break another command.
    """
    root = ws.state_dir / PENDING
    if ws.read_only or not root.is_dir():  # a read-only view lists them as unrecorded
        return {}
    recovered: dict[str, str] = {}
    for folder in sorted(root.iterdir()):
        if folder.name.startswith(GONE):
            shutil.rmtree(folder, ignore_errors=True)  # a deletion a kill interrupted
            continue
        try:
            lock = open(folder / LOCK, "rb")  # noqa: SIM115
        except OSError:
            continue  # a folder made by hand: not gitexp's to touch
        with lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                continue  # its owner holds the lock: alive
            try:
                if folder.name.startswith("."):
                    # Being started: its lock may not be taken yet. Only one abandoned long
                    # ago (its starter died before naming it) is cleared away.
                    if time.time() - last_sign_of_life(folder) > _ABANDONED_S:
                        shutil.rmtree(folder, ignore_errors=True)
                    continue
                if not folder.exists() or still_running(folder):
                    continue  # recovered by another process meanwhile, or alive
                status = _recover_one(ws, folder)
                if status is not None:
                    recovered[folder.name] = status
            except (GitexpError, OSError) as e:
                if failed is not None:
                    failed[folder.name] = str(e)
    return recovered


def _recover_one(ws: Workspace, folder: Path) -> str | None:
    run_file = folder / RUN
    _, roles = owners(folder)
    ran = bool({"launching", "command", "script"} & roles.keys())
    if not run_file.exists() or not ran:
        # Killed before its command started: there was no run to record.
        _forget(ws, folder.name, folder)
        return None
    info = RunInfo.from_mapping(yamlio.load(run_file.read_bytes(), str(run_file)))
    finished = datetime.fromtimestamp(last_sign_of_life(folder), tz=timezone.utc)
    total_file = folder / TOTAL
    printed = int(total_file.read_text()) if total_file.exists() else None
    if info.status == "running":
        info = _died(info, folder, finished)
    # else the run ended and only its commit failed: keep the outcome it had
    _commit(ws, folder, info, printed)
    _remove(folder)
    return info.status


def _died(info: RunInfo, folder: Path, finished: datetime) -> RunInfo:
    """The outcome of a run whose owner died before it could say how the run ended.

    Nobody saw the end, so no exit code is recorded: the script may have been killed
    (SIGKILL, out of memory), its node lost, or, if only `gitexp run` died, it may have ended
    on its own. What the script told gitexp.init, if it got that far, is kept.
    """
    started = parse_utc(info.started)
    ended = _ended_in_code(folder)
    if ended is not None:
        return info.finish(ended, finished, started)
    return info.finish("crashed", finished, started, error=UNSEEN_END)


def _ended_in_code(folder: Path) -> Status | None:
    """The outcome the training script told gitexp.init, if it got to say one."""
    path = folder / FROM_CODE
    if not path.exists():
        return None
    ended = (yamlio.load(path.read_bytes(), str(path)) or {}).get("ended")
    return ended if ended in ("succeeded", "failed", "interrupted") else None
