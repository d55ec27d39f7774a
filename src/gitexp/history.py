"""Reading runs back: listing with filters, and one record in full."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from gitexp import catalog, pending, store, yamlio
from gitexp.catalog import RunSummary
from gitexp.errors import GitexpError
from gitexp.record import DIFF, METRICS, OUTPUT, run_dir
from gitexp.workspace import Workspace

# Record files that are not YAML, and the key each has in the parsed view.
_TEXT_FILES = {DIFF: "diff", OUTPUT: "output"}


@dataclass(frozen=True)
class Record:
    """One run's record as committed: its raw files, and their parsed forms."""

    summary: RunSummary
    files: Mapping[str, bytes]
    used_by: tuple[str, ...] = ()  # runs that read this run's artifacts

    def parsed(self) -> dict[str, Any]:
        """Each file under its stem (`run`, `config`, …); text files as text, metrics as rows."""
        view: dict[str, Any] = {}
        for name, data in sorted(self.files.items()):
            where = f"{run_dir(self.summary.id)}/{name}"
            if name in _TEXT_FILES:
                view[_TEXT_FILES[name]] = data.decode(errors="replace")
            elif name == METRICS:
                view["metrics"] = _metric_rows(data)
            elif name.endswith(".yaml"):
                view[name.removesuffix(".yaml")] = yamlio.load(data, where)
        view["lineage"] = {"inputs": list(self.summary.inputs), "used_by": list(self.used_by)}
        return view


def _metric_rows(data: bytes) -> list[dict[str, Any]]:
    rows = []
    for line in data.decode().splitlines()[1:]:
        step, moment, name, value = line.split("\t")
        rows.append({"step": int(step), "time": float(moment), "name": name, "value": float(value)})
    return rows


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


def load(ws: Workspace, ref: str, progress: catalog.Progress | None = None) -> Record:
    """The record of the run that `ref` names."""
    pending.recover(ws)
    summary = catalog.resolve(ws, ref, progress)
    tip = store.tip(ws)
    if tip is None:  # pragma: no cover - resolve found a run, so the branch exists
        raise GitexpError("there are no runs yet; record one with `gitexp run -- CMD`")
    files = store.read_files(ws, tip, summary.id)
    return Record(summary, files, tuple(catalog.used_by(ws, summary.id)))
