"""`gitexp diff A B`: the axes two runs differ on, and a git diff of exactly what differs.

With more than one axis the comparison is confounded (DESIGN.md §4): the runs that differ
from A on one of those axes alone are the comparisons worth making instead.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import pygit2

from gitexp import axes, catalog, history, pending, reader, store, yamlio
from gitexp.axes import ABSENT, Change, Inputs, Rules
from gitexp.config import sort_keys
from gitexp.errors import GitexpError, Unreadable
from gitexp.record import CONFIG, DATA, ENV, INVALID, SEEDS, run_dir
from gitexp.workspace import Workspace


@dataclass(frozen=True)
class Neighbour:
    """A run that differs from A on exactly one of the axes A and B differ on."""

    run_id: str
    axis: str
    value: Any  # the neighbour's value on that axis


@dataclass(frozen=True)
class Side:
    """One of the two runs compared: its inputs and its record's files."""

    inputs: Inputs
    files: Mapping[str, bytes]

    @property
    def run_id(self) -> str:
        return self.inputs.run_id


@dataclass(frozen=True)
class Comparison:
    """What `diff` found: the axes that count, those ignored, and better comparisons."""

    a: Side
    b: Side
    axes: tuple[Change, ...]
    ignored: tuple[Change, ...]
    raw: tuple[Change, ...]  # every raw axis that differs, before groups and ignores
    rules: Rules
    neighbours: tuple[Neighbour, ...] = ()
    unseeded: bool = False  # neither run was seeded: their differences may be noise
    code_files: tuple[str, ...] = ()  # the code files that differ

    @property
    def confounded(self) -> bool:
        return len(self.axes) > 1


def _side(ws: Workspace, tip: pygit2.Commit, ref: str, progress: catalog.Progress | None) -> Side:
    found = history.resolve(ws, ref, progress)
    if found.status == INVALID:
        raise Unreadable(found.problem or f"run {found.id} cannot be read")
    run_id = found.id
    files = history.record_files(ws, store.run_folder(ws, tip, run_id), run_id)
    return Side(axes.inputs_of(run_id, files), files)


def _unseeded(side: Side) -> bool:
    loaded = reader.mapping(side.run_id, SEEDS, side.files.get(SEEDS))
    return loaded.get("seed") is None and not loaded.get("variables") and not loaded.get("rngs")


def compare(
    ws: Workspace,
    ref_a: str,
    ref_b: str,
    progress: catalog.Progress | None = None,
    find_neighbours: bool = True,
) -> Comparison:
    """Compare two runs; when confounded (and `find_neighbours`), also find the single-axis
    comparisons from A."""
    pending.recover(ws)
    tip = store.tip(ws)
    if tip is None:
        raise GitexpError("there are no runs yet; record one with `gitexp run -- CMD`")
    a, b = _side(ws, tip, ref_a, progress), _side(ws, tip, ref_b, progress)
    rules = Rules.of(ws.settings)
    ids = (a.run_id, b.run_id)
    code_files = axes.code_files(ws.repo, a.inputs, b.inputs)
    changes = axes.record_changes(a.inputs, b.inputs)
    explained = axes.code_explained(ws.repo, a.inputs, b.inputs, changes) if code_files else None
    if explained:  # an edited default: the config change is the code change, counted once
        changes = [
            replace(c, members=(*c.members, axes.CODE_AXIS)) if c.axis in explained else c
            for c in changes
        ]
    code = [Change(axes.CODE_AXIS, a.inputs.snapshot, b.inputs.snapshot)]
    code = code if code_files and not explained else []
    raw = code + [axes.describe(c, a.files, b.files, ids) for c in changes]
    counted, ignored = rules.apply(raw)
    comparison = Comparison(
        a=a,
        b=b,
        axes=tuple(axes.sorted_axes(counted)),
        ignored=tuple(axes.sorted_axes(ignored)),
        raw=tuple(raw),
        rules=rules,
        unseeded=_unseeded(a) and _unseeded(b),
        code_files=tuple(code_files),
    )
    if not comparison.confounded or not find_neighbours:
        return comparison
    wanted = {change.axis for change in counted}
    found = tuple(neighbours(ws, rules, a.run_id, {b.run_id}, wanted, progress))
    return replace(comparison, neighbours=found)


def neighbours(
    ws: Workspace,
    rules: Rules,
    run_id: str,
    skip: set[str],
    wanted: set[str] | None,
    progress: catalog.Progress | None,
) -> list[Neighbour]:
    """Runs that differ from `run_id` on exactly one axis, and that axis one of `wanted`
    (any axis when `wanted` is None), newest first.

    Read from the index, cheapest test first: most runs of a sweep differ on several config
    keys and are dropped before their code is looked at.
    """
    everyone = catalog.inputs(ws, progress, near=run_id if rules.kind_preserving else None)
    base = next((run for run in everyone if run.run_id == run_id), None)
    if base is None:
        return []
    code_memo: axes.CodeMemo = {}
    found = []
    for other in everyone:
        if other.run_id == run_id or other.run_id in skip:
            continue
        try:
            counted = axes.counted_changes(ws.repo, rules, base, other, code_memo)
        except axes.MissingSnapshot:
            continue  # its code is not here: it cannot be shown to differ on one axis
        if len(counted) == 1 and (wanted is None or counted[0].axis in wanted):
            # env and seed values are digests here: of no use to a reader
            value = ABSENT if counted[0].axis in (axes.ENV_AXIS, axes.SEED_AXIS) else counted[0].b
            found.append(Neighbour(other.run_id, counted[0].axis, value))
    return found


