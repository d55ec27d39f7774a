"""A derived SQLite index of the runs branch, so that listing runs never parses every record.

The branch is the only source of truth: the index remembers which tree each run folder had
and re-reads only folders that changed, and deleting it loses nothing.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import closing, contextmanager
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, NamedTuple

from gitexp import cells, jsontext, reader, yamlio
from gitexp.errors import GitexpError
from gitexp.ids import suffix_of
from gitexp.record import INVALID
from gitexp.workspace import Workspace

if TYPE_CHECKING:  # `diff` needs axes; listing runs must not load it
    from gitexp import axes

_VERSION = "13"  # 13: each run's `log` table cells, made once
_COLUMNS = (
    "id, tree, name, status, started, duration_s, exit_code, tags, notes, command, config, "
    "summary, inputs, artifacts, problem, fields, archived, json, cells"
)


class RunSummary(NamedTuple):
    """What listing a run needs: its identity, outcome, flattened config and metric summary.

    A NamedTuple rather than a frozen dataclass: a listing builds 10,000 of them, in half the
    time.
    """

    id: str
    name: str | None
    status: str
    started: str
    duration_s: float | None = None
    exit_code: int | None = None
    tags: tuple[str, ...] = ()
    notes: str | None = None
    summary: Mapping[str, Mapping[str, Any]] = MappingProxyType({})
    inputs: tuple[str, ...] = ()  # runs whose artifacts this run read
    problem: str | None = None  # why the record cannot be read, for status `invalid`
    # Kept as the index stores them and decoded on use: a listing of 10,000 runs shows
    # neither, and decoding them all would double its cost.
    command_json: str = "[]"
    config_json: str = "{}"
    fields_json: str = "{}"  # host, user, cwd, finished, code.commit, code.branch, …
    archived: bool = False  # hidden from listings unless asked for (`gitexp archive`)
    listed_json: str | None = None  # json_line as the index made it; None for a live run

    @property
    def command(self) -> tuple[str, ...]:
        return tuple(json.loads(self.command_json))

    @property
    def config(self) -> dict[str, Any]:
        """The resolved configuration, flattened to dotted keys."""
        loaded: dict[str, Any] = json.loads(self.config_json)
        return loaded

    @property
    def fields(self) -> dict[str, Any]:
        """Record fields by dotted name (`code.branch`, `host`), as the index keeps them."""
        loaded: dict[str, Any] = json.loads(self.fields_json)
        return loaded

    def json_line(self) -> str:
        """as_dict as `log --json` prints it: made once, when the index reads the record, so
        that listing 10,000 runs encodes none."""
        return self.listed_json if self.listed_json is not None else jsontext.line(self.as_dict())

    def as_dict(self) -> dict[str, Any]:
        """Everything known of the run, for `--json`."""
        return {
            "id": self.id,
            "name": self.name,
            "status": self.status,
            "started": self.started,
            "duration_s": self.duration_s,
            "exit_code": self.exit_code,
            "tags": list(self.tags),
            "notes": self.notes,
            "command": list(self.command),
            "config": self.config,
            "summary": dict(self.summary),
            "inputs": list(self.inputs),
            "archived": self.archived,
        }


def _schema(db: sqlite3.Connection) -> None:
    db.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT)")
    found = db.execute("SELECT value FROM meta WHERE key = 'version'").fetchone()
    if found is None or found[0] != _VERSION:
        db.execute("DROP TABLE IF EXISTS runs")
        db.execute("DROP TABLE IF EXISTS inputs")
        db.execute("DELETE FROM meta")
        db.execute("INSERT INTO meta VALUES ('version', ?)", (_VERSION,))
    db.execute(
        "CREATE TABLE IF NOT EXISTS runs (id TEXT PRIMARY KEY, tree TEXT NOT NULL, name TEXT, "
        "status TEXT, started TEXT, duration_s REAL, exit_code INTEGER, tags TEXT, notes TEXT, "
        "command TEXT, config TEXT, summary TEXT, inputs TEXT, artifacts TEXT, problem TEXT, "
        "fields TEXT, archived INTEGER, json TEXT, cells TEXT)"
    )
    # Listings read runs newest first: in this order already, whole rows are never sorted.
    db.execute("CREATE INDEX IF NOT EXISTS runs_newest ON runs (started DESC, id DESC)")
    # Which folders changed is asked of this alone, never of the wide rows (17 -> 8 ms at
    # 10,000 runs, on every `diff`).
    db.execute("CREATE INDEX IF NOT EXISTS runs_trees ON runs (id, tree)")
    # What `diff` compares runs by; filled on first use, so that listing never pays for it.
    db.execute(
        "CREATE TABLE IF NOT EXISTS inputs (id TEXT PRIMARY KEY, tree TEXT NOT NULL, "
        "snapshot TEXT, config_files TEXT, data TEXT, env_key TEXT, seeds_key TEXT, "
        "plain_config TEXT, seed_config TEXT, dirty_submodules TEXT, seed_values TEXT)"
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


def _summaries(rows: Sequence[Sequence[Any]]) -> list[RunSummary]:
    """_summary of each row, with the JSON of all rows decoded in one call: for 10,000 runs,
    a call per column costs more than the decoding itself."""
    decoded = json.loads("[" + ",".join(f"[{r[7]},{r[11]},{r[12]}]" for r in rows) + "]")
    return [
        RunSummary(
            id=row[0],
            name=row[2],
            status=row[3],
            started=row[4],
            duration_s=row[5],
            exit_code=row[6],
            tags=tuple(tags),
            notes=row[8],
            command_json=row[9],
            config_json=row[10],
            summary=summary,
            inputs=tuple(inputs),
            problem=row[14],
            fields_json=row[15],
            archived=bool(row[16]),
            listed_json=row[17],
        )
        for row, (tags, summary, inputs) in zip(rows, decoded, strict=True)
    ]


@dataclass(frozen=True)
class RunQuery:
    """Which runs to list: every filter given must match."""

    statuses: Sequence[str] = ()
    tags: Sequence[str] = ()
    name: str | None = None
    run_id: str | None = None
    run_ids: Sequence[str] | None = None  # any of these: one query for a whole seed group
    limit: int | None = None
    archived: bool = True  # False: leave archived runs out, as listings do by default


Progress = Callable[[int, int], None]  # (records read, records to read)


def _sync(ws: Workspace, db: sqlite3.Connection, progress: Progress | None = None) -> bool:
    """Bring the index up to the branch tip; False when there is no branch yet.

    The tip is read by git, which opens no object: an index already at it costs nothing more.
    Only a branch that moved loads libgit2 and reads the folders that changed.
    """
    target = ws.ref_target(ws.runs_ref)
    # One index mirrors one branch: which, and at what tip (another worktree's settings may
    # name another branch; the index then follows that one, reading only what differs).
    known = db.execute("SELECT value FROM meta WHERE key = 'mirrors'").fetchone()
    if target is not None and known is not None and known[0] == f"{ws.runs_ref} {target}":
        return True
    from gitexp import indexing  # and with it libgit2: the branch moved, or is not there yet

    found = indexing.folders(ws)
    if found is None:
        return False
    tip, folders = found
    if known is not None and known[0] == f"{ws.runs_ref} {tip}":
        return True
    indexed = dict(db.execute("SELECT id, tree FROM runs").fetchall())
    todo = [(run_id, tree) for run_id, tree in folders.items() if indexed.get(run_id) != str(tree)]
    _note_seen(db, ws.runs_ref, tip, list(folders), [run_id for run_id, _ in todo])
    changed = []
    for done, (run_id, tree) in enumerate(todo, 1):
        # The run's --json line and table cells, made once here so that no listing does.
        row = (*indexing.run_row(ws.repo, run_id, tree), None, None)
        summary = _summaries([row])[0]
        changed.append((*row[:-2], summary.json_line(), cells.encode(cells.of(summary))))
        if progress is not None and (done % 100 == 0 or done == len(todo)):
            progress(done, len(todo))
    gone = [(run_id,) for run_id in indexed if run_id not in folders]
    db.executemany("DELETE FROM runs WHERE id = ?", gone)
    db.executemany(
        f"INSERT OR REPLACE INTO runs ({_COLUMNS}) VALUES ({', '.join('?' * 19)})", changed
    )
    db.execute("INSERT OR REPLACE INTO meta VALUES ('mirrors', ?)", (f"{ws.runs_ref} {tip}",))
    return True


# --- runs seen on the branch ------------------------------------------------------------------
# Extra evidence for `gitexp verify`, not part of the branch's mirror: a run this repository
# once saw on its runs branch that is gone from it now was dropped by a rewrite of the branch,
# whoever signed it. Deleting the index loses nothing of the branch, only this list, and with
# it the means to name such runs once the reflog has expired (`verify --base` still compares).


class Seen(NamedTuple):
    """When this repository first saw a run on its runs branch (a tuple: a verify reads one
    for every run the repository has seen)."""

    when: str  # ISO-8601 UTC
    commit: str  # the branch's tip then


def _seen_table(db: sqlite3.Connection) -> None:
    db.execute(
        "CREATE TABLE IF NOT EXISTS seen (ref TEXT NOT NULL, id TEXT NOT NULL, "
        "first_seen TEXT NOT NULL, seen_at TEXT NOT NULL, PRIMARY KEY (ref, id))"
    )


def _remember(db: sqlite3.Connection, ref: str, tip: str, run_ids: Sequence[str]) -> None:
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    _insert_seen(db, ref, {run_id: Seen(now, tip) for run_id in run_ids})


def _insert_seen(db: sqlite3.Connection, ref: str, runs: Mapping[str, Seen]) -> None:
    """Note runs as seen; a run seen before keeps its first sighting."""
    db.executemany(
        "INSERT OR IGNORE INTO seen VALUES (?, ?, ?, ?)",
        ((ref, run_id, seen.when, seen.commit) for run_id, seen in runs.items()),
    )


def _note_seen(
    db: sqlite3.Connection, ref: str, tip: str, on_branch: Sequence[str], new: Sequence[str]
) -> None:
    """As the index reads the branch at `tip`: its `new` runs are seen (the first time, all)."""
    _seen_table(db)
    first = db.execute("SELECT 1 FROM seen WHERE ref = ? LIMIT 1", (ref,)).fetchone() is None
    _remember(db, ref, tip, on_branch if first else new)


def seen_runs(ws: Workspace, tip: str, on_branch: Sequence[str]) -> dict[str, Seen]:
    """Every run this repository has seen on its runs branch, by id; `on_branch`, the runs
    the branch holds at `tip`, are noted as seen first."""
    with _open(ws) as db:
        _seen_table(db)
        _fold_written(ws, db)
        rows = db.execute("SELECT id, first_seen, seen_at FROM seen WHERE ref = ?", (ws.runs_ref,))
        found = {run_id: Seen(when, commit) for run_id, when, commit in rows}
        _remember(db, ws.runs_ref, tip, [r for r in on_branch if r not in found])
    return found


def _fold_written(ws: Workspace, db: sqlite3.Connection) -> None:
    """Note as seen the runs gitexp itself committed to this branch, as store.note_seen
    logged them; only the lines logged since the last fold are read."""
    from gitexp import store  # only `verify` asks: listings never load libgit2

    known = db.execute("SELECT value FROM meta WHERE key = 'seen_log'").fetchone()
    try:
        with open(ws.state_dir / store.SEEN_LOG, "rb") as log:
            size = os.fstat(log.fileno()).st_size
            start = int(known[0]) if known is not None and int(known[0]) <= size else 0
            log.seek(start)
            text = log.read(size - start)
    except (OSError, ValueError):
        return
    text = text[: text.rfind(b"\n") + 1]  # a line being appended right now waits for next time
    written: dict[str, Seen] = {}
    for line in text.decode("utf-8", errors="replace").splitlines():
        parts = line.split("\t")
        if len(parts) == 4 and parts[0] == ws.runs_ref and parts[1] not in written:
            written[parts[1]] = Seen(parts[2], parts[3])
    _insert_seen(db, ws.runs_ref, written)  # a run seen before keeps its first sighting
    db.execute("INSERT OR REPLACE INTO meta VALUES ('seen_log', ?)", (str(start + len(text)),))


_NEWEST_FIRST = "ORDER BY started DESC, id DESC"


def _select(columns: str, query: RunQuery) -> tuple[str, list[Any]]:
    """The SQL that lists `columns` of the runs `query` asks for, newest first."""
    where: list[str] = []
    args: list[Any] = []
    if query.statuses:
        where.append(f"status IN ({', '.join('?' * len(query.statuses))})")
        args.extend(query.statuses)
    # Records hold text as YAML wrote it, bytes that were not UTF-8 as `\xNN`: so do filters.
    for tag in query.tags:
        where.append("EXISTS (SELECT 1 FROM json_each(runs.tags) WHERE value = ?)")
        args.append(yamlio.text(tag))
    if query.name is not None:
        where.append("name = ?")
        args.append(yamlio.text(query.name))
    if query.run_id is not None:
        where.append("id = ?")
        args.append(query.run_id)
    if query.run_ids is not None:
        where.append("id IN (SELECT value FROM json_each(?))")
        args.append(json.dumps(list(query.run_ids)))
    if not query.archived:
        where.append("NOT archived")
    sql = f"SELECT {columns} FROM runs"
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += f" {_NEWEST_FIRST}"
    if query.limit is not None:
        sql += " LIMIT ?"
        args.append(query.limit)
    return sql, args


def _rows(
    ws: Workspace, columns: str, query: RunQuery | None, progress: Progress | None
) -> list[Any]:
    sql, args = _select(columns, query or RunQuery())
    with _open(ws) as db:
        if not _sync(ws, db, progress):
            return []
        return db.execute(sql, args).fetchall()


def runs(
    ws: Workspace, query: RunQuery | None = None, progress: Progress | None = None
) -> list[RunSummary]:
    """Runs on the branch, newest first, filtered in SQL so only those shown are decoded."""
    return _summaries(_rows(ws, _COLUMNS, query, progress))


def briefs(
    ws: Workspace, query: RunQuery | None = None, progress: Progress | None = None
) -> list[cells.Cells]:
    """Runs as `runs` lists them, as the plain `gitexp log` table shows them: the cells the
    index made for each (see gitexp.cells), none formatted now."""
    return cells.decode(_rows(ws, "id, started, status, problem, cells", query, progress))


class JsonLine(NamedTuple):
    """A run as `gitexp log --json` prints it (RunSummary.json_line), and what a listing
    needs beside: its order and whether it can be read."""

    id: str
    started: str
    status: str
    problem: str | None
    line: str


def json_lines(
    ws: Workspace, query: RunQuery | None = None, progress: Progress | None = None
) -> list[JsonLine]:
    """Runs as `runs` lists them, each as its JSON line: the index made them, none is built."""
    return [
        JsonLine._make(row)
        for row in _rows(ws, "id, started, status, problem, json", query, progress)
    ]


def resolve(ws: Workspace, ref: str, progress: Progress | None = None) -> RunSummary:
    """Find one run by id, unique id prefix, random suffix, name, `@` or `@~N`."""
    with _open(ws) as db:
        known = _sync(ws, db, progress)
        # A whole id names its run before anything else does (see choose): one row, not all.
        # An id is ASCII; any other text is left to choose, which makes it safe to compare.
        pairs: list[tuple[str, str | None]] = []
        whole = known and reader.is_run_id(ref)
        if whole and db.execute("SELECT 1 FROM runs WHERE id = ?", (ref,)).fetchone():
            pairs = [(ref, None)]
        elif known:
            pairs = db.execute(f"SELECT id, name FROM runs {_NEWEST_FIRST}").fetchall()
    run_id = choose(pairs, ref)
    return runs(ws, RunQuery(run_id=run_id))[0]


def choose(pairs: Sequence[tuple[str, str | None]], ref: str) -> str:
    """The one run id among `pairs` (id, name; newest first) that `ref` names."""
    ref = yamlio.text(ref)
    if ref == "@" or ref.startswith("@~"):
        back = ref[2:] or "0"
        if not (back.isascii() and back.isdigit()):
            raise GitexpError(f"{ref!r} is not a run; write @ for the newest run, @~1 before it")
        if int(back) >= len(pairs):
            raise GitexpError(f"there is no run {ref}: the branch holds {len(pairs)} runs")
        return pairs[int(back)][0]
    if any(run_id == ref for run_id, _ in pairs):
        return ref
    found = [
        (run_id, name)
        for run_id, name in pairs
        if run_id.startswith(ref) or suffix_of(run_id).startswith(ref) or name == ref
    ]
    if len(found) == 1:
        return found[0][0]
    if not found:
        raise GitexpError(f"no run {ref!r}; see `gitexp log`")
    listed = ", ".join(run_id + (f" ({name})" if name else "") for run_id, name in found[:10])
    more = f" and {len(found) - 10} more" if len(found) > 10 else ""
    raise GitexpError(f"{ref!r} names {len(found)} runs: {listed}{more}; give more of the id")


def artifact_makers(ws: Workspace) -> dict[str, str]:
    """md5 of every recorded artifact → the run that made it (the oldest, if several)."""
    with _open(ws) as db:
        if not _sync(ws, db):
            return {}
        rows = db.execute(
            "SELECT id, artifacts FROM runs WHERE artifacts != '[]' ORDER BY started, id"
        ).fetchall()
    makers: dict[str, str] = {}
    for run_id, made in rows:
        for md5 in json.loads(made):
            makers.setdefault(md5, run_id)
    return makers


def used_by(ws: Workspace, run_id: str) -> list[str]:
    """Runs that read an artifact of `run_id`, newest first."""
    with _open(ws) as db:
        if not _sync(ws, db):
            return []
        rows = db.execute(
            "SELECT id FROM runs WHERE EXISTS "
            f"(SELECT 1 FROM json_each(runs.inputs) WHERE value = ?) {_NEWEST_FIRST}",
            (run_id,),
        ).fetchall()
    return [row[0] for row in rows]


def inputs(
    ws: Workspace, progress: Progress | None = None, near: str | None = None
) -> list[axes.Inputs]:
    """What every run is compared by (see axes.Inputs), newest first.

    With `near`, only that run and the runs whose config, data, environment and seeds
    differ from its in at most one of the four (their code may differ): the only runs that
    can differ from it on one axis, when no setting merges or ignores axes.
    """
    from gitexp import axes, indexing

    with _open(ws) as db:
        if not _sync(ws, db):
            return []
        todo = db.execute(
            "SELECT r.id, r.tree FROM runs r LEFT JOIN inputs i ON i.id = r.id "
            "WHERE i.tree IS NULL OR i.tree != r.tree"
        ).fetchall()
        rows = []
        for done, (run_id, tree) in enumerate(todo, 1):
            (config,) = db.execute("SELECT config FROM runs WHERE id = ?", (run_id,)).fetchone()
            rows.append(indexing.inputs_row(ws.repo, run_id, tree, config))
            if progress is not None and (done % 100 == 0 or done == len(todo)):
                progress(done, len(todo))
        if rows:  # rows of runs gone from the branch are dropped; reads join runs anyway
            db.execute("DELETE FROM inputs WHERE id NOT IN (SELECT id FROM runs)")
            db.executemany(
                "INSERT OR REPLACE INTO inputs VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows
            )
        columns = (
            "r.id, r.config, i.snapshot, i.config_files, i.data, i.env_key, i.seeds_key, "
            "i.dirty_submodules, i.seed_values"
        )
        if near is None:
            sql = f"SELECT {columns} FROM runs r JOIN inputs i ON i.id = r.id WHERE"
            args: list[Any] = []
        else:
            # The few runs near `near` are found among the small inputs rows first (CROSS JOIN
            # fixes that order); the wide runs rows are read for those only: 40 -> 5 ms at
            # 10,000 runs.
            sql = (
                f"SELECT {columns} FROM inputs bi CROSS JOIN inputs i CROSS JOIN runs r "
                "ON r.id = i.id WHERE bi.id = ? AND (i.plain_config != bi.plain_config) + "
                "(i.data != bi.data) + (i.env_key != bi.env_key) + "
                "(i.seeds_key != bi.seeds_key OR i.seed_config != bi.seed_config) <= 1 AND"
            )
            args = [near]
        found = db.execute(
            f"{sql} r.status != ? ORDER BY r.started DESC, r.id DESC", [*args, INVALID]
        ).fetchall()
    return [
        axes.Inputs(
            run_id=row[0],
            config=json.loads(row[1]),
            snapshot=row[2],
            config_files=tuple(json.loads(row[3])),
            data=json.loads(row[4]),
            env_key=row[5],
            seeds_key=row[6],
            dirty_submodules=json.loads(row[7]),
            seed_values=frozenset(json.loads(row[8])),
        )
        for row in found
    ]


# --- where runs wrote their artifacts -----------------------------------------------------------
# A snapshot leaves these paths out of the code (DESIGN.md §1: outputs are never code). Read
# on first use, and only for runs that made artifacts: a launch asks only when the working
# tree has files no commit holds.


def artifact_paths(ws: Workspace) -> set[str]:
    """Every repo-relative path a run on the branch recorded as an artifact (file or folder)."""
    with _open(ws) as db:
        if not _sync(ws, db):
            return set()
        db.execute(
            "CREATE TABLE IF NOT EXISTS artifact_paths (id TEXT PRIMARY KEY, tree TEXT NOT NULL, "
            "paths TEXT NOT NULL)"
        )
        todo = db.execute(
            "SELECT r.id, r.tree FROM runs r LEFT JOIN artifact_paths a ON a.id = r.id "
            "WHERE r.artifacts != '[]' AND (a.tree IS NULL OR a.tree != r.tree)"
        ).fetchall()
        if todo:  # else no write: runs starting together only read
            from gitexp import indexing

            rows = [indexing.artifact_paths_row(ws.repo, run_id, tree) for run_id, tree in todo]
            db.execute("DELETE FROM artifact_paths WHERE id NOT IN (SELECT id FROM runs)")
            db.executemany("INSERT OR REPLACE INTO artifact_paths VALUES (?, ?, ?)", rows)
        found = db.execute(
            "SELECT DISTINCT j.value FROM artifact_paths a, json_each(a.paths) j "
            "JOIN runs r ON r.id = a.id AND r.tree = a.tree"
        ).fetchall()
    return {str(row[0]) for row in found}


# --- what verify worked out, by commit id ---------------------------------------------------------
# Commits never change, so what `verify` read from one holds for as long as the commit exists:
# its step of the branch's history, and what git said of its signature under one trust
# configuration (`trust`, a digest of everything git's verdict depends on). Keeping them makes
# a second `verify` read only the commits that are new. A read-only index (CI) keeps nothing.


def _verified_tables(db: sqlite3.Connection) -> None:
    # parents, trees: ids separated by spaces; created: run id and folder id, in turn; changes:
    # JSON, decoded only where a walk needs them. Split strings decode ten times faster.
    db.execute(
        "CREATE TABLE IF NOT EXISTS walked (commit_id TEXT PRIMARY KEY, parents TEXT NOT NULL, "
        "trees TEXT NOT NULL, created TEXT NOT NULL, changes TEXT NOT NULL)"
    )
    db.execute(
        "CREATE TABLE IF NOT EXISTS signatures (commit_id TEXT NOT NULL, trust TEXT NOT NULL, "
        "status TEXT NOT NULL, said TEXT NOT NULL, PRIMARY KEY (commit_id, trust))"
    )


Walked = tuple[str, str, str, str]  # a commit's parents, trees, created and changes, encoded


def walked(ws: Workspace) -> dict[str, Walked]:
    """Each commit's step as verify encoded it, by commit id; none when the index is unreadable."""
    try:
        with _open(ws) as db:
            _verified_tables(db)
            rows = db.execute("SELECT commit_id, parents, trees, created, changes FROM walked")
            return {row[0]: row[1:] for row in rows}
    except (OSError, sqlite3.Error):
        return {}


