"""What a change did to the results, for `gitexp diff A B`: each summary metric of A and B,
and over their seed siblings, whether the change is beyond seed noise."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from gitexp import catalog
from gitexp.comparison import groups, stats
from gitexp.record import shown_by_default
from gitexp.workspace import Workspace

AGGREGATE = "last"  # the value of a metric that diff compares: where training ended
SUCCEEDED = "succeeded"


@dataclass(frozen=True)
class Outcome:
    """One metric of A and B (their `last` values) and, over seed groups, its statistics."""

    metric: str
    a: float | None  # None: A did not log it
    b: float | None
    seeds: SeedStats | None = None  # None when neither run has a seed sibling

    @property
    def delta(self) -> float | None:
        return None if self.a is None or self.b is None else self.b - self.a

    @property
    def relative(self) -> float | None:
        delta = self.delta
        return None if delta is None or not self.a else delta / abs(self.a)


@dataclass(frozen=True)
class SeedStats:
    """A metric over A's seed group and B's: each side's spread, and B's difference from A."""

    a: stats.Spread
    b: stats.Spread
    difference: stats.Difference


@dataclass(frozen=True)
class Outcomes:
    """The outcome part of a diff: A's and B's seed groups and each metric."""

    aggregate: str
    a_group: tuple[str, ...]  # A and its succeeded seed siblings, A first
    b_group: tuple[str, ...]
    metrics: tuple[Outcome, ...]

    @property
    def same_group(self) -> bool:
        """A and B differ in seed alone: their difference is the seed noise itself."""
        return self.b_group[0] in self.a_group


def _value(run: catalog.RunSummary, metric: str, aggregate: str = AGGREGATE) -> float | None:
    value = run.summary.get(metric, {}).get(aggregate)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def summaries(ws: Workspace, run_ids: Sequence[str]) -> dict[str, catalog.RunSummary]:
    """The index's summary of each run, by id (runs not on the branch left out)."""
    rows = catalog.runs(ws, catalog.RunQuery(run_ids=list(dict.fromkeys(run_ids))))
    return {run.id: run for run in rows}


def _group(
    ws: Workspace, run_id: str, progress: catalog.Progress | None
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(`run_id` and its seed siblings that succeeded, every seed sibling): a failed or
    crashed run's last value is no outcome of the same experiment, yet still a sibling."""
    found = groups.seed_siblings(ws, run_id, progress)
    known = summaries(ws, found[1:])
    kept = (run_id, *(r for r in found[1:] if r in known and known[r].status == SUCCEEDED))
    return kept, found


def _values(runs: Mapping[str, catalog.RunSummary], ids: Sequence[str], metric: str) -> list[float]:
    values = (_value(runs[r], metric) for r in ids if r in runs)
    return [v for v in values if v is not None]


def outcomes(ws: Workspace, a: str, b: str, progress: catalog.Progress | None = None) -> Outcomes:
    """The outcome of B against A (full run ids), metric by metric."""
    a_group, a_siblings = _group(ws, a, progress)
    same = b in a_siblings  # A and B differ in seed alone: one group, whatever B's outcome
    if same:  # its spread is that of the runs that succeeded; B is judged against it
        b_group = a_group
    else:
        b_group, _ = _group(ws, b, progress)
    runs = summaries(ws, [a, b, *a_group, *b_group])
    names = sorted(
        name
        for name in {
            *(runs[a].summary if a in runs else {}),
            *(runs[b].summary if b in runs else {}),
        }
        if shown_by_default(name)
    )
    grouped = len(a_group) > 1 or len(b_group) > 1
    found = []
    for name in names:
        one_a = _value(runs[a], name) if a in runs else None
        one_b = _value(runs[b], name) if b in runs else None
        seeds = None
        if grouped:
            values_a, values_b = _values(runs, a_group, name), _values(runs, b_group, name)
            seeds = _seed_stats(one_a, one_b, values_a, values_b, same)
        found.append(Outcome(name, one_a, one_b, seeds))
    return Outcomes(AGGREGATE, a_group, b_group, tuple(found))


def _seed_stats(one_a: float | None, one_b: float | None, values_a: Sequence[float],
                values_b: Sequence[float], same: bool) -> SeedStats:  # fmt: skip
    if not same:
        return SeedStats(  # the verdict of `compare`, without its bootstrap interval
            stats.spread(values_a),
            stats.spread(values_b),
            stats.difference(values_a, values_b, tests=False),
        )
    # One group: comparing it with itself says nothing; A - B is judged by its spread.
    group = stats.spread(values_a)
    delta = None if one_a is None or one_b is None else one_b - one_a
    relative = None if delta is None or not one_a else delta / abs(one_a)
    # A and B alone: their spread is their difference, so |Δ| ≤ 2 sd would always hold.
    alone = len(values_a) < 3
    within = None if delta is None or group.sd is None or alone else abs(delta) <= 2 * group.sd
    if delta is None:
        why = f"{'A' if one_a is None else 'B'} has no finite value"
    elif alone:
        why = "A and B are their seed group's only runs: repeat with a third seed to judge noise"
    else:
        why = group.values_needed or "A and B are identical but for seed: their difference is noise"
    return SeedStats(group, group, stats.Difference(
        delta, relative, within_noise=within, method="|Δ| ≤ 2 sd", reason=why,
    ))  # fmt: skip
