"""Reading runs back: listing with filters, and one record in full."""

from __future__ import annotations

import json
import os
import stat
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from gitexp import catalog, cells, liveness, metrics, reader, yamlio
from gitexp.catalog import RunSummary
from gitexp.config import flatten
from gitexp.errors import GitexpError, Unreadable
from gitexp.record import CONFIG, DIFF, FROM_CODE, INVALID, METRICS, OUTPUT, RUN, run_dir
from gitexp.workspace import Workspace

if TYPE_CHECKING:
    import pygit2

# Record files that are not YAML, and the key each has in the parsed view.
_TEXT_FILES = {DIFF: "diff", OUTPUT: "output"}


@dataclass(frozen=True)
class Record:
    """One run's record as committed: its files (metrics.tsv streamed), read through the one
    record reader, so a hostile record is Unreadable rather than harmful."""

    summary: RunSummary
    files: Mapping[str, bytes]  # every file but metrics.tsv, each within its size limit
    used_by: tuple[str, ...] = ()  # runs that read this run's artifacts
    metric_lines: Callable[[], Iterator[bytes]] = lambda: iter(())  # metrics.tsv, streamed

    def parsed(self) -> dict[str, Any]:
        """Each file under its stem (`run`, `config`, …); text files as text. Not metrics:
        see `metric_rows`, which streams them."""
        view: dict[str, Any] = {}
        run_id = self.summary.id
        for name, data in sorted(self.files.items()):
            if name in _TEXT_FILES:
                view[_TEXT_FILES[name]] = data.decode(errors="replace")
            elif name.endswith(".yaml"):
                view[name.removesuffix(".yaml")] = reader.load_yaml(run_id, name, data)
        view["lineage"] = {"inputs": list(self.summary.inputs), "used_by": list(self.used_by)}
        return view

    def metric_rows(self) -> Iterator[reader.MetricRow]:
        return reader.metric_rows(self.summary.id, self.metric_lines())


def runs(
    ws: Workspace,
    status: Sequence[str] = (),
    tags: Sequence[str] = (),
    name: str | None = None,
    limit: int | None = None,
    progress: catalog.Progress | None = None,
    live: bool = True,
    archived: bool = True,
) -> list[RunSummary]:
    """Runs newest first, keeping those matching every filter given; with `live`, the runs
    training now among them (status `running`); without `archived`, not archived runs."""
    recover(ws)  # first: a run left behind is then listed as recorded
    query = catalog.RunQuery(statuses=status, tags=tags, name=name, limit=limit, archived=archived)
    return _with_live(ws, catalog.runs(ws, query, progress), query, live, lambda run: run)


def briefs(
    ws: Workspace, query: catalog.RunQuery, progress: catalog.Progress | None = None
) -> list[cells.Cells]:
    """The runs `query` asks for, live ones among them, as the plain `log` table shows them."""
    recover(ws)
    return _with_live(ws, catalog.briefs(ws, query, progress), query, True, cells.of)


def json_lines(
    ws: Workspace, query: catalog.RunQuery, progress: catalog.Progress | None = None
) -> list[catalog.JsonLine]:
    """The runs `query` asks for, live ones among them, as `gitexp log --json` prints each."""
    recover(ws)

    def line(run: RunSummary) -> catalog.JsonLine:
        return catalog.JsonLine(run.id, run.started, run.status, run.problem, run.json_line())

    return _with_live(ws, catalog.json_lines(ws, query, progress), query, True, line)


class _Listed(Protocol):
    @property
    def id(self) -> str: ...
    @property
    def started(self) -> str: ...


_Item = TypeVar("_Item", bound=_Listed)


def _with_live(
    ws: Workspace,
    found: list[_Item],
    query: catalog.RunQuery,
    live: bool,
    shown: Callable[[RunSummary], _Item],
) -> list[_Item]:
    """`found` with the runs training now that `query` keeps, each as `shown` makes it."""
    if not live or (query.statuses and "running" not in query.statuses):
        return found
    # Read after the branch: a run recorded meanwhile wrote its outcome into its run.yaml
    # before its commit, so it is not listed twice.
    known = {run.id for run in found}
    training = [
        shown(run)
        for run in live_runs(ws)
        if run.id not in known and _matches(run, query.tags, query.name)
    ]
    if not training:
        return found
    merged = sorted([*found, *training], key=lambda run: (run.started, run.id), reverse=True)
    return merged[: query.limit]


def _matches(run: RunSummary, tags: Sequence[str], name: str | None) -> bool:
    # As the index filters: on text as records hold it.
    wanted = {yamlio.text(tag) for tag in tags}
    return wanted <= set(run.tags) and (name is None or run.name == yamlio.text(name))


def recover(ws: Workspace) -> None:
    """Record the runs left behind first, so that they are listed. What committing takes
    (libgit2, signing) is loaded only when there is one: listings stay fast beside live runs."""
    if liveness.left_behind(ws):
        from gitexp import pending

        pending.recover(ws)


# --- one record in full -------------------------------------------------------------------
# Reading a record opens git objects: `store` (and with it libgit2) is loaded here, on first
# use, never by a listing.


def record_files(ws: Workspace, folder: pygit2.Tree, run_id: str) -> dict[str, bytes]:
    """Every file of a record folder but metrics.tsv (streamed instead), within its limit."""
    from gitexp import store

    store.check_folder_size(ws.repo, folder, run_dir(run_id))
    return {
        str(entry.name): store.record_file(ws.repo, folder, run_id, str(entry.name)) or b""
        for entry in folder
        if entry.name != METRICS
    }


