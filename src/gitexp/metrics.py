"""Metric time series: `Run.log` appends, a file under `.git/gitexp/` keeps them while the run
lives, and the record gets `metrics.tsv` (step, time, name, value) and `summary.yaml`.

The stream file is already in the record's TSV format, so finishing a run of a million steps
copies bytes instead of re-reading them, and the summary is kept up to date as rows flush.
"""

from __future__ import annotations

import json
import math
import sys
import threading
import time
from collections import deque
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from gitexp import yamlio
from gitexp.atomic import replace_file
from gitexp.device import DeviceValues, Pending, is_tensor
from gitexp.record import HEARTBEAT

STREAM = "metrics.tsv"
SUMMARY_STREAM = "summary.json"
RANKS = "ranks"  # other ranks' streams, in the run's folder: ranks/<N>/metrics.tsv
HEADER = "step\ttime\tname\tvalue\n"
_FLUSH_EVERY = 2048  # log calls per write: bounded memory, negligible syscalls
FLUSH_INTERVAL_S = 1.0  # and at least this often: the bound on what a SIGKILL can lose


def scalar(name: str, value: Any) -> float:
    """`value` as a float: python and numpy numbers, 0-d arrays and tensors; else TypeError."""
    if getattr(value, "ndim", 0) != 0 or isinstance(value, (str, bytes)):
        raise TypeError(
            f"metric {name!r} must be a single number, not {type(value).__name__}"
            f"{getattr(value, 'shape', '')}; log its mean or one element"
        )
    try:
        return float(value)
    except OverflowError:  # an int past a float's range: as far as a float goes
        return math.inf if value > 0 else -math.inf
    except (TypeError, ValueError):
        raise TypeError(
            f"metric {name!r} must be a single number, not {type(value).__name__}"
        ) from None


# A metric's running summary: [last, last_step, min, min_step, max, max_step, count, nans].
# A list, not an object: it is updated for every logged value.
_LAST, _LAST_STEP, _MIN, _MIN_STEP, _MAX, _MAX_STEP, _COUNT, _NANS = range(8)


class Summary:
    """Last, min and max of each metric with their steps; NaN counted, never a min or max."""

    def __init__(self) -> None:
        self.seen: dict[str, list[Any]] = {}

    def add(self, step: int, name: str, value: float) -> None:
        entry = self.seen.get(name)
        if entry is None:
            entry = self.seen[name] = [value, step, math.inf, None, -math.inf, None, 0, 0]
        _update(entry, step, value)

    def count(self) -> int:
        return sum(entry[_COUNT] for entry in self.seen.values())

    def as_dict(self) -> dict[str, dict[str, Any]]:
        result = {}
        for name in sorted(self.seen):
            last, last_step, low, low_step, high, high_step, count, nans = self.seen[name]
            entry: dict[str, Any] = {"last": last, "last_step": last_step}
            if low_step is not None:  # some value was not NaN
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
                e["last"], e["last_step"], e.get("min", math.inf), e.get("min_step"),
                e.get("max", -math.inf), e.get("max_step"), e["count"], e.get("nan_count", 0),
            ]  # fmt: skip
        return summary


def _update(entry: list[Any], step: int, value: float) -> None:
    entry[_LAST] = value
    entry[_LAST_STEP] = step
    entry[_COUNT] += 1
    if value < entry[_MIN] or (entry[_MIN_STEP] is None and value == value):
        entry[_MIN] = value
        entry[_MIN_STEP] = step
    if value > entry[_MAX] or (entry[_MAX_STEP] is None and value == value):
        entry[_MAX] = value
        entry[_MAX_STEP] = step
    if value != value:
        entry[_NANS] += 1


