"""`gitexp plot`: one metric's curves of several runs, in the terminal or as an image.

Series are streamed from each record's metrics.tsv through the record reader and reduced as
they stream (step range, moving average, then bucket means), so memory stays bounded however
long a run was. Runs that differ only by seed are drawn as one curve: their mean, with a band
of one standard deviation. Each curve is named by the config keys that differ among the
curves, not by run id. plotext (terminal) and matplotlib (images, an optional extra) load
only here, and only when drawing.
"""

from __future__ import annotations

import json
import math
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gitexp import axes, catalog, history, reader
from gitexp.comparison.groups import seed_groups
from gitexp.errors import GitexpError
from gitexp.workspace import Workspace

MAX_POINTS = 1000  # per series in an image; a terminal asks for its own width
MAX_SMOOTH = 100_000  # the longest moving-average window: its values are held in memory
IMAGE_SUFFIXES = (".png", ".svg")
_LABEL_WIDTH = 60
_TERMINAL_LIMIT = 1e300


@dataclass(frozen=True)
class StepRange:
    """The steps to draw, both ends included; None is open."""

    first: int | None = None
    last: int | None = None

    def __contains__(self, step: int) -> bool:
        return (self.first is None or step >= self.first) and (
            self.last is None or step <= self.last
        )


def parse_steps(text: str) -> StepRange:
    """`100:500`, `:500` or `100:` as a StepRange; ValueError says what is wrong."""
    first, colon, last = text.partition(":")
    if not colon:
        raise ValueError(f"{text!r} is not a step range; write FIRST:LAST, such as 100:500")
    try:
        found = StepRange(
            int(first) if first.strip() else None, int(last) if last.strip() else None
        )
    except ValueError:
        raise ValueError(f"{text!r} is not a step range: the steps must be whole numbers") from None
    if found.first is not None and found.last is not None and found.first > found.last:
        raise ValueError(f"{text!r} is empty: its first step comes after its last")
    return found


@dataclass(frozen=True)
class Curve:
    """One line of the plot: a run, or the mean of a seed group with its spread."""

    label: str
    run_ids: tuple[str, ...]
    steps: tuple[float, ...]
    mean: tuple[float, ...]
    low: tuple[float, ...]  # mean - sd; the mean itself for one run
    high: tuple[float, ...]  # mean + sd

    @property
    def band(self) -> bool:
        return len(self.run_ids) > 1

    def as_dict(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "runs": list(self.run_ids),
            "steps": list(self.steps),
            "mean": list(self.mean),
            **({"low": list(self.low), "high": list(self.high)} if self.band else {}),
        }


@dataclass(frozen=True)
class Figure:
    """What `plot` draws, and what it had to leave out (said as warnings)."""

    metric: str
    curves: tuple[Curve, ...]
    logy: bool = False
    smooth: int = 1
    warnings: tuple[str, ...] = field(default=())

    @property
    def title(self) -> str:
        smoothed = f", moving average of {self.smooth}" if self.smooth > 1 else ""
        bands = ", bands: ±1 sd over seeds" if any(c.band for c in self.curves) else ""
        return f"{self.metric}{smoothed}{bands}"

    def as_json(self) -> str:
        return json.dumps(
            {
                "metric": self.metric,
                "smooth": self.smooth,
                "logy": self.logy,
                "curves": [curve.as_dict() for curve in self.curves],
                "warnings": list(self.warnings),
            },
            indent=2,
        )


# --- reading series, bounded -------------------------------------------------------------------


class _Buckets:
    """At most twice `limit` points of a stream, each the mean of `width` consecutive ones; the
    width doubles whenever the points fill up, so memory is bounded and the shape is kept.
    Means are kept as running means, halves added: values near the float limit (1e308) do
    not overflow into infinity."""

    def __init__(self, limit: int) -> None:
        self.limit = max(limit, 2)
        self.width = 1
        self.steps: list[float] = []
        self.values: list[float] = []
        self._mean_step = self._mean_value = 0.0
        self._count = 0

    def add(self, step: float, value: float) -> None:
        self._count += 1
        self._mean_step += (step - self._mean_step) / self._count
        self._mean_value += (value - self._mean_value) / self._count
        if self._count < self.width:
            return
        self.steps.append(self._mean_step)
        self.values.append(self._mean_value)
        self._mean_step = self._mean_value = 0.0
        self._count = 0
        if len(self.steps) >= 2 * self.limit:
            self.steps = _halves(self.steps)
            self.values = _halves(self.values)
            self.width *= 2

    def points(self) -> tuple[list[float], list[float]]:
        if not self._count:
            return self.steps, self.values
        return [*self.steps, self._mean_step], [*self.values, self._mean_value]


