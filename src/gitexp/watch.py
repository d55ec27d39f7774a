"""`gitexp watch`: the runs training now, polled from their folders under .git/gitexp/pending/.

Read through `history.live_runs`, lock-free and within the record reader's limits: watching
never slows or disturbs a run. Steps per second are measured over the last few polls, since
a run flushes its metrics about once a second.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from gitexp import history
from gitexp.workspace import Workspace

DEFAULT_METRICS = 4  # metrics shown when none are asked for: a table must fit a terminal
_RATE_WINDOW_S = 10.0  # steps per second over about this long


@dataclass(frozen=True)
class LiveRun:
    """One running run as `watch` shows it."""

    run_id: str
    name: str | None
    elapsed_s: float | None
    step: int | None  # the last step flushed
    steps_per_s: float | None
    metrics: tuple[tuple[str, float | None], ...]  # (name, last value), in column order

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.run_id,
            "name": self.name,
            "elapsed_s": self.elapsed_s,
            "step": self.step,
            "steps_per_s": self.steps_per_s,
            "metrics": dict(self.metrics),
        }


def _last_step(summary: Any) -> int | None:
    steps = [
        entry.get("last_step")
        for entry in summary.values()
        if isinstance(entry.get("last_step"), int) and not isinstance(entry.get("last_step"), bool)
    ]
    return max(steps) if steps else None


def _value(entry: Any) -> float | None:
    value = entry.get("last") if isinstance(entry, dict) else None
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


class Watcher:
    """Polls the live runs; remembers recent steps of each to tell its speed."""

    def __init__(self, ws: Workspace, metrics: Sequence[str] = ()) -> None:
        self.ws = ws
        self.metrics = tuple(metrics)
        self._seen: dict[str, deque[tuple[float, int]]] = {}

    def poll(self) -> list[LiveRun]:
        """The runs training now, newest first."""
        now = time.monotonic()
        found = []
        for run in history.live_runs(self.ws):
            step = _last_step(run.summary)
            found.append(
                LiveRun(
                    run_id=run.id,
                    name=run.name,
                    elapsed_s=run.duration_s,
                    step=step,
                    steps_per_s=self._rate(run.id, now, step, run.duration_s),
                    metrics=tuple(
                        (name, _value(run.summary.get(name))) for name in self._chosen(run.summary)
                    ),
                )
            )
        live = {run.run_id for run in found}
        self._seen = {k: v for k, v in self._seen.items() if k in live}
        return found

    def _chosen(self, summary: Any) -> Sequence[str]:
        return self.metrics or sorted(summary)[:DEFAULT_METRICS]

    def _rate(
        self, run_id: str, now: float, step: int | None, elapsed: float | None
    ) -> float | None:
        if step is None:
            return None
        seen = self._seen.setdefault(run_id, deque())
        seen.append((now, step))
        while len(seen) > 2 and now - seen[1][0] >= _RATE_WINDOW_S:
            seen.popleft()
        first_time, first_step = seen[0]
        if now - first_time >= 2.0:
            return max(step - first_step, 0) / (now - first_time)
        # Too soon to measure here: the average since the run started.
        return (step + 1) / elapsed if elapsed else None
