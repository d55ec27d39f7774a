"""What each axis did: per metric, the change from A to B, each variant's change from A
(paired by seed), their confidence intervals, and whether the effects add up.

Replicate i of every group is seeded alike, so a variant's effect is measured seed by seed,
x_i - a_i, and the seed noise common to both cancels: with n seeds, the mean of those
differences comes with a Student t interval on n - 1 degrees of freedom.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from gitexp import catalog
from gitexp.comparison import stats
from gitexp.comparison.compare import Metric, parse_metric
from gitexp.comparison.outcomes import summaries
from gitexp.explain.plan import SUCCEEDED, A, B, Plan, Planned
from gitexp.record import shown_by_default
from gitexp.workspace import Workspace

CONFIDENCE = 0.95
SMALL_SHARE = 0.1  # without seeds, an axis under a tenth of the change is not named
_ROUNDING = 1e-9  # of the change: what floating-point sums leave of an exact decomposition


@dataclass(frozen=True)
class Effect:
    """One change of a metric: A to B, one axis, or what the axes leave unexplained."""

    name: str
    deltas: tuple[float, ...]  # seed by seed
    ci: tuple[float, float] | None = None  # None with fewer than two seeds
    beyond_noise: bool | None = None  # None: no noise to judge by
    share: float | None = None  # of the change from A to B

    @property
    def n(self) -> int:
        return len(self.deltas)

    @property
    def mean(self) -> float | None:
        return statistics.fmean(self.deltas) if self.deltas else None

    def as_dict(self) -> dict[str, Any]:
        return {
            "mean": self.mean,
            "ci": list(self.ci) if self.ci else None,
            "n": self.n,
            "deltas": list(self.deltas),
            "beyond_noise": self.beyond_noise,
            "share": self.share,
        }


@dataclass(frozen=True)
class Explained:
    """One metric, explained."""

    metric: Metric
    a: stats.Spread  # A's seed group
    b: stats.Spread
    total: Effect
    effects: tuple[Effect, ...]  # one per varied axis that was measured
    unmeasured: tuple[str, ...]  # axes that differ but have no measured effect
    interaction: Effect  # A → B minus the sum of the axes' effects
    additive: bool | None  # None: not judged (one seed, or missing runs)
    main: str | None  # the axis that moved the metric most, the way A → B moved it
    accounts: tuple[str, ...]  # the axes that account for the change, largest first

    @property
    def sum(self) -> float | None:
        means = [e.mean for e in self.effects if e.mean is not None]
        return math.fsum(means) if means else None

    def as_dict(self) -> dict[str, Any]:
        return {
            "metric": self.metric.label,
            "a": {"mean": self.a.mean, "sd": self.a.sd, "n": self.a.n},
            "b": {"mean": self.b.mean, "sd": self.b.sd, "n": self.b.n},
            "total": self.total.as_dict(),
            "axes": [{"axis": e.name, **e.as_dict()} for e in self.effects],
            "unmeasured": list(self.unmeasured),
            "sum": self.sum,
            "interaction": self.interaction.as_dict(),
            "additive": self.additive,
            "main": self.main,
            "accounts": list(self.accounts),
        }


@dataclass(frozen=True)
class Explanation:
    plan: Plan
    metrics: tuple[Explained, ...]
    problems: Mapping[str, str]  # label → why its run counts for nothing

    def as_dict(self) -> dict[str, Any]:
        return {**self.plan.as_dict(self.problems), "metrics": [m.as_dict() for m in self.metrics]}


def _interval(deltas: Sequence[float]) -> tuple[float, float] | None:
    """The Student t interval of the mean of paired differences."""
    if len(deltas) < 2:
        return None
    from scipy.stats import t  # type: ignore[import-untyped]  # explain has run training

    half = float(t.ppf((1 + CONFIDENCE) / 2, len(deltas) - 1)) * statistics.stdev(deltas)
    half /= math.sqrt(len(deltas))
    mean = statistics.fmean(deltas)
    return mean - half, mean + half


def _effect(name: str, deltas: Sequence[float], total: float | None, noise: float | None) -> Effect:
    """An effect from its seed-by-seed deltas; with one delta, judged against `noise`, the
    sd of A's seed group, as `diff` judges a change (|Δ| ≤ 2 sd is noise)."""
    ci = _interval(deltas)
    mean = statistics.fmean(deltas) if deltas else None
    beyond: bool | None = None
    if ci is not None:
        beyond = not ci[0] <= 0 <= ci[1]
    elif mean is not None and noise is not None:
        beyond = abs(mean) > 2 * noise
    share = mean / total if mean is not None and total else None
    return Effect(name, tuple(deltas), ci, beyond, share)