def _halves(values: list[float]) -> list[float]:
    """Each pair of neighbours as its mean."""
    return [a / 2 + b / 2 for a, b in zip(values[::2], values[1::2], strict=True)]


@dataclass
class _Dropped:
    not_finite: int = 0
    not_positive: int = 0


def _series(
    rows: Iterable[reader.MetricRow],
    metric: str,
    steps: StepRange,
    smooth: int,
    logy: bool,
    points: int,
    dropped: _Dropped,
) -> tuple[list[float], list[float]]:
    """One run's curve of `metric`: in range, smoothed (trailing moving average of the last
    `smooth` values), then reduced to bucket means."""
    window: deque[float] = deque()
    total = 0.0
    buckets = _Buckets(points)
    for row in rows:
        if row.name != metric or row.step not in steps:
            continue
        if not math.isfinite(row.value):
            dropped.not_finite += 1
            continue
        window.append(row.value)
        total += row.value
        if len(window) > smooth:
            total -= window.popleft()
        value = total / len(window) if smooth > 1 else row.value
        if logy and value <= 0:
            dropped.not_positive += 1
            continue
        buckets.add(row.step, value)
    return buckets.points()


# --- seed groups and labels ----------------------------------------------------------------------


def _described(found: axes.Inputs | None, with_seed: bool) -> dict[str, str]:
    """What names a curve: its config leaves (seeds only `with_seed`), as text."""
    if found is None:
        return {}
    described = {}
    for key, value in found.config.items():
        if value is None:
            continue
        seed = axes.is_seed_key(f"config.{key}") or axes.is_seed_value(value, found.seed_values)
        if seed and not with_seed:
            continue
        described[key] = value if isinstance(value, str) else json.dumps(value, default=str)
    named = any(axes.is_seed_key(f"config.{key}") for key in described)
    if with_seed and not named and found.seed_values:
        described["seed"] = ",".join(str(s) for s in sorted(found.seed_values))
    return described


def _short_keys(keys: Sequence[str]) -> dict[str, str]:
    """Config keys as a legend shows them: `argv.lr` as `lr` where that stays unambiguous."""
    short = {key: key.removeprefix("argv.") if key != "argv._" else "script" for key in keys}
    if len(set(short.values())) < len(short):
        return {key: key for key in keys}
    return short


def _labels(described: Sequence[dict[str, str]], fallback: Sequence[str]) -> list[str]:
    """Each curve named by the keys whose values differ among the curves."""
    keys = sorted({k for d in described for k in d})
    differ = [k for k in keys if len({d.get(k) for d in described}) > 1]
    shown = _short_keys(differ)
    labels = [", ".join(f"{shown[k]}={d.get(k, '(absent)')}" for k in differ) for d in described]
    labels = [reader.terminal_safe(label) for label in labels]
    labels = [
        label if len(label) <= _LABEL_WIDTH else label[: _LABEL_WIDTH - 1] + "…" for label in labels
    ]
    # Curves the config cannot tell apart (they differ in code, data or env): by run id.
    return [
        f"{label} {fallback[i]}".strip() if not label or labels.count(label) > 1 else label
        for i, label in enumerate(labels)
    ]


# --- the figure ----------------------------------------------------------------------------------


def _band(
    series: Sequence[tuple[list[float], list[float]]], points: int
) -> tuple[list[float], ...]:
    """Mean and mean ± sd of several series on a common grid of steps: each series counts only
    where it has data (linear between its points)."""
    first = min(steps[0] for steps, _ in series)
    last = max(steps[-1] for steps, _ in series)
    count = max(min(points, max(len(steps) for steps, _ in series)), 2)
    grid = (
        [first + (last - first) * i / (count - 1) for i in range(count)]
        if last > first
        else [first]
    )
    mean, low, high, kept = [], [], [], []
    cursors = [0] * len(series)
    for at in grid:
        values = []
        for n, (steps, ys) in enumerate(series):
            if at < steps[0] or at > steps[-1]:
                continue
            i = cursors[n]
            while i + 1 < len(steps) and steps[i + 1] < at:
                i += 1
            cursors[n] = i
            if i + 1 < len(steps) and steps[i + 1] != steps[i] and at > steps[i]:
                share = (at - steps[i]) / (steps[i + 1] - steps[i])
                values.append(ys[i] + share * (ys[i + 1] - ys[i]))
            else:
                values.append(ys[i])
        if not values:
            continue
        average = sum(values) / len(values)
        sd = (
            math.sqrt(sum((v - average) ** 2 for v in values) / (len(values) - 1))
            if len(values) > 1
            else 0.0
        )
        kept.append(at)
        mean.append(average)
        low.append(average - sd)
        high.append(average + sd)
    return kept, mean, low, high


