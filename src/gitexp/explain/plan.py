"""The plan of an explanation: the runs that separate A from B one axis at a time, each
repeated over seeds, and which of them the history already holds.

A planned run is A with exactly one axis taken from B (a variant), or A or B itself with
another seed (a replicate, for the noise). A run in the history is that planned run when it
differs from A on exactly that axis, holds B's value on it, and was seeded alike: whoever
made it, by hand or by an earlier `explain`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from gitexp import axes, catalog, diff, pending
from gitexp.axes import Change, Inputs, Rules
from gitexp.errors import GitexpError, UsageError
from gitexp.explain import variants
from gitexp.explain.variants import Source, Unvariable
from gitexp.reader import terminal_safe as safe
from gitexp.seeds import SEED_MAX
from gitexp.workspace import Workspace

A, B = "A", "B"
SUCCEEDED, FAILED = "succeeded", "failed"
_PLAIN = re.compile(r"[A-Za-z0-9_.,:/@+=-]{1,120}")  # an axis name safe as a label


@dataclass(frozen=True)
class Planned:
    """One run of the plan."""

    label: str  # `A#1`, `code#2`, `config.lr#1`: how --only names it
    group: str  # A, B, or the axis taken from B
    replicate: int  # 1-based; replicate 1 is seeded as A (or B) was
    seed: int | None  # the seed it is given; None: seeded as its source run was
    how: tuple[str, ...] = ()  # how it differs from its source run
    impossible: str | None = None  # why explain cannot make it (it may still be found)
    run_id: str | None = None  # the run that is it, once found or run
    status: str | None = None
    reused: bool = False  # found in the history rather than run by this explain


@dataclass(frozen=True)
class Plan:
    a: Source
    b: Source
    axes: tuple[Change, ...]  # every axis A and B differ on, as the repository counts them
    varied: tuple[Change, ...]  # those with a variant of their own
    seeds: int
    runs: tuple[Planned, ...]
    rules: Rules
    patterns: tuple[str, ...] = ()  # --axis: the axes varied, when not all

    @property
    def name(self) -> str:
        """The explanation's name, linked from each run it makes."""
        return f"{self.a.run_id}..{self.b.run_id}"

    @property
    def to_run(self) -> tuple[Planned, ...]:
        return tuple(p for p in self.runs if p.run_id is None and p.impossible is None)

    def seed_of(self, planned: Planned) -> int | None:
        """The seed a planned run is given, or else its source run's own (None: unseeded,
        or seeded in its code)."""
        if planned.seed is not None:
            return planned.seed
        return self.b.seed if planned.group in (B, axes.SEED_AXIS) else self.a.seed

    def planned(self, label: str) -> Planned:
        for run in self.runs:
            if run.label == label:
                return run
        known = ", ".join(p.label for p in self.runs)
        raise UsageError(f"--only {label!r} is not in the plan; it holds {known}")

    def as_dict(self, problems: Mapping[str, str]) -> dict[str, Any]:
        """For `--json`; `problems`, why runs count for nothing, by label."""
        return {
            "a": self.a.run_id,
            "b": self.b.run_id,
            "explanation": self.name,
            "seeds": self.seeds,
            "axes": [c.axis for c in self.axes],
            "varied": [c.axis for c in self.varied],
            "runs": [
                {
                    "label": p.label,
                    "group": p.group,
                    "replicate": p.replicate,
                    "seed": self.seed_of(p),
                    "run": p.run_id,
                    "status": p.status,
                    "reused": p.reused,
                    "how": list(p.how),
                    "problem": problems.get(p.label) or p.impossible,
                }
                for p in self.runs
            ],
            "to_run": len(self.to_run),
        }

    def changes(self, planned: Planned) -> tuple[Change, ...]:
        """The axes a planned run takes from B."""
        if planned.group == A:
            return ()
        if planned.group == B:
            return self.axes
        return tuple(c for c in self.axes if c.axis == planned.group)


def _label(change: Change, index: int) -> str:
    return change.axis if _PLAIN.fullmatch(change.axis) else f"axis{index}"


