"""Seed groups: runs identical on every axis but `seed` (DESIGN.md §4), the repeats whose
spread says how much of a difference is noise.

Two runs are in one group when the repository's axis rules (groups, ignores) count no axis
between them but `seed`: same code, config (seed keys aside), data and environment. Runs
that are identical, seed included (two unseeded runs, say), are one group too.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from gitexp import axes, catalog
from gitexp.axes import Inputs, Rules
from gitexp.workspace import Workspace


@dataclass(frozen=True)
class SeedGroup:
    """Runs that differ from each other on the seed axis at most."""

    run_ids: tuple[str, ...]  # in the order they were asked for; the first stands for all
    inputs: Inputs  # the first run's inputs: the config every member shares, seeds aside

    @property
    def n(self) -> int:
        return len(self.run_ids)


def _same_but_seed(
    ws: Workspace, rules: Rules, base: Inputs, other: Inputs, memo: axes.CodeMemo
) -> bool:
    try:
        counted = axes.counted_changes(ws.repo, rules, base, other, memo)
    except axes.MissingSnapshot:
        return False  # code that is not here cannot be shown to be the same
    return all(change.axis == axes.SEED_AXIS for change in counted)


def seed_groups(
    ws: Workspace, run_ids: Sequence[str], progress: catalog.Progress | None = None
) -> list[SeedGroup]:
    """Partition `run_ids` (full ids, as the index knows them) into seed groups.

    Every run is in exactly one group, alone if it has no seed sibling among `run_ids`;
    groups come in the order of their first run, members in the order given. A run the index
    cannot read (status `invalid`) is a group of its own with empty inputs.
    """
    known = {run.run_id: run for run in catalog.inputs(ws, progress)}
    rules = Rules.of(ws.settings)
    found: list[tuple[list[str], Inputs, axes.CodeMemo]] = []
    for run_id in dict.fromkeys(run_ids):
        run = known.get(run_id)
        if run is None:
            found.append(([run_id], Inputs(run_id, {}, "", (), {}, "", ""), {}))
            continue
        home = next(
            (
                group
                for group in found
                if group[1].run_id in known and _same_but_seed(ws, rules, group[1], run, group[2])
            ),
            None,
        )
        if home is None:
            found.append(([run_id], run, {}))
        else:
            home[0].append(run_id)
    return [SeedGroup(tuple(ids), inputs) for ids, inputs, _ in found]


def seed_siblings(
    ws: Workspace, run_id: str, progress: catalog.Progress | None = None
) -> tuple[str, ...]:
    """`run_id` and every run in the history identical to it on every axis but seed,
    `run_id` first, then newest first."""
    rules = Rules.of(ws.settings)
    everyone = catalog.inputs(ws, progress, near=run_id if rules.kind_preserving else None)
    base = next((run for run in everyone if run.run_id == run_id), None)
    if base is None:
        return (run_id,)
    memo: axes.CodeMemo = {}
    return (
        run_id,
        *(
            other.run_id
            for other in everyone
            if other.run_id != run_id and _same_but_seed(ws, rules, base, other, memo)
        ),
    )
