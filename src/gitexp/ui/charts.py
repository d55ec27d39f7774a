"""Metric curves as SVG geometry, computed here and drawn by a template: no script runs in
the page to draw them, so a page (or a report opened from a file) needs nothing but itself.

A chart is made from `plot.Figure`, the curves `gitexp plot` draws: the same seed groups
(mean and a ±1 sd band), the same labels, the same bounded reduction of long series. Only
numbers and labels leave this module, and the template escapes every label.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

from gitexp.cells import number
from gitexp.comparison.plot import Figure

WIDTH, HEIGHT = 640, 300
POINTS = 400  # per curve: finer than the chart's width, coarser than a long run
_LEFT, _RIGHT, _TOP, _BOTTOM = 64, 12, 12, 36  # the margins that hold the tick labels
PALETTE = 10  # series classes c0…c9 in the style sheet, reused in turn
MARKED = 24  # a curve of this many points or fewer marks each (an epoch's metric, say)
_HALF_RANGE = 8e307


@dataclass(frozen=True)
class Tick:
    at: float  # in pixels along its axis
    text: str


@dataclass(frozen=True)
class Line:
    """One curve as drawn: its path, its band's outline, and what hovering over it says."""

    label: str
    tone: int  # which of the palette's colours
    path: str  # SVG path data of the mean
    band: str  # SVG path data of the band (mean ± sd), closed; '' without one
    dots: tuple[tuple[float, float], ...]  # its points, marked when they are few
    run_ids: tuple[str, ...]
    last: str  # the mean's last value, as text


@dataclass(frozen=True)
class Chart:
    metric: str
    title: str
    lines: tuple[Line, ...]
    xticks: tuple[Tick, ...]
    yticks: tuple[Tick, ...]
    logy: bool
    warnings: tuple[str, ...]
    xlabel: str = "step"
    width: int = WIDTH
    height: int = HEIGHT
    left: int = _LEFT
    top: int = _TOP
    right: int = WIDTH - _RIGHT
    bottom: int = HEIGHT - _BOTTOM

    @property
    def bands(self) -> int:
        return sum(1 for line in self.lines if line.band)


def nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    """Round values from `low` to `high`, about `count` of them, 1-2-5 apart."""
    if not (math.isfinite(low) and math.isfinite(high)) or high <= low:
        return [low] if math.isfinite(low) else []
    raw = (high - low) / max(count, 1)
    if not math.isfinite(raw) or raw <= 0:
        return [low, high]
    power = 10 ** math.floor(math.log10(raw))
    step = next(f * power for f in (1, 2, 5, 10) if f * power >= raw)
    digits = max(0, 1 - math.floor(math.log10(step)))  # 0.2 apart: one decimal, and one spare
    k, last = math.ceil(low / step - 1e-9), math.floor(high / step + 1e-9)
    return [round(i * step, digits) + 0.0 for i in range(k, last + 1)]  # + 0.0: no -0.0


def _log_ticks(low: float, high: float) -> list[float]:
    """Powers of ten within [low, high] (both > 0); the ends when there are fewer than two."""
    first, last = math.ceil(math.log10(low) - 1e-9), math.floor(math.log10(high) + 1e-9)
    found = [10.0**p for p in range(first, last + 1)]
    return found if len(found) >= 2 else [low, high]


def _span(values: Sequence[float]) -> tuple[float, float]:
    # Half the float range each way at most: the span itself must stay a finite number.
    low, high = max(min(values), -_HALF_RANGE), min(max(values), _HALF_RANGE)
    if high > low:
        return low, high
    pad = abs(low) * 0.05 or 1.0  # one value: a little room around it
    return low - pad, high + pad


def chart(fig: Figure, width: int = WIDTH, height: int = HEIGHT, xlabel: str = "step") -> Chart:
    """The figure as lines in a `width` by `height` box, with ticks on both axes."""
    left, right, top, bottom = _LEFT, width - _RIGHT, _TOP, height - _BOTTOM
    empty = Chart(fig.metric, fig.title, (), (), (), fig.logy, fig.warnings, xlabel, width,
                  height, left, top, right, bottom)  # fmt: skip
    xs = [x for curve in fig.curves for x in curve.steps if math.isfinite(x)]
    ys = [y for curve in fig.curves for edge in (curve.low, curve.high) for y in edge]
    ys = [y for y in ys if math.isfinite(y) and (y > 0 or not fig.logy)]
    if not xs or not ys:
        return replace(empty, warnings=(*fig.warnings, "no finite value to draw"))
    x0, x1 = _span(xs)
    scale = math.log10 if fig.logy else (lambda v: v)
    if fig.logy:
        low, high = min(ys), max(ys)
        y0, y1 = (low / 2, high * 2) if high <= low else (low, high)
        yvalues = _log_ticks(y0, y1)
    else:
        y0, y1 = _span(ys)
        yvalues = [t for t in nice_ticks(y0, y1) if y0 <= t <= y1]
    s0, s1 = scale(y0), scale(y1)

    def px(x: float) -> float:
        return round(left + (min(max(x, x0), x1) - x0) / (x1 - x0) * (right - left), 1)

    def py(y: float) -> float:
        at = (scale(min(max(y, y0), y1)) - s0) / (s1 - s0)
        return round(bottom - at * (bottom - top), 1)

    def drawn(steps: Sequence[float], values: Sequence[float]) -> list[tuple[float, float]]:
        return [(px(x), py(y)) for x, y in zip(steps, values, strict=True)
                if math.isfinite(x) and math.isfinite(y) and (y > 0 or not fig.logy)]  # fmt: skip

    def path(points: Sequence[tuple[float, float]]) -> str:
        return " ".join(f"{'M' if i == 0 else 'L'}{x},{y}" for i, (x, y) in enumerate(points))

    lines = []
    for i, curve in enumerate(fig.curves):
        band = ""
        if curve.band:
            upper = path(drawn(curve.steps, curve.high))
            lower = path(drawn(curve.steps[::-1], curve.low[::-1])).replace("M", "L", 1)
            band = f"{upper} {lower} Z" if upper and lower else ""
        points = drawn(curve.steps, curve.mean)
        dots = tuple(points) if len(points) <= MARKED else ()
        lines.append(Line(curve.label, i % PALETTE, path(points) if len(points) > 1 else "",
                          band, dots, curve.run_ids, number(curve.mean[-1])))  # fmt: skip
    whole = all(float(x).is_integer() for x in xs)  # steps: no tick at 2.5
    xticks = tuple(Tick(px(t), number(t) if t % 1 else str(int(t)))
                   for t in nice_ticks(x0, x1)
                   if x0 <= t <= x1 and (not whole or float(t).is_integer()))  # fmt: skip
    yticks = tuple(Tick(py(t), number(t)) for t in yvalues)
    return replace(empty, lines=tuple(lines), xticks=xticks, yticks=yticks)
