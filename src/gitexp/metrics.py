"""Metric time series: `Run.log` appends, a file under `.git/gitexp/` keeps them while the run
lives, and the record gets `metrics.tsv` (step, time, name, value) and `summary.yaml`.

The stream file is already in the record's TSV format, so finishing a run of a million steps
copies bytes instead of re-reading them, and the summary is kept up to date as rows flush.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from gitexp import yamlio

STREAM = "metrics.tsv"
SUMMARY_STREAM = "summary.json"
HEADER = "step\ttime\tname\tvalue\n"
_FLUSH_EVERY = 2048  # log calls per write: bounded memory, negligible syscalls


def scalar(name: str, value: Any) -> float:
    """`value` as a float: python and numpy numbers, 0-d arrays and tensors; else TypeError."""
    if getattr(value, "ndim", 0) != 0 or isinstance(value, (str, bytes)):
        raise TypeError(
            f"metric {name!r} must be a single number, not {type(value).__name__}"
            f"{getattr(value, 'shape', '')}; log its mean or one element"
        )
    try:
        return float(value)
    except (TypeError, ValueError):
        raise TypeError(
            f"metric {name!r} must be a single number, not {type(value).__name__}"
        ) from None


class Summary:
    """Last, min and max of each metric with their steps; NaN counted, never a min or max."""

    def __init__(self) -> None:
        # name → [last, last_step, min, min_step, max, max_step, count, nan_count]
        self.seen: dict[str, list[Any]] = {}

    def add(self, step: int, name: str, value: float) -> None:
        entry = self.seen.get(name)
        if entry is None:
            entry = self.seen[name] = [value, step, math.nan, None, math.nan, None, 0, 0]
        entry[0], entry[1] = value, step
        entry[6] += 1
        if value != value:  # NaN
            entry[7] += 1
            return
        if not value >= entry[2]:  # also true while min is still NaN
            entry[2], entry[3] = value, step
        if not value <= entry[4]:
            entry[4], entry[5] = value, step

    def as_dict(self) -> dict[str, dict[str, Any]]:
        result = {}
        for name in sorted(self.seen):
            last, last_step, low, low_step, high, high_step, count, nans = self.seen[name]
            entry: dict[str, Any] = {"last": last, "last_step": last_step}
            if low_step is not None:
                entry.update(min=low, min_step=low_step, max=high, max_step=high_step)
            entry["count"] = count
            if nans:
                entry["nan_count"] = nans
            result[name] = entry
        return result

    @classmethod
    def from_dict(cls, data: Mapping[str, Mapping[str, Any]]) -> Summary:
        summary = cls()
        for name, e in data.items():
            summary.seen[name] = [
                e["last"], e["last_step"], e.get("min", math.nan), e.get("min_step"),
                e.get("max", math.nan), e.get("max_step"), e["count"], e.get("nan_count", 0),
            ]  # fmt: skip
        return summary


def _text(value: float) -> str:
    return repr(value) if value == value and value not in (math.inf, -math.inf) else str(value)


class MetricWriter:
    """Buffers `log` calls and appends them, formatted, to the stream file in batches."""

    def __init__(self, folder: Path, started: float) -> None:
        self.path = folder / STREAM
        self.summary_path = folder / SUMMARY_STREAM
        self.started = started
        self.step = 0
        self.summary = Summary()
        self._rows: list[tuple[int, float, Mapping[str, float]]] = []
        if self.path.exists():  # joining a run whose other process already logged
            self.summary = _read_summary(folder) or self.summary
        else:
            self.path.write_text(HEADER)

    def log(self, metrics: Mapping[str, Any], step: int | None = None) -> None:
        if step is None:
            step = self.step
        self.step = step + 1
        values = {}
        for name, value in metrics.items():
            values[name] = value if type(value) is float else scalar(name, value)
        self._rows.append((step, time.time(), values))
        if len(self._rows) >= _FLUSH_EVERY:
            self.flush()

    def flush(self) -> None:
        """Append buffered rows to the stream; what is flushed survives a crash."""
        if not self._rows:
            return
        lines = []
        started, add = self.started, self.summary.add
        for step, moment, values in self._rows:
            offset = f"{moment - started:.3f}"
            for name, value in values.items():
                add(step, name, value)
                lines.append(f"{step}\t{offset}\t{name}\t{_text(value)}\n")
        self._rows.clear()
        with open(self.path, "a", encoding="utf-8") as f:
            f.write("".join(lines))
        partial = self.summary_path.with_suffix(".partial")
        partial.write_text(json.dumps(self.summary.as_dict()))
        os.replace(partial, self.summary_path)


def _read_summary(folder: Path) -> Summary | None:
    path = folder / SUMMARY_STREAM
    try:
        return Summary.from_dict(json.loads(path.read_text()))
    except (OSError, ValueError, KeyError):
        return None


def _summary_from_stream(path: Path) -> Summary:
    """Rebuild the summary from the stream itself, for a run that died before saying it."""
    summary = Summary()
    with open(path, encoding="utf-8", errors="replace") as f:
        next(f, None)
        for line in f:
            parts = line.rstrip("\n").split("\t")
            if len(parts) != 4:
                continue  # the last line of a crashed run may be cut short
            try:
                summary.add(int(parts[0]), parts[2], float(parts[3]))
            except ValueError:
                continue
    return summary


def record(folder: Path) -> tuple[bytes, bytes] | None:
    """metrics.tsv and summary.yaml for the record, or None if nothing was logged."""
    path = folder / STREAM
    if not path.exists():
        return None
    data = path.read_bytes()
    if data.count(b"\n") <= 1:
        return None
    if not data.endswith(b"\n"):  # cut short by a crash: drop the partial line
        data = data[: data.rfind(b"\n") + 1]
    summary = _read_summary(folder)
    if summary is None or sum(e[6] for e in summary.seen.values()) != data.count(b"\n") - 1:
        summary = _summary_from_stream(path)
    return data, yamlio.dump(summary.as_dict())