def _replicate_seeds(a: Source, b: Source, seeds: int) -> list[int | None]:
    """The seed of each replicate after the first: the integers after A's seed, B's skipped;
    none for an unseeded run, whose reruns differ by chance alone."""
    if seeds == 1:
        return []
    if a.carrier == variants.UNSEEDED:
        return [None] * (seeds - 1)
    if a.seed is None:
        raise UsageError(
            f"run {a.run_id} sets its seed in its code, where explain cannot change it, so "
            "--seeds cannot repeat it; take the seed from an option (--seed) or from "
            "`gitexp run --seed`, or give --seeds 1"
        )
    found: list[int | None] = []
    candidate = a.seed
    while len(found) < seeds - 1:
        candidate += 1
        if candidate != b.seed:
            found.append(candidate)
    if candidate > SEED_MAX:
        raise UsageError(f"run {a.run_id}'s seed is {a.seed}, and the seeds after it pass "
                         f"{SEED_MAX}, the largest seed; give fewer --seeds")  # fmt: skip
    return found


def make(
    ws: Workspace,
    ref_a: str,
    ref_b: str,
    seeds: int = 1,
    patterns: Sequence[str] = (),
    retry_failed: bool = False,
    progress: catalog.Progress | None = None,
) -> Plan:
    """The plan for A → B, with each planned run that the history holds already found."""
    pending.recover(ws)
    comparison = diff.compare(ws, ref_a, ref_b, progress, find_neighbours=False)
    a_id, b_id = comparison.a.run_id, comparison.b.run_id
    if not comparison.axes:
        raise GitexpError(
            f"runs {a_id} and {b_id} differ on no axis, so there is nothing to "
            "explain: their difference is noise (`gitexp compare` them)"
        )
    chosen = diff.selected(comparison, patterns)
    if not chosen:
        shown = ", ".join(safe(c.axis) for c in comparison.axes)
        raise UsageError(
            f"--axis {safe(' '.join(patterns))} names none of the axes A and B differ on ({shown})"
        )
    a, b = variants.read(ws, a_id), variants.read(ws, b_id)
    extra = _replicate_seeds(a, b, seeds)
    varied = tuple(chosen) if len(comparison.axes) > 1 else ()
    rules = comparison.rules
    runs: list[Planned] = []
    for i in range(1, seeds + 1):
        seed = extra[i - 2] if i > 1 else None
        runs.append(_planned(ws, A, (a, b), (), rules, i, seed))
        runs.append(_planned(ws, B, (b, a), (), rules, i, seed))
        for n, change in enumerate(varied, 1):
            if change.axis == axes.SEED_AXIS and i > 1:
                continue  # its variant's seed is the axis itself: it has no replicates
            made = _planned(ws, _label(change, n), (a, b), (change,), rules, i, seed)
            runs.append(replace(made, group=change.axis))
    plan = Plan(a, b, tuple(comparison.axes), varied, seeds, tuple(runs), rules, tuple(patterns))
    return _found(ws, plan, retry_failed, progress)


def _planned(
    ws: Workspace,
    name: str,
    sides: tuple[Source, Source],
    taken: tuple[Change, ...],
    rules: Rules,
    replicate: int,
    seed: int | None,
) -> Planned:
    """The planned run `name#replicate`: the first side with `taken` from the second."""
    label = f"{name}#{replicate}"
    try:
        made = variants.recipe(ws, *sides, taken, rules, seed)
    except Unvariable as e:
        return Planned(label, name, replicate, seed, impossible=str(e))
    return Planned(label, name, replicate, seed, made.how)


# --- finding planned runs in the history ---------------------------------------------------


@dataclass(frozen=True)
class _Seen:
    """A run of the history, as the plan compares it: the axes it differs from A and B on."""

    run_id: str
    status: str
    from_a: frozenset[str]
    from_b: frozenset[str]
    inputs: Inputs


def _seed_of(source: Source, inputs: Inputs) -> int | None:
    """The seed a run was given through the option that carries `source`'s seed."""
    value = inputs.config.get(source.seed_key) if source.seed_key is not None else None
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def is_run(plan: Plan, planned: Planned, seen: _Seen) -> bool:
    """Whether `seen` is the planned run: A's on every axis but those it takes from B, B's
    on those, and seeded as planned."""
    source = plan.b if planned.group == B else plan.a
    taken = {c.axis for c in plan.changes(planned)} - {axes.SEED_AXIS}
    if seen.from_a - {axes.SEED_AXIS} != taken or seen.from_b & taken:
        return False
    if seen.status == FAILED:  # it may have failed before it seeded anything: its seed
        got, expected = _seed_of(source, seen.inputs), plan.seed_of(planned)  # as given
        return got == expected if source.carrier == variants.BY_OPTION else expected is None
    if planned.group == axes.SEED_AXIS:  # B's seed, A's everything else
        return axes.SEED_AXIS not in seen.from_b
    if planned.seed is None:  # seeded as its source run was
        same = seen.from_b if planned.group == B else seen.from_a
        return axes.SEED_AXIS not in same
    if source.carrier == variants.BY_VARIABLES:
        return planned.seed in seen.inputs.seed_values
    return _seed_of(source, seen.inputs) == planned.seed


