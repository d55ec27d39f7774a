"""`gitexp compare`: runs side by side, one row per run or per seed group, with the config
keys that differ among them, chosen metrics, and each row's change against a baseline.

Between rows of two runs or more, the change comes with a Welch t-test and a bootstrap
interval (stats.py), so that a difference within seed noise reads as such.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from gitexp import catalog, history
from gitexp.axes import is_seed_key
from gitexp.catalog import RunSummary
from gitexp.comparison import groups, stats
from gitexp.errors import GitexpError, UsageError
from gitexp.record import INVALID, shown_by_default
from gitexp.workspace import Workspace

SUCCEEDED = "succeeded"
AGGREGATES = ("last", "min", "max")


@dataclass(frozen=True)
class Metric:
    """One metric column: a summary metric and which of its values (last, min or max)."""

    name: str
    aggregate: str = "last"

    @property
    def label(self) -> str:
        return self.name if self.aggregate == "last" else f"{self.name}.{self.aggregate}"


def parse_metric(text: str, known: Sequence[str]) -> Metric:
    """`val/acc` (its last value), or `val/loss.min`; a name the runs logged wins over a
    name with an aggregate (a metric may have a dot in its name)."""
    if text in known:
        return Metric(text)
    name, dot, aggregate = text.rpartition(".")
    if dot and aggregate in AGGREGATES and name in known:
        return Metric(name, aggregate)
    listed = ", ".join(known[:10]) or "none"
    raise UsageError(f"-m {text!r}: no compared run logged that metric (they logged: {listed}); "
                     "write METRIC or METRIC.last, .min or .max")  # fmt: skip


@dataclass(frozen=True)
class Row:
    """One run, or one seed group of runs identical but for seed."""

    run_ids: tuple[str, ...]
    config: Mapping[str, Any]  # the row's value of each differing key (missing: absent)
    values: Mapping[str, stats.Spread]  # by metric label
    changes: Mapping[str, stats.Difference] = field(default_factory=dict)  # against baseline
    baseline: bool = False
    status: str = SUCCEEDED  # of the run; a group is of succeeded runs


@dataclass(frozen=True)
class Table:
    """What `compare` shows."""

    rows: tuple[Row, ...]
    keys: tuple[str, ...]  # config keys that differ among the rows, a column each
    common: Mapping[str, Any]  # config keys with one value in every row
    varying: tuple[str, ...]  # keys that differ within seed groups (the seeds): not columns
    metrics: tuple[Metric, ...]
    grouped: bool

    def as_dict(self) -> dict[str, Any]:
        """Everything shown, for `--json`."""
        return {
            "common": dict(self.common),
            "keys": list(self.keys),
            "seed_keys": list(self.varying),
            "metrics": [m.label for m in self.metrics],
            "grouped": self.grouped,
            "rows": [
                {
                    "runs": list(row.run_ids),
                    "baseline": row.baseline,
                    "status": row.status,
                    "config": dict(row.config),
                    "metrics": {
                        label: {
                            "n": s.n,
                            "mean": s.mean,
                            "sd": s.sd,
                            **_change(row.changes.get(label)),
                        }
                        for label, s in row.values.items()
                    },
                }
                for row in self.rows
            ],
        }


def _change(difference: stats.Difference | None) -> dict[str, Any]:
    if difference is None:
        return {}
    return {
        "change": {
            "delta": difference.delta,
            "relative": difference.relative,
            "p_value": difference.p_value,
            "ci95": list(difference.ci) if difference.ci else None,
            "within_noise": difference.within_noise,
            "reason": difference.reason,
        }
    }


def _metric_value(run: RunSummary, metric: Metric) -> float | None:
    value = run.summary.get(metric.name, {}).get(metric.aggregate)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def _same(a: Any, b: Any) -> bool:
    return json.dumps(a, sort_keys=True, default=str) == json.dumps(b, sort_keys=True, default=str)


_ABSENT = object()


def _shared(configs: Sequence[Mapping[str, Any]]) -> tuple[dict[str, Any], set[str]]:
    """The keys whose value every config agrees on (absent counts as a value), and those
    that vary."""
    keys = {k for config in configs for k in config}
    agreed, varying = {}, set()
    for key in keys:
        values = [config.get(key, _ABSENT) for config in configs]
        if all(_same(values[0], v) for v in values[1:]) and values[0] is not _ABSENT:
            agreed[key] = values[0]
        else:
            varying.add(key)
    return agreed, varying


def _sort_key(config: Mapping[str, Any], keys: Sequence[str]) -> tuple[tuple[int, Any], ...]:
    def one(value: Any) -> tuple[int, Any]:
        if value is None:
            return (3, "")
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return (0, value)
        return (1, json.dumps(value, sort_keys=True, default=str))

    return tuple(one(config.get(key)) for key in keys)


def select(
    ws: Workspace,
    refs: Sequence[str],
    where: Sequence[str] = (),
    progress: catalog.Progress | None = None,
) -> list[RunSummary]:
    """The runs to compare: those named (ids, prefixes, names, @, @~N) and those `--where`
    keeps; every run on the branch when neither is given."""
    found: dict[str, RunSummary] = {}
    for ref in refs:
        for run in history.resolve_many(ws, ref, progress):
            found.setdefault(run.id, run)
    if where:
        from gitexp.comparison import table

        kept = table.select(ws, table.parse_where(where), progress=progress, live=False)
        found.update({run.id: run for run in kept if run.id not in found})
    if not refs and not where:  # every run listed by `gitexp log`: archived ones stay hidden
        from gitexp.comparison import table

        found = {run.id: run for run in table.select(ws, progress=progress, live=False)}
    runs = [run for run in found.values() if run.status != INVALID]
    if not runs:
        raise GitexpError("no run to compare; name runs by id, or see `gitexp log`")
    return runs


def compare(
    ws: Workspace,
    runs: Sequence[RunSummary],
    metrics: Sequence[str] = (),
    baseline: str | None = None,
    group_seeds: bool = True,
    progress: catalog.Progress | None = None,
) -> Table:
    """`runs` side by side; the baseline row is the one holding `baseline` (a run ref), else
    the first row that succeeded. Seed groups gather succeeded runs only: a failed run's last
    value is no repeat of the experiment, so it stays a row of its own."""
    chosen = {run.id: run for run in runs}
    bases: list[RunSummary] = []
    if baseline is not None:
        # A name that a seed group shares names that group: `--baseline base`.
        bases = history.resolve_many(ws, baseline, progress)
        for base in bases:
            chosen.setdefault(base.id, base)
    known = sorted({name for run in chosen.values() for name in run.summary})
    wanted = [parse_metric(text, known) for text in metrics] or [
        Metric(name) for name in known if shown_by_default(name)
    ]
    succeeded = [r for r in chosen if chosen[r].status == SUCCEEDED]
    if group_seeds:
        parts = [g.run_ids for g in groups.seed_groups(ws, succeeded, progress)]
    else:
        parts = [(r,) for r in succeeded]
    parts += [(r,) for r in chosen if chosen[r].status != SUCCEEDED]
    # A group's config: what its runs agree on. The keys that vary inside a group are its
    # seeds, never a column: each group holds several of their values.
    configs, varying = [], set()
    for ids in parts:
        agreed, inner = _shared([chosen[r].config for r in ids])
        configs.append(agreed)
        varying |= inner
    varying |= {k for c in configs for k in c if len(parts) > 1 and is_seed_key(f"config.{k}")
                and any(len(ids) > 1 for ids in parts)}  # fmt: skip
    configs = [{k: v for k, v in c.items() if k not in varying} for c in configs]
    common, differing = _shared(configs)
    keys = sorted(differing)
    order = sorted(range(len(parts)), key=lambda i: _sort_key(configs[i], keys))
    # The first row that succeeded: a crashed run with no metric is no baseline.
    base_index = next((i for i in order if chosen[parts[i][0]].status == SUCCEEDED), order[0])
    if bases:
        holding = {i for i, ids in enumerate(parts) for base in bases if base.id in ids}
        if len(holding) > 1:
            raise UsageError(f"--baseline {baseline!r} names runs that are not one seed group "
                             "(they differ on more than the seed); give one run's id")  # fmt: skip
        base_index = holding.pop()
    base_values = {m.label: _values(chosen, parts[base_index], m) for m in wanted}
    rows = []
    for i in order:
        values = {m.label: _values(chosen, parts[i], m) for m in wanted}
        changes = {} if i == base_index else {
            m.label: stats.difference(base_values[m.label], values[m.label]) for m in wanted
        }  # fmt: skip
        rows.append(
            Row(
                run_ids=parts[i],
                config={k: configs[i].get(k) for k in keys},
                values={label: stats.spread(v) for label, v in values.items()},
                changes=changes,
                baseline=i == base_index,
                status=chosen[parts[i][0]].status,
            )
        )
    return Table(
        rows=tuple(rows),
        keys=tuple(keys),
        common=dict(sorted(common.items())),
        varying=tuple(sorted(varying)),
        metrics=tuple(wanted),
        grouped=any(len(ids) > 1 for ids in parts),
    )


def _values(runs: Mapping[str, RunSummary], ids: Sequence[str], metric: Metric) -> list[float]:
    found = (_metric_value(runs[r], metric) for r in ids)
    return [v for v in found if v is not None]
