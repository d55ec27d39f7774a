"""Runs in progress, kept under `.git/gitexp/pending/<id>/` until their record is committed.

A live run holds an exclusive lock on its folder. A folder whose lock is free belongs to a run
whose gitexp process died (SIGKILL, OOM, node loss); the next gitexp command commits it with
status `crashed` and everything it had written so far, so nothing is silently lost.
"""

from __future__ import annotations

import fcntl
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import IO

import pygit2

from gitexp import artifacts, metrics, output, store, yamlio
from gitexp.atomic import replace_file
from gitexp.errors import GitexpError
from gitexp.record import (
    CODE,
    ENV,
    ENV_PROBE,
    FROM_CODE,
    METRICS,
    OUTPUT,
    RUN,
    SUMMARY,
    RunInfo,
)
from gitexp.workspace import Workspace

PENDING = "pending"
LOCK = "lock"
TOTAL = "output.total"
_REF_RETRIES = 20
# Files written at launch that go into the record as they are.
_AS_WRITTEN = ("config.yaml", "code.yaml", "code.diff", "env.yaml", "seeds.yaml", "data.yaml")
_ENV_MISSING = yamlio.dump(
    {"captured_by": "nobody: gitexp stopped before it had read the environment"}
)


def pending_ref(run_id: str) -> str:
    """Keeps a live run's snapshot commit reachable, so `git gc` cannot prune it."""
    return f"refs/gitexp/pending/{run_id}"


def parse_utc(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


@dataclass
class PendingRun:
    """The on-disk state of one live run, locked by the process that owns it."""

    run_id: str
    folder: Path
    _lock: IO[bytes]

    @classmethod
    def start(cls, ws: Workspace, run_id: str) -> PendingRun:
        """Create and lock the run's folder; it appears under its name only once locked."""
        root = ws.state_dir / PENDING
        root.mkdir(parents=True, exist_ok=True)
        building = root / f".{run_id}"
        building.mkdir()
        lock = open(building / LOCK, "wb")  # noqa: SIM115 - held for the run's lifetime
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        folder = root / run_id
        building.rename(folder)
        return cls(run_id, folder, lock)

    def write(self, name: str, data: bytes) -> None:
        """Replace one file atomically: a reader sees the old or the new bytes, never half."""
        replace_file(self.folder / name, data)

    def protect(self, ws: Workspace, snapshot: str) -> None:
        target = pygit2.Oid(hex=snapshot)
        _with_retries(lambda: ws.repo.references.create(pending_ref(self.run_id), target, True))

    def commit(self, ws: Workspace, info: RunInfo, printed: int | None) -> pygit2.Oid:
        """Commit the record, then forget the folder. Safe to repeat after a crash.

        If the commit fails, the folder stays, unlocked, for `gitexp recover`.
        """
        try:
            oid = _commit(ws, self.folder, info, printed)
        except GitexpError as e:
            self.write(RUN, info.to_yaml())  # the outcome, so that recover keeps it
            self._lock.close()
            kept = f"{e}; run {self.run_id} is kept, and `gitexp recover` will record it"
            raise type(e)(kept) from None  # the same kind, so a refusal still exits 3
        self.release(ws)
        return oid

    def release(self, ws: Workspace) -> None:
        _forget(ws, self.run_id, self.folder)
        self._lock.close()


def _with_retries(action: Callable[[], object]) -> None:
    """Run a ref update that may collide with another process's.

    git removes a ref folder such as refs/gitexp/pending/ when its last ref goes, and a
    writer creating a ref there at that instant fails; trying again succeeds.
    """
    for attempt in range(_REF_RETRIES):
        try:
            action()
            return
        except pygit2.GitError:
            if attempt == _REF_RETRIES - 1:
                raise
            time.sleep(0.001 * (attempt + 1))


def _delete_ref(ws: Workspace, name: str) -> None:
    try:
        ws.repo.references.delete(name)
    except KeyError:
        pass


def _forget(ws: Workspace, run_id: str, folder: Path) -> None:
    try:
        _with_retries(lambda: _delete_ref(ws, pending_ref(run_id)))
    except pygit2.GitError:
        pass  # a stale pending ref only keeps one snapshot alive; the record is safe
    shutil.rmtree(folder, ignore_errors=True)


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
    )


def _commit(ws: Workspace, folder: Path, info: RunInfo, printed: int | None) -> pygit2.Oid:
    info = _with_code_side(info, folder)
    files = {RUN: info.to_yaml()}
    for name in _AS_WRITTEN:
        path = folder / name
        if path.exists():
            files[name] = path.read_bytes()
    if ENV not in files and (folder / ENV_PROBE).exists():
        files[ENV] = (folder / ENV_PROBE).read_bytes()
    files.setdefault(ENV, _ENV_MISSING)
    if any(folder.glob("output.*")):  # a run started by `gitexp.init` alone has no output
        files[OUTPUT] = output.assemble(folder, ws.settings.output_limit, printed)
    files.update(artifacts.record_files(folder))
    series = metrics.record(folder)
    if series is not None:
        files[METRICS], files[SUMMARY] = series
    snapshot = yamlio.load(files[CODE], CODE).get("snapshot") if CODE in files else None
    label = f" ({info.name})" if info.name else ""
    summary = f"gitexp: run {info.id} {info.status}{label}"
    body = "command: " + " ".join(info.command)
    return store.write_run(ws, info.id, files, (summary, body), snapshot=snapshot)


def recover(ws: Workspace, failed: dict[str, str] | None = None) -> dict[str, str]:
    """Commit every run left behind: as `crashed` if its owner died while it ran, with its
    own outcome if only its commit failed. Returns each run's id and recorded status.

    A run that cannot be committed now (its signing key is not at hand, say) stays for a
    later try, its error put in `failed`: recovering one run must not break another command.
    """
    root = ws.state_dir / PENDING
    if not root.is_dir():
        return {}
    recovered: dict[str, str] = {}
    for folder in sorted(root.iterdir()):
        if folder.name.startswith("."):
            continue
        try:
            lock = open(folder / LOCK, "rb")  # noqa: SIM115
        except OSError:
            continue
        with lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                continue  # alive
            if not folder.exists():
                continue  # another process recovered it while we waited
            try:
                status = _recover_one(ws, folder)
                if status is not None:
                    recovered[folder.name] = status
            except GitexpError as e:
                if failed is not None:
                    failed[folder.name] = str(e)
    return recovered


def _recover_one(ws: Workspace, folder: Path) -> str | None:
    run_file = folder / RUN
    if not run_file.exists():  # died before the command started: there is no run to record
        _forget(ws, folder.name, folder)
        return None
    info = RunInfo.from_mapping(yamlio.load(run_file.read_bytes(), str(run_file)))
    last_write = max(p.stat().st_mtime for p in folder.iterdir())
    finished = datetime.fromtimestamp(last_write, tz=timezone.utc)
    total_file = folder / TOTAL
    printed = int(total_file.read_text()) if total_file.exists() else None
    if info.status == "running":
        info = info.finish("crashed", finished, parse_utc(info.started))
    # else the run ended and only its commit failed: keep the outcome it had
    _commit(ws, folder, info, printed)
    _forget(ws, folder.name, folder)
    return info.status