def _found(
    ws: Workspace, plan: Plan, retry_failed: bool, progress: catalog.Progress | None
) -> Plan:
    """The plan with each planned run the history holds: A and B first for their own first
    replicates, then the newest run that matches; a run is one planned run at most."""
    kept = {SUCCEEDED} if retry_failed else {SUCCEEDED, FAILED}
    statuses = {run.id: run.status for run in catalog.runs(ws, catalog.RunQuery())}
    names = {c.axis for c in plan.axes} | {axes.SEED_AXIS}
    memo_a: axes.CodeMemo = {}
    memo_b: axes.CodeMemo = {}
    seen: list[_Seen] = []
    ours: dict[str, str] = {}  # label → a failed run an earlier explain made for it
    for inputs in catalog.inputs(ws, progress):  # newest first
        status = statuses.get(inputs.run_id, "")
        if status not in kept:
            continue
        if status == FAILED:  # it may have failed before its options were read
            label = _made_for(ws, plan, inputs.run_id)
            if label is not None:
                ours.setdefault(label, inputs.run_id)
                continue
        quick, _ = plan.rules.apply(axes.record_changes(plan.a.inputs, inputs))
        if not {c.axis for c in quick} <= names:
            continue  # differs from A on an axis A and B share: no planned run
        try:
            seen.append(_seen(ws, plan, inputs, status, memo_a, memo_b))
        except axes.MissingSnapshot:
            continue  # its code is not here: it cannot be shown to be a planned run
    own = {plan.a.run_id, plan.b.run_id}
    seen.sort(key=lambda s: s.run_id not in own)  # A and B first, else newest first
    taken: set[str] = set()
    runs = []
    for planned in plan.runs:
        found = (s.run_id for s in seen if s.run_id not in taken and is_run(plan, planned, s))
        match = next(found, ours.get(planned.label))
        if match is not None:
            taken.add(match)
            planned = replace(planned, run_id=match, status=statuses[match], reused=True)
        runs.append(planned)
    return replace(plan, runs=tuple(runs))


def _made_for(ws: Workspace, plan: Plan, run_id: str) -> str | None:
    """The planned run of this explanation that `run_id` was made as, if it was."""
    from gitexp import history, reader
    from gitexp.record import RUN

    record = history.load(ws, run_id)
    info = reader.run_info(run_id, record.files.get(RUN))
    return info.variant if info.explains == plan.name else None


def _seen(
    ws: Workspace,
    plan: Plan,
    inputs: Inputs,
    status: str,
    memo_a: axes.CodeMemo,
    memo_b: axes.CodeMemo,
) -> _Seen:
    """A run as the plan compares it: every axis it differs from A and from B on."""

    def differ(base: Inputs, memo: axes.CodeMemo) -> frozenset[str]:
        counted = axes.counted_changes(ws.repo, plan.rules, base, inputs, memo, complete=True)
        return frozenset(c.axis for c in counted)

    return _Seen(inputs.run_id, status, differ(plan.a.inputs, memo_a),
                 differ(plan.b.inputs, memo_b), inputs)  # fmt: skip


def check(ws: Workspace, plan: Plan, planned: Planned, run_id: str) -> str | None:
    """Why the run just made is not the planned run (it differs from A on other axes than
    planned: a change did not reach the script, or the machine differs); None when it is."""
    from gitexp import history

    record = history.load(ws, run_id)
    seen = _seen(ws, plan, axes.inputs_of(run_id, record.files), record.summary.status, {}, {})
    if is_run(plan, planned, seen):
        return None
    from_a = seen.from_a
    wanted = {c.axis for c in plan.changes(planned)}
    extra = sorted((from_a - wanted) - {axes.SEED_AXIS})
    missing = sorted((wanted - from_a) - {axes.SEED_AXIS})
    parts = []
    if extra:
        parts.append(f"it also differs from A on {', '.join(extra)}")
    if missing:
        parts.append(f"it does not differ from A on {', '.join(missing)}")
    return "; ".join(parts) or "it was not seeded as planned"
