"""A run as the plain `gitexp log` table shows it: its cells as text, terminal-safe.

The index makes them once, when it reads a record (catalog), so that listing 10,000 runs
formats none; a live run's are made as it is listed.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, NamedTuple

from gitexp.reader import terminal_safe as safe
from gitexp.record import shown_by_default

if TYPE_CHECKING:  # the catalog builds on these cells: no import at run time
    from gitexp.catalog import RunSummary

HEADER = ("id", "name", "status", "started (UTC)", "duration", "tags")


class Cells(NamedTuple):
    """One row of the plain `gitexp log` table."""

    id: str
    started: str  # as recorded, for the order of runs
    status: str
    problem: str | None  # why the record cannot be read, for status `invalid`
    fields: tuple[str, ...]  # under HEADER, each terminal-safe
    metrics: Mapping[str, str]  # each metric's last value as the table shows it


def duration(seconds: float | None) -> str:
    """`0.4s`, `12s`, `3m 05s`, `2h 07m`."""
    if seconds is None:
        return ""
    if seconds < 10:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes == 0:
        return f"{secs}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m" if hours else f"{minutes}m {secs:02d}s"


def started(text: str) -> str:
    """`2026-11-22T13:03:51.123Z` → `2026-11-22 13:03` (UTC, as recorded)."""
    return text[:16].replace("T", " ")


def number(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "" if value is None else str(value)


def of(run: RunSummary) -> Cells:
    """The cells of `run`."""
    status = f"{run.status} (archived)" if run.archived else run.status
    fields = (
        safe(run.id),
        safe(run.name or ""),
        status,  # a status the reader knows
        safe(started(run.started)),
        duration(run.duration_s),
        safe(", ".join(run.tags)),
    )
    metrics = {
        safe(name): number(entry.get("last"))
        for name, entry in run.summary.items()
        if isinstance(entry, Mapping) and shown_by_default(name)
    }
    return Cells(run.id, run.started, run.status, run.problem, fields, metrics)


def encode(cells: Cells) -> str:
    """How the index keeps a run's cells: what `decode` reads back, with its row's id,
    start, status and problem."""
    return json.dumps([list(cells.fields), dict(cells.metrics)])


def decode(rows: list[tuple[str, str, str, str | None, str]]) -> list[Cells]:
    """Cells of the index's rows (id, started, status, problem, cells), every row's JSON
    decoded in one call."""
    decoded = json.loads("[" + ",".join(row[4] for row in rows) + "]")
    return [
        Cells(row[0], row[1], row[2], row[3], tuple(fields), metrics)
        for row, (fields, metrics) in zip(rows, decoded, strict=True)
    ]
