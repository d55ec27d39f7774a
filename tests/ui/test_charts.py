"""Charts as SVG geometry: ticks a reader can read, curves inside their frame, bands around
their mean, and the awkward series (one point, flat, log scale, NaN) drawn rather than lost."""

from __future__ import annotations

import math
import re

from gitexp.comparison.plot import Curve, Figure
from gitexp.ui.charts import chart, nice_ticks


def _points(path: str) -> list[tuple[float, float]]:
    return [(float(x), float(y)) for x, y in re.findall(r"[ML](-?[\d.]+),(-?[\d.]+)", path)]


def test_ticks_are_round_and_cover_the_range() -> None:
    assert nice_ticks(0, 1) == [0, 0.2, 0.4, 0.6, 0.8, 1.0]
    assert nice_ticks(0, 49) == [0, 10, 20, 30, 40]
    assert nice_ticks(-0.03, 0.07) == [-0.02, 0.0, 0.02, 0.04, 0.06]
    assert nice_ticks(5, 5) == [5]
    assert nice_ticks(math.nan, 1) == []


def test_curves_stay_inside_the_frame_and_bands_around_their_mean() -> None:
    mean = tuple(1 / (1 + s) for s in range(20))
    curve = Curve("lr=0.1", ("a", "b"), tuple(range(20)), mean,
                  tuple(m - 0.05 for m in mean), tuple(m + 0.05 for m in mean))  # fmt: skip
    drawn = chart(Figure("loss", (curve,)))
    (line,) = drawn.lines
    for x, y in _points(line.path) + _points(line.band):
        assert drawn.left <= x <= drawn.right and drawn.top <= y <= drawn.bottom
    assert line.band.endswith("Z") and drawn.bands == 1
    assert len(_points(line.band)) == 40  # the upper edge there, the lower edge back
    assert [t.text for t in drawn.xticks] == ["0", "5", "10", "15"]


def test_a_single_point_is_a_dot_and_a_flat_series_a_line() -> None:
    one = Curve("", ("a",), (3.0,), (0.5,), (0.5,), (0.5,))
    flat = Curve("", ("b",), (0.0, 1.0, 2.0), (2.0, 2.0, 2.0), (2.0,) * 3, (2.0,) * 3)
    drawn = chart(Figure("acc", (one, flat)))
    assert len(drawn.lines[0].dots) == 1 and drawn.lines[0].path == ""
    assert len(_points(drawn.lines[1].path)) == 3


def test_log_scale_leaves_out_what_it_cannot_draw() -> None:
    values = (10.0, 1.0, 0.1, 0.0, math.nan, 0.01)
    curve = Curve("", ("a",), tuple(float(s) for s in range(6)), values, values, values)
    drawn = chart(Figure("loss", (curve,), logy=True))
    assert len(_points(drawn.lines[0].path)) == 4
    assert [t.text for t in drawn.yticks] == ["0.01", "0.1", "1", "10"]


def test_values_at_the_float_limit_are_drawn_not_raised() -> None:
    """A pulled record's metric of ±1.7e308: the span would overflow to infinity."""
    values = (1.7e308, -1.7e308, 0.0)
    curve = Curve("", ("a",), (0.0, 1.0, 2.0), values, values, values)
    drawn = chart(Figure("wide", (curve,)))
    assert len(_points(drawn.lines[0].path)) == 3 and drawn.yticks
    nothing = chart(Figure("none", (Curve("", ("a",), (0.0,), (math.inf,), (math.inf,),
                                          (math.inf,)),)))  # fmt: skip
    assert nothing.lines == () and nothing.warnings == ("no finite value to draw",)


def test_whole_steps_get_whole_ticks_and_few_points_are_marked() -> None:
    curve = Curve("", ("a",), (1.0, 2.0, 3.0), (0.5, 0.4, 0.3), (0.5, 0.4, 0.3), (0.5, 0.4, 0.3))
    drawn = chart(Figure("test/acc", (curve,)))
    assert [t.text for t in drawn.xticks] == ["1", "2", "3"]
    assert len(drawn.lines[0].dots) == 3
