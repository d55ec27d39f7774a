"""`gitexp ablate BASELINE`: every run that differs from a baseline on exactly one axis,
grouped by axis, with what that one change did to each metric: the valid comparisons."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from gitexp import axes, catalog, diff, history, pending
from gitexp.axes import ABSENT, Rules
from gitexp.comparison.compare import Metric, parse_metric
from gitexp.comparison.outcomes import Outcome, summaries
from gitexp.errors import Unreadable
from gitexp.record import INVALID, shown_by_default
from gitexp.workspace import Workspace


@dataclass(frozen=True)
class Variant:
    """A run that differs from the baseline on one axis."""

    run_id: str
    axis: str
    value: Any  # its value on that axis; ABSENT for env and seed, whose values are digests
    status: str
    changes: tuple[Outcome, ...]  # each metric: the baseline's (a) and this run's (b)


@dataclass(frozen=True)
class Ablation:
    baseline: str
    base_value: dict[str, Any]  # the baseline's value of each config axis found
    metrics: tuple[Metric, ...]
    variants: tuple[Variant, ...]  # by axis (DESIGN.md §4 order), then newest first

    def by_axis(self) -> dict[str, list[Variant]]:
        found: dict[str, list[Variant]] = {}
        for variant in self.variants:
            found.setdefault(variant.axis, []).append(variant)
        return found

    def as_dict(self) -> dict[str, Any]:
        """For `--json`."""
        return {
            "baseline": self.baseline,
            "metrics": [m.label for m in self.metrics],
            "axes": [
                {
                    "axis": axis,
                    **({"baseline": self.base_value[axis]} if axis in self.base_value else {}),
                    "runs": [
                        {
                            "run": v.run_id,
                            **({"value": v.value} if v.value is not ABSENT else {}),
                            "status": v.status,
                            "metrics": {c.metric: _change_dict(c) for c in v.changes},
                        }
                        for v in variants
                    ],
                }
                for axis, variants in self.by_axis().items()
            ],
        }


def _change_dict(change: Outcome) -> dict[str, Any]:
    return {
        "baseline": change.a,
        "value": change.b,
        "delta": change.delta,
        "relative": change.relative,
    }


def _value(run: catalog.RunSummary | None, metric: Metric) -> float | None:
    value = run.summary.get(metric.name, {}).get(metric.aggregate) if run else None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def _seed(run: catalog.RunSummary | None) -> Any:
    """A run's seed as its config names it (`seed`, `data_seed`, …); ABSENT when only
    seeds.yaml holds it, as for `gitexp.init(seed=…)`."""
    config = run.config if run is not None else {}
    keys = sorted(k for k in config if axes.is_seed_key(f"config.{k}"))
    return config[keys[0]] if keys else ABSENT


def ablate(
    ws: Workspace,
    baseline: str,
    metrics: Sequence[str] = (),
    progress: catalog.Progress | None = None,
) -> Ablation:
    """The single-axis variants of `baseline` in the history, with each metric's change."""
    pending.recover(ws)
    base = history.resolve(ws, baseline, progress)
    if base.status == INVALID:
        raise Unreadable(base.problem or f"run {base.id} cannot be read")
    rules = Rules.of(ws.settings)
    found = diff.neighbours(ws, rules, base.id, set(), None, progress)
    runs = summaries(ws, [base.id, *(n.run_id for n in found)])
    known = sorted({name for run in runs.values() for name in run.summary})
    if metrics:
        wanted = [parse_metric(text, known) for text in metrics]
    else:
        wanted = [Metric(name) for name in sorted(base.summary) if shown_by_default(name)]
    order = {c.axis: i for i, c in enumerate(axes.sorted_axes(
        axes.Change(n.axis, None, None) for n in found))}  # fmt: skip
    variants = [
        Variant(
            run_id=n.run_id,
            axis=n.axis,
            value=_seed(runs.get(n.run_id)) if n.axis == axes.SEED_AXIS else n.value,
            status=runs[n.run_id].status if n.run_id in runs else "",
            changes=tuple(
                Outcome(m.label, _value(base, m), _value(runs.get(n.run_id), m)) for m in wanted
            ),
        )
        for n in found
    ]
    variants.sort(key=lambda v: order[v.axis])  # stable: newest first within an axis
    base_config = base.config
    base_value = {
        axis: base_config.get(axis.removeprefix("config."), ABSENT)
        for axis in order
        if axis.startswith("config.")
    }
    if axes.SEED_AXIS in order:
        base_value[axes.SEED_AXIS] = _seed(base)
    return Ablation(base.id, base_value, tuple(wanted), tuple(variants))
