"""Metric time series: streamed as JSON lines while a run lives, recorded as TSV at the end."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gitexp import yamlio

STREAM = "metrics.jsonl"
TSV_HEADER = b"step\ttime\tname\tvalue\n"


@dataclass
class Extremes:
    """Last, min and max of one metric, with the step of each (summary.yaml)."""

    last: float
    last_step: int
    min: float
    min_step: int
    max: float
    max_step: int
    count: int = 1
    nan: int = field(default=0)

    def update(self, step: int, value: float) -> None:
        self.count += 1
        self.last, self.last_step = value, step
        if math.isnan(value):
            self.nan += 1
            return
        if math.isnan(self.min) or value < self.min:
            self.min, self.min_step = value, step
        if math.isnan(self.max) or value > self.max:
            self.max, self.max_step = value, step


def _points(path: Path) -> Iterator[tuple[int, float, str, float]]:
    with open(path, "rb") as f:
        for line in f:
            try:
                entry = json.loads(line)
            except ValueError:
                continue  # a line cut short by a crash
            step, moment = int(entry["step"]), float(entry["time"])
            for name, value in entry["values"].items():
                yield step, moment, name, float(value)


def _number(value: float) -> str:
    return repr(value) if math.isfinite(value) else str(value)


def record(folder: Path) -> tuple[bytes, bytes] | None:
    """metrics.tsv and summary.yaml from the stream in `folder`, or None if nothing was logged."""
    path = folder / STREAM
    if not path.exists():
        return None
    rows = [TSV_HEADER]
    summary: dict[str, Extremes] = {}
    for step, moment, name, value in _points(path):
        rows.append(f"{step}\t{moment:.3f}\t{name}\t{_number(value)}\n".encode())
        if name in summary:
            summary[name].update(step, value)
        else:
            seen = Extremes(value, step, value, step, value, step)
            seen.nan = int(math.isnan(value))
            summary[name] = seen
    if len(rows) == 1:
        return None
    return b"".join(rows), yamlio.dump(
        {name: _summary_entry(summary[name]) for name in sorted(summary)}
    )


def _summary_entry(seen: Extremes) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "last": seen.last,
        "last_step": seen.last_step,
        "min": seen.min,
        "min_step": seen.min_step,
        "max": seen.max,
        "max_step": seen.max_step,
        "count": seen.count,
    }
    if seen.nan:
        entry["nan_count"] = seen.nan
    return entry