def _values(
    plan: Plan, problems: Mapping[str, str], metric: Metric, runs: Mapping[str, catalog.RunSummary]
) -> dict[str, float]:
    """Each usable planned run's value, by label."""
    found = {}
    for planned in plan.runs:
        run = runs.get(planned.run_id or "")
        if run is None or run.status != SUCCEEDED or planned.label in problems:
            continue
        value = run.summary.get(metric.name, {}).get(metric.aggregate)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            found[planned.label] = float(value)
    return found


def _by_replicate(plan: Plan, group: str) -> dict[int, Planned]:
    return {p.replicate: p for p in plan.runs if p.group == group}


def explain(
    ws: Workspace, plan: Plan, metrics: Sequence[str], problems: Mapping[str, str]
) -> Explanation:
    """The effect of each axis on each metric (`metrics`, or every metric A or B logged)."""
    ids = [p.run_id for p in plan.runs if p.run_id]
    runs = summaries(ws, ids)
    own = [runs[r] for r in (plan.a.run_id, plan.b.run_id) if r in runs]
    known = sorted({name for run in own for name in run.summary})
    if metrics:
        wanted = [parse_metric(text, known) for text in metrics]
    else:
        wanted = [Metric(name) for name in known if shown_by_default(name)]
    found = [_metric(plan, _values(plan, problems, m, runs), m) for m in wanted]
    return Explanation(plan, tuple(found), dict(problems))


def _metric(plan: Plan, values: Mapping[str, float], metric: Metric) -> Explained:
    a_runs, b_runs = _by_replicate(plan, A), _by_replicate(plan, B)
    a_values = [values[p.label] for p in a_runs.values() if p.label in values]
    noise = stats.spread(a_values).sd

    def deltas(group: Mapping[int, Planned]) -> dict[int, float]:
        return {
            i: values[p.label] - values[a_runs[i].label]
            for i, p in group.items()
            if p.label in values and a_runs[i].label in values
        }

    total_by = deltas(b_runs)
    total_mean = statistics.fmean(total_by.values()) if total_by else None
    total = _effect("A → B", list(total_by.values()), total_mean, noise)
    effects, unmeasured, by_axis = [], [], {}
    for change in plan.varied:
        found = deltas(_by_replicate(plan, change.axis))
        if not found:
            unmeasured.append(change.axis)
            continue
        by_axis[change.axis] = found
        effects.append(_effect(change.axis, list(found.values()), total_mean, noise))
    if len(plan.axes) == 1:  # the one axis made the whole change: no variant to run
        effects.append(replace(total, name=plan.axes[0].axis))
    varied = {c.axis for c in plan.varied}
    unmeasured += [c.axis for c in plan.axes if c.axis not in varied and plan.varied]
    # What the axes leave of A → B, seed by seed: only where every axis planned for that
    # replicate was measured, else the sum would leave an axis out.
    rest = []
    for i, delta in total_by.items():
        planned = [c.axis for c in plan.varied if i in _by_replicate(plan, c.axis)]
        if planned and all(i in by_axis.get(axis, {}) for axis in planned):
            left = delta - math.fsum(by_axis[axis][i] for axis in planned)
            rest.append(0.0 if abs(left) <= _ROUNDING * abs(delta) else left)
    interaction = _effect("interaction", rest, total_mean, noise)
    additive = None
    if interaction.ci is not None and not unmeasured:
        additive = not interaction.beyond_noise
    return Explained(
        metric,
        stats.spread(a_values),
        stats.spread([values[p.label] for p in b_runs.values() if p.label in values]),
        total,
        tuple(effects),
        tuple(unmeasured),
        interaction,
        additive,
        _main(effects, total_mean),
        _accounts(effects, total_mean),
    )


def _same_way(effect: Effect, total: float | None) -> bool:
    mean = effect.mean
    return mean is not None and (not total or (mean > 0) == (total > 0)) and mean != 0


def _main(effects: Sequence[Effect], total: float | None) -> str | None:
    """The axis that moved the metric most the way A → B moved it."""
    moved = [e for e in effects if _same_way(e, total)]
    return max(moved, key=lambda e: abs(e.mean or 0)).name if moved else None


def _accounts(effects: Sequence[Effect], total: float | None) -> tuple[str, ...]:
    """The axes that account for A → B: moved it the same way, beyond seed noise; without a
    noise estimate, by at least a tenth of the change."""
    chosen = []
    for effect in effects:
        if not _same_way(effect, total):
            continue
        if effect.beyond_noise is False:
            continue
        if effect.beyond_noise is None and abs(effect.share or 0) < SMALL_SHARE:
            continue
        chosen.append(effect)
    return tuple(e.name for e in sorted(chosen, key=lambda e: -abs(e.mean or 0)))
