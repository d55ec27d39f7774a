"""A derived SQLite index of the runs branch, so that listing runs never parses every record.

The branch is the only source of truth: the index remembers which tree each run folder had
and re-reads only folders that changed, and deleting it loses nothing.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator, Mapping, Sequence
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from typing import Any

import pygit2

from gitexp import store, yamlio
from gitexp.config import flatten
from gitexp.errors import GitexpError
from gitexp.ids import suffix_of
from gitexp.record import CONFIG, EXPERIMENTS, RUN, SUMMARY
from gitexp.workspace import Workspace

_VERSION = "1"
_COLUMNS = (
    "id, tree, name, status, started, duration_s, exit_code, tags, notes, command, config, summary"
)


@dataclass(frozen=True)
class RunSummary:
    """What listing a run needs: its identity, outcome, flattened config and metric summary."""

    id: str
    name: str | None
    status: str
    started: str
    duration_s: float | None = None
    exit_code: int | None = None
    tags: tuple[str, ...] = ()
    notes: str | None = None
    command: tuple[str, ...] = ()
    config: Mapping[str, Any] = field(default_factory=dict)
    summary: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)


def _schema(db: sqlite3.Connection) -> None:
    db.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT)")
    found = db.execute("SELECT value FROM meta WHERE key = 'version'").fetchone()
    if found is None or found[0] != _VERSION:
        db.execute("DROP TABLE IF EXISTS runs")
        db.execute("DELETE FROM meta")
        db.execute("INSERT INTO meta VALUES ('version', ?)", (_VERSION,))
    db.execute(
        "CREATE TABLE IF NOT EXISTS runs (id TEXT PRIMARY KEY, tree TEXT NOT NULL, name TEXT, "
        "status TEXT, started TEXT, duration_s REAL, exit_code INTEGER, tags TEXT, notes TEXT, "
        "command TEXT, config TEXT, summary TEXT)"
    )


def _connect(ws: Workspace) -> sqlite3.Connection:
    ws.state_dir.mkdir(parents=True, exist_ok=True)
    path = ws.state_dir / "catalog.sqlite"
    db = sqlite3.connect(path, timeout=30)
    try:
        with db:
            _schema(db)
    except sqlite3.DatabaseError:
        # A damaged index is rebuilt from the branch, which it merely mirrors.
        db.close()
        path.unlink(missing_ok=True)
        db = sqlite3.connect(path, timeout=30)
        with db:
            _schema(db)
    return db


@contextmanager
def _open(ws: Workspace) -> Iterator[sqlite3.Connection]:
    with closing(_connect(ws)) as db, db:
        yield db


def _blob(repo: pygit2.Repository, folder: pygit2.Tree, name: str) -> bytes | None:
    return repo[folder[name].id].peel(pygit2.Blob).data if name in folder else None


def _read_row(repo: pygit2.Repository, run_id: str, tree_id: pygit2.Oid) -> tuple[Any, ...]:
    folder = repo[tree_id].peel(pygit2.Tree)
    where = f"{EXPERIMENTS}/{run_id}"
    run = yamlio.load(_blob(repo, folder, RUN) or b"{}", f"{where}/{RUN}") or {}
    config = yamlio.load(_blob(repo, folder, CONFIG) or b"{}", f"{where}/{CONFIG}") or {}
    summary = yamlio.load(_blob(repo, folder, SUMMARY) or b"{}", f"{where}/{SUMMARY}") or {}
    if not isinstance(run, dict) or not isinstance(config, dict):
        raise GitexpError(f"{where} is not a valid record; check it with `git show`")
    return (
        run_id,
        str(tree_id),
        run.get("name"),
        run.get("status", "unknown"),
        str(run.get("started", "")),
        run.get("duration_s"),
        run.get("exit_code"),
        json.dumps(list(run.get("tags") or [])),
        run.get("notes"),
        json.dumps(list(run.get("command") or [])),
        json.dumps(flatten(config), default=str),
        json.dumps(summary if isinstance(summary, dict) else {}, default=str),
    )


def _summary(row: Sequence[Any]) -> RunSummary:
    return RunSummary(
        id=row[0],
        name=row[2],
        status=row[3],
        started=row[4],
        duration_s=row[5],
        exit_code=row[6],
        tags=tuple(json.loads(row[7])),
        notes=row[8],
        command=tuple(json.loads(row[9])),
        config=json.loads(row[10]),
        summary=json.loads(row[11]),
    )


def runs(ws: Workspace) -> list[RunSummary]:
    """Every run on the branch, newest first, bringing the index up to date on the way."""
    tip = store.tip(ws)
    with _open(ws) as db:
        key = f"tip:{ws.runs_ref}"
        known = db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        if tip is not None and (known is None or known[0] != str(tip.id)):
            folders = store.run_folders(tip)
            indexed = dict(db.execute("SELECT id, tree FROM runs").fetchall())
            changed = [
                _read_row(ws.repo, run_id, tree)
                for run_id, tree in folders.items()
                if indexed.get(run_id) != str(tree)
            ]
            gone = [(run_id,) for run_id in indexed if run_id not in folders]
            db.executemany("DELETE FROM runs WHERE id = ?", gone)
            db.executemany(
                f"INSERT OR REPLACE INTO runs ({_COLUMNS}) VALUES ({', '.join('?' * 12)})",
                changed,
            )
            db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, str(tip.id)))
        elif tip is None:
            return []
        rows = db.execute(f"SELECT {_COLUMNS} FROM runs ORDER BY started DESC, id DESC")
        return [_summary(row) for row in rows]


def resolve(all_runs: Sequence[RunSummary], ref: str) -> RunSummary:
    """Find one run by id, unique id prefix, random suffix, name, `@` or `@~N`."""
    if ref == "@" or ref.startswith("@~"):
        back = ref[2:] or "0"
        if not back.isdigit():
            raise GitexpError(f"{ref!r} is not a run; write @ for the newest run, @~1 before it")
        if int(back) >= len(all_runs):
            raise GitexpError(f"there is no run {ref}: the branch holds {len(all_runs)} runs")
        return all_runs[int(back)]
    exact = [run for run in all_runs if run.id == ref]
    if exact:
        return exact[0]
    found = [
        run
        for run in all_runs
        if run.id.startswith(ref) or suffix_of(run.id).startswith(ref) or run.name == ref
    ]
    if len(found) == 1:
        return found[0]
    if not found:
        raise GitexpError(f"no run {ref!r}; see `gitexp log`")
    listed = ", ".join(run.id + (f" ({run.name})" if run.name else "") for run in found[:10])
    more = f" and {len(found) - 10} more" if len(found) > 10 else ""
    raise GitexpError(f"{ref!r} names {len(found)} runs: {listed}{more}; give more of the id")