@dataclass(frozen=True)
class FilePatch:
    """The git diff of one file: its header and hunks, and the numbers `--stat` shows."""

    path: str
    data: bytes
    added: int
    deleted: int
    binary: bool = False
    sizes: tuple[int, int] = (0, 0)


def _from_patch(patch: pygit2.Patch) -> FilePatch:
    delta = patch.delta
    _, added, deleted = patch.line_stats
    return FilePatch(
        path=delta.new_file.path,
        data=patch.data,
        added=added,
        deleted=deleted,
        binary=bool(delta.is_binary),
        sizes=(delta.old_file.size, delta.new_file.size),
    )


def _file_patch(comparison: Comparison, name: str, old: bytes, new: bytes) -> FilePatch | None:
    if old == new:
        return None
    patch = pygit2.Patch.create_from(
        old,
        new,
        old_as_path=f"{run_dir(comparison.a.run_id)}/{name}",
        new_as_path=f"{run_dir(comparison.b.run_id)}/{name}",
    )
    return _from_patch(patch)


def selected(comparison: Comparison, patterns: Sequence[str]) -> list[Change]:
    """The counted axes that `--axis` patterns name (all of them when none is given)."""
    if not patterns:
        return list(comparison.axes)
    return [
        change
        for change in comparison.axes
        if any(p == change.axis or axes.matches(p, change.axis) for p in patterns)
    ]


def patches(ws: Workspace, comparison: Comparison, shown: Sequence[Change]) -> list[FilePatch]:
    """The git diff of what differs on the `shown` axes: code, config, data, env, seeds."""
    keep = {raw for change in shown for raw in comparison.rules.raw_axes(change)}
    differing = {c.axis for c in comparison.raw} | {m for c in comparison.raw for m in c.members}
    found: list[FilePatch] = []
    if axes.CODE_AXIS in keep:
        found.extend(_code_patches(ws, comparison))
    for name, prefix, project in (
        (CONFIG, "config.", _project_config),
        (DATA, "data.", _project_data),
    ):
        if not any(axis.startswith(prefix) for axis in keep):
            continue
        old, new = comparison.a.files.get(name, b""), comparison.b.files.get(name, b"")
        if any(axis.startswith(prefix) and axis not in keep for axis in differing):
            # Some changes of this file are not shown: diff B as if only the shown had changed.
            a = reader.mapping(comparison.a.run_id, name, old or None)
            b = reader.mapping(comparison.b.run_id, name, new or None)
            old, new = project(a, b, keep.__contains__)
        found.extend(p for p in [_file_patch(comparison, name, old, new)] if p)
    for name, axis in ((ENV, axes.ENV_AXIS), (SEEDS, axes.SEED_AXIS)):
        if axis in keep:
            old, new = comparison.a.files.get(name, b""), comparison.b.files.get(name, b"")
            found.extend(p for p in [_file_patch(comparison, name, old, new)] if p)
    return found


def _code_patches(ws: Workspace, comparison: Comparison) -> list[FilePatch]:
    a, b = comparison.a.inputs, comparison.b.inputs
    diff = axes.code_diff(ws.repo, a, b)
    if diff is None:
        return []
    diff.find_similar()  # renames, as `git diff` shows them by default
    counts = axes.code_paths(a, b)
    return [
        _from_patch(patch)
        for patch in diff
        if patch is not None
        and (counts(patch.delta.old_file.path) or counts(patch.delta.new_file.path))
    ]


def _branch(value: Any) -> bool:
    return isinstance(value, Mapping) and bool(value)


def _join(path: str, key: Any) -> str:
    return f"{path}.{key}" if path else str(key)


def _only(value: Any, path: str, include: Callable[[str], bool]) -> Any:
    """The leaves of `value` under `path` that `include` keeps; ABSENT when none."""
    if not _branch(value):
        return value if include(f"config.{path}") else ABSENT
    kept = {k: _only(v, _join(path, k), include) for k, v in value.items()}
    kept = {k: v for k, v in kept.items() if v is not ABSENT}
    return kept or ABSENT


def _project(a: Any, b: Any, path: str, keep: Callable[[str], bool]) -> Any:
    """B's value wherever its change is shown, A's everywhere else."""
    if not (_branch(a) and _branch(b)):
        shown = _only(a, path, keep) is not ABSENT or _only(b, path, keep) is not ABSENT
        return b if shown else a
    out = {}
    for key in sorted(a.keys() | b.keys(), key=str):
        sub = _join(path, key)
        if key in a and key in b:
            value = _project(a[key], b[key], sub, keep)
        elif key in b:
            value = _only(b[key], sub, keep)
        else:
            value = _only(a[key], sub, lambda axis: not keep(axis))
        if value is not ABSENT:
            out[key] = value
    return out


def _project_config(a: Any, b: Any, keep: Callable[[str], bool]) -> tuple[bytes, bytes]:
    """config.yaml of A, and of B with only the shown changes."""
    return yamlio.dump(sort_keys(a)), yamlio.dump(sort_keys(_project(a, b, "", keep)))


def _project_data(a: Any, b: Any, keep: Callable[[str], bool]) -> tuple[bytes, bytes]:
    """data.yaml of A, and of B with only the shown datasets changed."""

    def by_path(loaded: Any) -> dict[str, Any]:
        return {str(item.get("path")): item for item in (loaded or {}).get("datasets") or []}

    old, new = by_path(a), by_path(b)
    chosen = [
        (new if keep(f"data.{path}") else old).get(path) for path in sorted(old.keys() | new.keys())
    ]
    projected = [item for item in chosen if item is not None]
    return yamlio.dump({"datasets": list(old.values())}), yamlio.dump({"datasets": projected})