Verdict = tuple[str, str]  # a signature's status, and what git said of it
Signed = tuple[str, str]  # a commit's id, and the trust configuration's digest


def signatures(ws: Workspace, wanted: Sequence[Signed]) -> dict[Signed, Verdict]:
    """The verdicts already given on these commits, each under its trust configuration."""
    try:
        with _open(ws) as db:
            _verified_tables(db)
            db.execute("CREATE TEMP TABLE wanted (commit_id TEXT, trust TEXT)")
            db.executemany("INSERT INTO wanted VALUES (?, ?)", wanted)
            rows = db.execute(
                "SELECT s.commit_id, s.trust, s.status, s.said FROM signatures s JOIN wanted w "
                "ON w.commit_id = s.commit_id AND w.trust = s.trust"
            ).fetchall()
    except (OSError, sqlite3.Error):
        return {}
    return {(commit_id, trust): (status, said) for commit_id, trust, status, said in rows}


def remember_verified(
    ws: Workspace,
    steps: Mapping[str, Walked],
    verdicts: Mapping[Signed, Verdict],
    trusts: Sequence[str],
) -> None:
    """Keep new steps and verdicts; verdicts under trust configurations other than `trusts`
    (those in force now) are dropped, so that the table holds no more than the branch."""
    if not steps and not verdicts:
        return
    try:
        with _open(ws) as db:
            _verified_tables(db)
            db.executemany(
                "INSERT OR REPLACE INTO walked VALUES (?, ?, ?, ?, ?)",
                ((oid, *step) for oid, step in steps.items()),
            )
            if verdicts:
                marks = ", ".join("?" * len(trusts))
                db.execute(f"DELETE FROM signatures WHERE trust NOT IN ({marks})", list(trusts))
                db.executemany(
                    "INSERT OR REPLACE INTO signatures VALUES (?, ?, ?, ?)",
                    ((oid, trust, *verdict) for (oid, trust), verdict in verdicts.items()),
                )
    except (OSError, sqlite3.Error):
        pass  # a read-only checkout: the next verify works it out again
