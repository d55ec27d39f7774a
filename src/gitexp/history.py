"""Reading runs back: listing with filters, and one record in full."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pygit2

from gitexp import catalog, pending, reader, store
from gitexp.catalog import RunSummary
from gitexp.errors import GitexpError, Unreadable
from gitexp.record import DIFF, METRICS, OUTPUT, run_dir
from gitexp.workspace import Workspace

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
) -> list[RunSummary]:
    """Runs newest first, keeping those matching every filter given."""
    pending.recover(ws)
    query = catalog.RunQuery(statuses=status, tags=tags, name=name, limit=limit)
    return catalog.runs(ws, query, progress)


def record_files(ws: Workspace, folder: pygit2.Tree, run_id: str) -> dict[str, bytes]:
    """Every file of a record folder but metrics.tsv (streamed instead), within its limit."""
    store.check_folder_size(ws.repo, folder, run_dir(run_id))
    return {
        str(entry.name): reader.file(ws.repo, folder, run_id, str(entry.name)) or b""
        for entry in folder
        if entry.name != METRICS
    }


def load(ws: Workspace, ref: str, progress: catalog.Progress | None = None) -> Record:
    """The record of the run that `ref` names."""
    pending.recover(ws)
    summary = catalog.resolve(ws, ref, progress)
    if summary.status == catalog.INVALID:
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