def figure(
    ws: Workspace,
    refs: Sequence[str],
    metric: str,
    *,
    smooth: int = 1,
    steps: StepRange = StepRange(),
    logy: bool = False,
    separate: bool = False,
    points: int = MAX_POINTS,
    progress: catalog.Progress | None = None,
    groups: Sequence[Sequence[str]] | None = None,
) -> Figure:
    """The curves of `metric` for the runs `refs` name; `groups`, the seed groups of their
    ids when the caller has them already (`compare`'s rows), else they are found."""
    if not 1 <= smooth <= MAX_SMOOTH:
        raise GitexpError(f"--smooth must be between 1 and {MAX_SMOOTH}")
    records: dict[str, history.Record] = {}
    for ref in refs:
        record = history.load(ws, ref, progress)
        records.setdefault(record.summary.id, record)
    warnings: list[str] = []
    dropped = _Dropped()
    kept: list[tuple[history.Record, tuple[list[float], list[float]]]] = []
    for run_id, record in records.items():
        series = _series(record.metric_rows(), metric, steps, smooth, logy, points, dropped)
        if series[0]:
            kept.append((record, series))
            continue
        logged = ", ".join(sorted(record.summary.summary)) or "no metric"
        where = " in that step range" if steps != StepRange() else ""
        warnings.append(
            f"run {run_id} has no {reader.terminal_safe(metric)!r}{where} (it logged "
            f"{reader.terminal_safe(logged)}); left out"
        )
    if dropped.not_finite:
        warnings.append(f"{dropped.not_finite} NaN or infinite values left out")
    if dropped.not_positive:
        warnings.append(f"{dropped.not_positive} values ≤ 0 left out of the logarithmic scale")
    if not kept:
        names = sorted({name for record in records.values() for name in record.summary.summary})
        where = " in that step range" if steps != StepRange() else ""
        raise GitexpError(
            f"no run here has {reader.terminal_safe(metric)!r}{where} to draw; they logged "
            f"{reader.terminal_safe(', '.join(names)) or 'no metric'} (`-m NAME` picks one)"
        )
    inputs = [_inputs(record) for record, _ in kept]
    if separate:
        parts = [[i] for i in range(len(kept))]
    elif groups is not None:
        index = {record.summary.id: i for i, (record, _) in enumerate(kept)}
        parts = [[index[r] for r in group if r in index] for group in groups]
        covered = {i for part in parts for i in part}
        parts = [part for part in parts if part] + [[i] for i in index.values()
                                                    if i not in covered]  # fmt: skip
    else:
        parts = _seed_groups(ws, kept, progress)
    described = [_described(inputs[group[0]], with_seed=separate) for group in parts]
    fallback = [
        _plural(len(g)) if len(parts) == 1 and len(g) > 1 else kept[g[0]][0].summary.id
        for g in parts
    ]
    labels = _labels(described, fallback)
    curves = []
    for group, label in zip(parts, labels, strict=True):
        members = [kept[i][1] for i in group]
        ids = tuple(kept[i][0].summary.id for i in group)
        if len(members) == 1:
            xs, ys = members[0]
            curves.append(Curve(label, ids, tuple(xs), tuple(ys), tuple(ys), tuple(ys)))
            continue
        xs, mean, low, high = _band(members, points)
        if logy:  # a band reaching below zero has no place on a log scale: cut it at the mean
            low = [lo if lo > 0 else m for lo, m in zip(low, mean, strict=True)]
        if label and len(parts) > 1:
            label = f"{label} ({_plural(len(members))})"
        curves.append(Curve(label, ids, tuple(xs), tuple(mean), tuple(low), tuple(high)))
    return Figure(metric, tuple(curves), logy, smooth, tuple(warnings))


def run_figures(record: history.Record, names: Sequence[str], points: int = MAX_POINTS
                ) -> list[Figure]:  # fmt: skip
    """One figure per metric in `names` of one run, its metrics streamed once (a run page
    draws every metric: one pass, not one per metric)."""
    buckets = {name: _Buckets(points) for name in names}
    not_finite = dict.fromkeys(names, 0)
    for row in record.metric_rows():
        found = buckets.get(row.name)
        if found is None:
            continue
        if math.isfinite(row.value):
            found.add(row.step, row.value)
        else:
            not_finite[row.name] += 1
    figures = []
    for name, found in buckets.items():
        xs, ys = found.points()
        if not xs:
            continue
        left_out = not_finite[name]
        warnings = (f"{left_out} NaN or infinite values left out",) if left_out else ()
        curve = Curve("", (record.summary.id,), tuple(xs), tuple(ys), tuple(ys), tuple(ys))
        figures.append(Figure(name, (curve,), warnings=warnings))
    return figures