def resolve(ws: Workspace, ref: str, progress: catalog.Progress | None = None) -> RunSummary:
    """The recorded run `ref` names; one that is still training is named as such."""
    try:
        return catalog.resolve(ws, ref, progress)
    except GitexpError:
        _refuse_live(ws, ref)
        raise


def resolve_many(
    ws: Workspace, ref: str, progress: catalog.Progress | None = None
) -> list[RunSummary]:
    """The runs `ref` names, for commands that take several: as `resolve` finds one, or
    every run of a name that several share (a seed group run as `--name base`)."""
    try:
        return [resolve(ws, ref, progress)]
    except GitexpError:
        named = runs(ws, name=ref, live=False, progress=progress) if ref else []
        if len(named) > 1:
            return named
        raise


def load(ws: Workspace, ref: str, progress: catalog.Progress | None = None) -> Record:
    """The record of the run that `ref` names."""
    from gitexp import store

    recover(ws)
    summary = resolve(ws, ref, progress)
    if summary.status == INVALID:
        raise Unreadable(summary.problem or f"run {summary.id} cannot be read")
    tip = store.tip(ws)
    if tip is None:  # pragma: no cover - resolve found a run, so the branch exists
        raise GitexpError("there are no runs yet; record one with `gitexp run -- CMD`")
    folder = store.run_folder(ws, tip, summary.id)
    files = record_files(ws, folder, summary.id)
    where = f"{run_dir(summary.id)}/{METRICS}"

    def metric_lines() -> Iterator[bytes]:
        return store.stream_file(ws, folder, METRICS, where)

    return Record(summary, files, tuple(catalog.used_by(ws, summary.id)), metric_lines)


def _refuse_live(ws: Workspace, ref: str) -> None:
    """Say so when `ref` names no record because it names a run that is still training."""
    training = live_runs(ws)
    try:
        catalog.choose([(run.id, run.name) for run in training], ref)
    except GitexpError:
        return  # no live run either: the index's own error stands
    # `ref` may also name recorded runs (a shared name): then only the error that lists them
    # all is right. Listing every run costs, but only on this error's path.
    everyone = sorted([(run.id, run.name) for run in [*catalog.runs(ws), *training]], reverse=True)
    try:
        run_id = catalog.choose(everyone, ref)
    except GitexpError:
        return
    if run_id in {run.id for run in training}:
        raise GitexpError(
            f"run {run_id} is still running, so it has no record yet; "
            "`gitexp log --status running` lists live runs"
        )


# --- runs in progress -------------------------------------------------------------------------
# Read from their folders under .git/gitexp/pending/ without a lock, through the record
# reader's limits, and never indexed: they change until they end.


def live_runs(ws: Workspace) -> list[RunSummary]:
    """Runs training now, newest first: status `running`, their duration and metrics so far."""
    now = time.time()
    found = [_live(folder, now) for folder, alive in liveness.in_progress(ws) if alive]
    runs = [run for run in found if run is not None]
    return sorted(runs, key=lambda run: (run.started, run.id), reverse=True)


def unrecorded(ws: Workspace) -> list[str]:
    """Runs that ended but are not on the branch yet (their commit failed, or recovering them
    did): `gitexp recover` records them, or says why it cannot."""
    return [folder.name for folder, alive in liveness.in_progress(ws) if not alive]


def _live(folder: Path, now: float) -> RunSummary | None:
    """A live run as listings show it; None when its run.yaml cannot be read, or when the
    run has ended and is being recorded this moment."""
    run_id = folder.name
    if not reader.is_run_id(run_id):
        return None
    try:
        info = reader.run_info(run_id, _small_file(folder / RUN))
    except Unreadable:
        return None
    if info.status != "running":
        return None
    given = _mapping(run_id, FROM_CODE, folder)  # what the script told gitexp.init
    name, notes, tags = given.get("name"), given.get("notes"), given.get("tags")
    try:
        elapsed: float | None = round(now - liveness.parse_utc(info.started).timestamp(), 3)
    except ValueError:
        elapsed = None
    return RunSummary(
        id=run_id,
        name=info.name or (name if isinstance(name, str) else None),
        status=info.status,
        started=info.started,
        duration_s=elapsed,
        tags=tuple(dict.fromkeys([*info.tags, *_texts(tags)])),
        notes=info.notes or (notes if isinstance(notes, str) else None),
        summary=_metrics_so_far(folder),
        inputs=info.inputs,
        command_json=json.dumps(list(info.command)),
        config_json=json.dumps(flatten(_mapping(run_id, CONFIG, folder)), default=str),
    )


def _texts(value: Any) -> list[str]:
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []


def _mapping(run_id: str, name: str, folder: Path) -> dict[str, Any]:
    """A YAML file of a live run's folder, empty when absent or unreadable."""
    try:
        return reader.mapping(run_id, name, _small_file(folder / name))
    except Unreadable:
        return {}


def _metrics_so_far(folder: Path) -> dict[str, dict[str, Any]]:
    """Each metric's last, min and max as the run last flushed them (summary.json)."""
    data = _small_file(folder / metrics.SUMMARY_STREAM)
    try:
        loaded = json.loads(data) if data is not None else None
    except (ValueError, RecursionError):
        return {}
    if not isinstance(loaded, dict):
        return {}
    return {
        name: entry
        for name, entry in loaded.items()
        if isinstance(entry, dict)
        and all(
            (isinstance(v, (int, float)) and not isinstance(v, bool)) or v is None
            for v in entry.values()
        )
    }


def _small_file(path: Path) -> bytes | None:
    """A file of a live run's folder; None unless a regular file. Read to one byte past a
    record file's limit, which the reader then refuses: a FIFO or a huge file never stalls
    `log`."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW)
    except OSError:
        return None
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        return f.read(reader.YAML_LIMITS.file_size + 1)