class MetricWriter:
    """Buffers `log` calls and appends them, formatted, to the stream file in batches.

    Once `start`ed, a background thread flushes every FLUSH_INTERVAL_S, so whatever `log`
    accepted is on disk within that bound even when the script stops logging or is killed.
    """

    def __init__(
        self, folder: Path, started: float, flush_interval: float = FLUSH_INTERVAL_S
    ) -> None:
        self.path = folder / STREAM
        self.heartbeat = folder / HEARTBEAT
        self.flush_interval = flush_interval
        self._next_flush = time.time() + flush_interval
        self.summary_path = folder / SUMMARY_STREAM
        self.started = started
        self.step = 0
        self.summary = Summary()
        # A deque: `log` appends on one end while the flusher thread pops from the other.
        # A row's values are floats, or Pending slots of logged tensors (see device.py).
        self._rows: deque[tuple[int, float, dict[str, Any]]] = deque()
        self._device: DeviceValues | None = None  # made when the first tensor is logged
        self._flushing = threading.Lock()
        self._stop = threading.Event()
        self._broken = False
        if self.path.exists():  # joining a run whose other process already logged
            self.summary = _read_summary(folder) or self.summary
        else:
            self.path.write_text(HEADER)

    def start(self) -> None:
        """Flush in the background from now on, and say that the run lives."""
        thread = threading.Thread(target=self._background, name="gitexp-metrics", daemon=True)
        thread.start()

    def _background(self) -> None:
        while not self._stop.wait(self.flush_interval):
            self.flush()
            try:
                self.heartbeat.touch()
            except OSError:
                pass  # the run's state is gone; flush() has already said so

    def stop(self) -> None:
        """Read every logged tensor, flush what is left and stop the background thread."""
        self._stop.set()
        if self._device is not None:
            self._device.drain()
        self.flush()

    def log(self, metrics: Mapping[str, Any], step: int | None = None) -> None:
        """Record scalar metrics at `step` (the previous step + 1 when omitted)."""
        if step is None:
            step = self.step
        self.step = step + 1
        values = dict(metrics)  # the caller may reuse its dict
        for name, value in values.items():
            if type(value) is float:
                continue
            if is_tensor(value) and value.dim() == 0:  # kept, read later: no device sync
                if self._device is None:
                    self._device = DeviceValues()
                values[name] = self._device.add(value)
            else:
                values[name] = scalar(name, value)
        moment = time.time()
        self._rows.append((step, moment, values))
        if len(self._rows) >= _FLUSH_EVERY or moment >= self._next_flush:
            self.flush()

    def flush(self) -> None:
        """Append buffered rows to the stream; what is flushed survives a crash."""
        with self._flushing:
            self._next_flush = time.time() + self.flush_interval
            rows = self._rows
            if not rows:
                return
            if self._broken:
                rows.clear()
                return
            if self._device is not None:
                self._device.poll()
            lines: list[str] = []
            line = lines.append
            seen, started = self.summary.seen, self.started
            # The loop body is _update inlined: it runs for every value ever logged.
            while rows:
                step, moment, values = rows[0]
                if self._device is not None and not _landed(values):
                    break  # in order: this row and those after it wait for their tensors
                rows.popleft()
                prefix = f"{step}\t{moment - started:.3f}\t"
                for name, value in values.items():
                    if name not in seen:  # a new metric: a name the TSV row can hold
                        name = _column(name)
                    line(f"{prefix}{name}\t{value!r}\n")  # repr: shortest exact; nan, inf
                    entry = seen.get(name)
                    if entry is None:
                        entry = seen[name] = [value, step, math.inf, None, -math.inf, None, 0, 0]
                    entry[0] = value
                    entry[1] = step
                    entry[6] += 1
                    if value < entry[2] or (entry[3] is None and value == value):
                        entry[2] = value
                        entry[3] = step
                    if value > entry[4] or (entry[5] is None and value == value):
                        entry[4] = value
                        entry[5] = step
                    if value != value:
                        entry[7] += 1
            try:
                with open(self.path, "a", encoding="utf-8") as f:
                    f.write("".join(lines))
                replace_file(self.summary_path, json.dumps(self.summary.as_dict()).encode())
            except OSError as e:
                # Training must never die because of gitexp: say it once, then go on.
                self._broken = True
                print(
                    f"gitexp: cannot write metrics to {self.path.parent} ({e.strerror or e}); "
                    "training goes on, but this run's metrics from here on are not recorded",
                    file=sys.stderr,
                )


def _landed(values: dict[str, Any]) -> bool:
    """Whether every value of a row is known, the tensors' slots replaced by their values."""
    for name, value in values.items():
        if type(value) is Pending:
            if value.value is None:
                return False
            values[name] = value.value
    return True


def _column(name: str) -> str:
    """A metric name as one TSV field: tabs, newlines and other controls written as escapes."""
    if name.isprintable():
        return name
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in name)


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
            _add_line(summary, line)
    return summary


def _add_line(summary: Summary, line: str) -> None:
    parts = line.rstrip("\n").split("\t")
    if len(parts) != 4:
        return  # the last line of a crashed run may be cut short
    try:
        summary.add(int(parts[0]), parts[2], float(parts[3]))
    except ValueError:
        return


def _whole_lines(data: bytes) -> bytes:
    """A stream without the partial line a crash may have cut short."""
    return data if data.endswith(b"\n") else data[: data.rfind(b"\n") + 1]


def _rank_rows(folder: Path) -> list[bytes]:
    """The rows other ranks logged (`init(all_ranks=True)`), each name under `rank<N>/`."""
    found = []
    ranks = folder / RANKS
    numbered = sorted((int(p.name), p) for p in ranks.iterdir() if p.name.isdigit()) \
        if ranks.is_dir() else []  # fmt: skip
    for rank, where in numbered:
        path = where / STREAM
        if not path.exists():
            continue
        rows = []
        for line in _whole_lines(path.read_bytes()).splitlines(keepends=True)[1:]:
            parts = line.split(b"\t", 3)
            if len(parts) == 4:
                parts[2] = b"rank%d/" % rank + parts[2]
                rows.append(b"\t".join(parts))
        found.append(b"".join(rows))
    return found


def record(folder: Path) -> tuple[bytes, bytes] | None:
    """metrics.tsv and summary.yaml for the record, or None if nothing was logged: the
    training's rows, then the system metrics `gitexp run` sampled beside it (system.py)."""
    from gitexp.system import STREAM as SYSTEM

    path, sampled = folder / STREAM, folder / SYSTEM
    data = _whole_lines(path.read_bytes()) if path.exists() else HEADER.encode()
    summary = _read_summary(folder)
    if summary is None or summary.count() != data.count(b"\n") - 1:
        summary = _summary_from_stream(path) if path.exists() else Summary()
    for extra in [*_rank_rows(folder), *([_whole_lines(sampled.read_bytes())]
                                        if sampled.exists() else [])]:  # fmt: skip
        data += extra
        for line in extra.decode("utf-8", "replace").splitlines():
            _add_line(summary, line)
    if data.count(b"\n") <= 1:
        return None
    return data, yamlio.dump(summary.as_dict())