def _seed_groups(
    ws: Workspace,
    kept: Sequence[tuple[history.Record, Any]],
    progress: catalog.Progress | None,
) -> list[list[int]]:
    """Indexes into `kept` of the runs in each seed group (see comparison.groups). Only runs
    that succeeded are grouped, as `diff` and `compare` do: a failed or crashed run's curve
    is no repeat of the experiment, so it is drawn on its own."""
    where = {record.summary.id: i for i, (record, _) in enumerate(kept)}
    succeeded = [run_id for run_id in where if kept[where[run_id]][0].summary.status == "succeeded"]
    found = seed_groups(ws, succeeded, progress)
    alone = [[where[run_id]] for run_id in where if run_id not in succeeded]
    return [[where[run_id] for run_id in group.run_ids] for group in found] + alone


def _plural(n: int) -> str:
    return f"{n} seeds"


def _inputs(record: history.Record) -> axes.Inputs | None:
    try:
        return axes.inputs_of(record.summary.id, record.files)
    except GitexpError:
        return None  # a record without config or code: drawn on its own


# --- drawing -------------------------------------------------------------------------------------

_COLOURS = ("blue", "red", "green", "orange", "magenta", "cyan", "gray", "yellow")
_MARKS = ("*", "+", "o", "x", "#", "@", "%", "=")  # without colour, curves differ by mark


def terminal(fig: Figure, width: int, height: int, colour: bool) -> str:
    """The figure drawn with plotext as text for a terminal of `width` by `height` characters."""
    import plotext as plt  # only `plot` pays for it

    values = [v for curve in fig.curves for edge in (curve.low, curve.high) for v in edge]
    if values and max(abs(v) for v in values) > _TERMINAL_LIMIT:  # plotext overflows past it
        raise GitexpError(f"{reader.terminal_safe(fig.metric)!r} holds values too large for a "
                          "terminal plot (near ±1e308); `--json` prints them, and `--output "
                          "FILE.svg` draws them")  # fmt: skip
    plt.clear_figure()
    plt.plotsize(width, height)
    plt.theme("pro" if colour else "clear")
    for i, curve in enumerate(fig.curves):
        hue = _COLOURS[i % len(_COLOURS)]
        mark = "braille" if colour else _MARKS[i % len(_MARKS)]
        if curve.band:
            for edge in (curve.low, curve.high):
                plt.plot(list(curve.steps), list(edge), marker="." if not colour else "dot",
                         color=hue if colour else None)  # fmt: skip
        plt.plot(list(curve.steps), list(curve.mean), marker=mark,
                 color=hue if colour else None, label=curve.label or None)  # fmt: skip
    if fig.logy:
        plt.yscale("log")
    plt.title(reader.terminal_safe(fig.title))
    plt.xlabel("step")
    text: str = plt.build()
    plt.clear_figure()
    return text if colour else plt.uncolorize(text)


def check_image(path: Path) -> None:
    """Refuse, before any reading, an image gitexp cannot write."""
    if path.suffix.lower() not in IMAGE_SUFFIXES:
        raise GitexpError(f"cannot write {path.name!r}: --output takes a .png or .svg file")
    _matplotlib()


def _matplotlib() -> Any:
    try:
        from matplotlib.figure import Figure as MplFigure
    except ImportError:
        raise GitexpError(
            "writing an image needs matplotlib, which is not installed; "
            "install it with `pip install 'gitexp[plot]'`"
        ) from None
    return MplFigure


def save_image(fig: Figure, path: Path) -> None:
    """Write the figure to a PNG or SVG file with matplotlib (no GUI backend involved)."""
    check_image(path)
    canvas = _matplotlib()(figsize=(9, 5.5), dpi=110, layout="constrained")
    ax = canvas.add_subplot()
    for curve in fig.curves:
        (line,) = ax.plot(curve.steps, curve.mean, label=curve.label or None, linewidth=1.6)
        if curve.band:
            ax.fill_between(curve.steps, curve.low, curve.high, color=line.get_color(), alpha=0.2,
                            linewidth=0)  # fmt: skip
    if fig.logy:
        ax.set_yscale("log")
    ax.set_title(fig.title)
    ax.set_xlabel("step")
    ax.set_ylabel(fig.metric)
    ax.grid(alpha=0.3)
    if any(curve.label for curve in fig.curves):
        ax.legend(fontsize="small")
    canvas.savefig(path, format=path.suffix.lower().lstrip("."))
