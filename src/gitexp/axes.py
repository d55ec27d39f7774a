"""The axes along which two runs differ (DESIGN.md §4), each change counted once.

An axis is `code`, `config.<dotted key>`, `data.<path>`, `env` or `seed`. Host, user, times
and durations are never axes: they do not change what a run computes.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pygit2

from gitexp import reader
from gitexp.config import flatten
from gitexp.environment import LOCK_FILES
from gitexp.errors import GitexpError
from gitexp.record import CODE, CONFIG, DATA, ENV, EXPERIMENTS, SEEDS
from gitexp.seeds import DETERMINISM_VARIABLE
from gitexp.settings import SETTINGS_FILE, Settings

CODE_AXIS, ENV_AXIS, SEED_AXIS = "code", "env", "seed"
# Environment variables that say which job or device ran, not what it computed: eight runs on
# eight GPUs of one node differ only in CUDA_VISIBLE_DEVICES and must stay comparable.
JOB_VARIABLES = frozenset(
    {
        "CUDA_VISIBLE_DEVICES",
        "SLURM_ARRAY_JOB_ID",
        "SLURM_ARRAY_TASK_ID",
        "SLURM_JOB_ID",
        "SLURM_JOB_NAME",
    }
)
# Compared on the seed axis, where seeds.yaml records it, rather than as the environment.
_NOT_ENV = JOB_VARIABLES | {DETERMINISM_VARIABLE}


class _Absent:
    """The value of a key that one of the two runs does not have."""

    def __repr__(self) -> str:
        return "(absent)"


ABSENT: Any = _Absent()


@dataclass(frozen=True)
class Inputs:
    """What a run's axes are read from: the record's inputs, reduced to comparable values."""

    run_id: str
    config: Mapping[str, Any]  # flattened to dotted leaves
    snapshot: str  # the commit holding the run's exact code
    config_files: tuple[str, ...]  # repo-relative; their changes are config, not code
    data: Mapping[str, str]  # dataset path → md5
    env_key: str  # equal for equal environments (job and device identity left out)
    seeds_key: str  # equal for equally seeded runs
    # Each dirty submodule's path → a digest of its changes: code the snapshot cannot hold.
    dirty_submodules: Mapping[str, str] = field(default_factory=dict)
    seed_values: frozenset[int] = frozenset()  # the seeds the run set (seeds.yaml)


@dataclass(frozen=True)
class Change:
    """One axis on which two runs differ, with its value in each (ABSENT where missing)."""

    axis: str
    a: Any
    b: Any
    members: tuple[str, ...] = ()  # the raw axes a group or a folded option gathers


def seeds_key(seeds: Any) -> str:
    """A digest of what seeded a run: the seed given, its variables, each RNG's seeds and the
    determinism flags. How often it reseeded, or whether it drew first, follow from the
    code and config (`--epochs 5` reseeds more often) and are not counted again."""
    kept = {}
    if isinstance(seeds, dict):
        kept = {k: seeds.get(k) for k in ("seed", "variables", "rngs", "later_seeds")}
        kept["deterministic"] = seeds.get("deterministic")
    kept = {k: v for k, v in kept.items() if v not in (None, {}, [])}  # absent is null is empty
    return hashlib.sha1(json.dumps(kept, sort_keys=True, default=str).encode()).hexdigest()


def env_key(raw: bytes) -> str:
    """A digest of env.yaml that ignores how it was captured and which job or device ran.

    Read line by line, since gitexp wrote the file in a fixed layout: parsing the YAML of
    thousands of environments would make a refused `diff` slow.
    """
    kept, section = [], ""
    for line in raw.splitlines():
        if line[:1] not in (b" ", b"-", b""):
            section = line.split(b":", 1)[0].decode(errors="replace")
            if section == "captured_by":
                continue
            if section == "variables":
                line = b"variables:"  # `{}` when empty: the same as holding only ignored ones
        elif section == "variables":
            name = line.strip().split(b":", 1)[0].decode(errors="replace")
            if name in _NOT_ENV:
                continue
        if line.endswith(b": null"):
            continue  # absent and null are the same value
        kept.append(line)
    return hashlib.sha1(b"\n".join(kept)).hexdigest()


def _load(files: Mapping[str, bytes], name: str, run_id: str) -> Any:
    return reader.load_yaml(run_id, name, files.get(name) or None)


def data_pins(loaded: Any) -> dict[str, str]:
    """data.yaml → {path: md5}."""
    datasets = loaded.get("datasets") if isinstance(loaded, dict) else None
    return {
        str(item["path"]): str(item.get("md5"))
        for item in datasets or []
        if isinstance(item, dict) and "path" in item
    }


def inputs_of(run_id: str, files: Mapping[str, bytes]) -> Inputs:
    """The comparable inputs of a run, from its record's files."""
    config = _load(files, CONFIG, run_id) or {}
    code = _load(files, CODE, run_id) or {}
    seeds = _load(files, SEEDS, run_id)
    if not isinstance(config, dict) or not isinstance(code, dict) or "snapshot" not in code:
        raise GitexpError(
            f"run {run_id} has no readable config.yaml and code.yaml, so it cannot be compared"
        )
    return Inputs(
        run_id=run_id,
        config=flatten(config),
        snapshot=str(code["snapshot"]),
        config_files=tuple(code.get("config_files") or ()),
        data=data_pins(_load(files, DATA, run_id)),
        env_key=env_key(files.get(ENV, b"")),
        seeds_key=seeds_key(seeds),
        dirty_submodules=dirty_submodules(code),
        seed_values=seed_values(seeds),
    )


def seed_values(seeds: Any) -> frozenset[int]:
    """The seeds a run set, from seeds.yaml: the one it was given and each RNG's."""
    if not isinstance(seeds, dict):
        return frozenset()
    rngs = seeds.get("rngs")
    values = [seeds.get("seed"), *(rngs.values() if isinstance(rngs, dict) else ())]
    return frozenset(v for v in values if isinstance(v, int) and not isinstance(v, bool))


def dirty_submodules(code: Mapping[str, Any]) -> dict[str, str]:
    """Code the snapshot cannot hold, path → digest: each dirty submodule's uncommitted
    changes (`dirty_submodules`) and each script run from outside the repository
    (`not_captured`). Two runs whose digests differ differ in code."""
    found: dict[str, str] = {}
    for key in ("dirty_submodules", "not_captured"):
        given = code.get(key)
        if isinstance(given, dict):
            found.update({str(k): str(v) for k, v in given.items()})
    return found


def is_code(path: str, config_files: Iterable[str]) -> bool:
    """Whether a change to `path` is a code change rather than config, data or env."""
    name = path.rsplit("/", 1)[-1]
    if path.startswith(f"{EXPERIMENTS}/") or path in config_files:
        return False
    if name.endswith(".dvc") or name == "dvc.lock" or path.startswith(".dvc/"):
        return False  # DVC pointers are the data axis; .dvc/ holds DVC's own settings
    if path == SETTINGS_FILE:
        return False  # gitexp's own settings change nothing a run computes
    # Lock and requirements files at the top are recorded, hashed, as the environment.
    return "/" in path or not any(fnmatch.fnmatchcase(name, p) for p in LOCK_FILES)


class MissingSnapshot(GitexpError):
    """A run's code snapshot is not in this repository (pulled without it, or pruned)."""


def code_diff(repo: pygit2.Repository, a: Inputs, b: Inputs) -> pygit2.Diff | None:
    """The diff between two runs' snapshots, or None when their trees are equal."""
    trees = []
    for run in (a, b):
        try:
            trees.append(repo[run.snapshot].peel(pygit2.Tree))
        except (KeyError, ValueError):
            raise MissingSnapshot(
                f"the code snapshot {run.snapshot[:12]} of run {run.run_id} is not in this "
                "repository; fetch it with `gitexp pull`"
            ) from None
    if trees[0].id == trees[1].id:
        return None
    return trees[0].diff_to_tree(trees[1])


def code_paths(a: Inputs, b: Inputs) -> Callable[[str], bool]:
    """Which paths of two runs' snapshots count as code."""
    config_files = set(a.config_files) | set(b.config_files)
    return lambda path: is_code(path, config_files)


def code_files(repo: pygit2.Repository, a: Inputs, b: Inputs) -> list[str]:
    """The code files that differ between two runs' snapshots: empty when their code is equal."""
    diff = code_diff(repo, a, b)
    counts = code_paths(a, b)
    paths = {p for d in (diff.deltas if diff else []) for p in (d.old_file.path, d.new_file.path)}
    # A submodule edited in place differs in code.diff, not in the snapshot's tree.
    subs = a.dirty_submodules.keys() | b.dirty_submodules.keys()
    paths |= {p for p in subs if a.dirty_submodules.get(p) != b.dirty_submodules.get(p)}
    return sorted(path for path in paths if counts(path))


_LITERAL = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-+'\"")


def _token_bounds(line: str, start: int, end: int) -> tuple[int, int]:
    """Widen [start, end) to whole tokens: a number, a name or a quoted string."""
    while start > 0 and line[start - 1] in _LITERAL:
        start -= 1
    while end < len(line) and line[end] in _LITERAL:
        end += 1
    return start, end


def literal_swap(old: str, new: str) -> tuple[str, str] | None:
    """The one literal in which two lines differ (`default=200` → `default=400` gives
    ("200", "400")), or None when they differ in more than one place or not at all."""
    if old == new:
        return None
    head = 0
    while head < min(len(old), len(new)) and old[head] == new[head]:
        head += 1
    tail = 0
    while tail < min(len(old), len(new)) - head and old[-1 - tail] == new[-1 - tail]:
        tail += 1
    a_start, a_end = _token_bounds(old, head, len(old) - tail)
    b_start, b_end = _token_bounds(new, head, len(new) - tail)
    before, after = old[a_start:a_end], new[b_start:b_end]
    if old[:a_start] != new[:b_start] or old[a_end:] != new[b_end:]:
        return None
    if not (before and after and _LITERAL.issuperset(before + after)):
        return None  # more than one token changed
    return before, after


def _spells(token: str, value: Any) -> bool:
    """Whether a literal in code spells a config value: `1e-3` is 0.001, `'GRU'` is GRU."""
    token = token.strip()
    if isinstance(value, bool):
        return token == str(value)
    if isinstance(value, (int, float)):
        try:
            return float(token.rstrip(",")) == value
        except ValueError:
            return False
    if isinstance(value, str):
        quoted = len(token) >= 2 and token[0] == token[-1] and token[0] in "'\""
        return quoted and token[1:-1] == value
    return False


def code_explained(
    repo: pygit2.Repository, a: Inputs, b: Inputs, changes: Sequence[Change]
) -> list[str] | None:
    """The config axes whose change is the whole code change, when the code differs only in
    the literals that set them: an argparse default edited from 200 to 400 is one change,
    `config.samples`, not also `code`. None when the code differs in anything else.
    Each config change explains one changed line at most."""
    if a.dirty_submodules != b.dirty_submodules:
        return None
    diff = code_diff(repo, a, b)
    counts = code_paths(a, b)
    unused = [c for c in changes if c.axis.startswith("config.")]
    used: list[str] = []
    for patch in diff or []:
        if patch is None:
            return None
        delta = patch.delta
        if not (counts(delta.old_file.path) or counts(delta.new_file.path)):
            continue
        if delta.old_file.path != delta.new_file.path or delta.is_binary:
            return None
        for hunk in patch.hunks:
            removed = [line.content for line in hunk.lines if line.origin == "-"]
            added = [line.content for line in hunk.lines if line.origin == "+"]
            if len(removed) != len(added):
                return None
            for old, new in zip(removed, added, strict=True):
                swap = literal_swap(old.rstrip("\n"), new.rstrip("\n"))
                match = swap and next(
                    (c for c in unused if _spells(swap[0], c.a) and _spells(swap[1], c.b)), None
                )
                if not match:
                    return None
                unused.remove(match)
                used.append(match.axis)
    return used or None


def _spelled(key: str) -> str:
    """A config key with a command-line option named as argparse names it: `--nproc-per-node`
    and `--nproc_per_node` are one option, whichever way a run spelled it."""
    if key.startswith("argv.") and key != "argv._":
        return "argv." + key[5:].replace("-", "_")
    return key


def _config_changes(a: Mapping[str, Any], b: Mapping[str, Any]) -> list[Change]:
    # null is absent; an option is compared by its name, however it was spelled
    a, b = ({_spelled(k): v for k, v in side.items() if v is not None} for side in (a, b))
    changes = [
        Change(f"config.{key}", a.get(key, ABSENT), b.get(key, ABSENT))
        for key in sorted(a.keys() | b.keys())
        if not same_value(a.get(key, ABSENT), b.get(key, ABSENT))
    ]
    return _fold_options(changes)


def same_value(a: Any, b: Any) -> bool:
    """Equal config values: `20` and `20.0` are (argparse leaves an int default of a float
    option as it is), `1` and `true` or `"1"` are not."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return a == b or (a != a and b != b)  # NaN twice is the same
    return type(a) is type(b) and a == b


def _fold_options(changes: list[Change]) -> list[Change]:
    """Count once a command-line option that the script also put into its config.

    `python train.py --lr 0.2` whose script records `optim.lr = args.lr` changes both
    `argv.lr` and `optim.lr`: one change, kept on the script's own (more specific) key.
    """
    options = [
        c for c in changes if c.axis.startswith("config.argv.") and c.axis != "config.argv._"
    ]
    kept = [c for c in changes if c not in options]
    for option in options:
        name = option.axis.removeprefix("config.argv.").replace("-", "_")
        twins = [c for c in kept if not c.axis.startswith("config.argv.") and _same(c, option)]
        named = [c for c in twins if c.axis.rsplit(".", 1)[-1] == name]
        twin = named[0] if named else (twins[0] if len(twins) == 1 else None)
        if twin is None:
            kept.append(option)
            continue
        index = kept.index(twin)
        kept[index] = Change(twin.axis, twin.a, twin.b, (*twin.members, option.axis))
    return sorted(kept, key=lambda c: c.axis)


def _same(one: Change, other: Change) -> bool:
    return (one.a, one.b) == (other.a, other.b) and type(one.a) is type(other.a)


def record_changes(a: Inputs, b: Inputs) -> list[Change]:
    """Every axis but code (see `code_files`) on which `b` differs from `a`, before the
    repository's groups and ignores. Env values are digests, and seed values name only the
    config keys that are seeds; `describe` makes both readable."""
    changes: list[Change] = []
    seeds: list[Change] = []  # config keys that are seeds: `--seed 1` is the seed axis, not config
    for change in _config_changes(a.config, b.config):
        (seeds if carries_seed(change, a, b) else changes).append(change)
    for path in sorted(a.data.keys() | b.data.keys()):
        if a.data.get(path) != b.data.get(path):
            changes.append(
                Change(f"data.{path}", a.data.get(path, ABSENT), b.data.get(path, ABSENT))
            )
    if a.env_key != b.env_key:
        changes.append(Change(ENV_AXIS, a.env_key, b.env_key))
    if a.seeds_key != b.seeds_key or seeds:
        changes.append(
            Change(
                SEED_AXIS,
                {c.axis: c.a for c in seeds},
                {c.axis: c.b for c in seeds},
                tuple(c.axis for c in seeds),
            )
        )
    return changes


def is_seed_key(axis: str) -> bool:
    """Whether a config axis is named as a seed: `config.seed`, `config.data_seed`,
    `config.random_state`, …"""
    last = axis.rsplit(".", 1)[-1].lower().replace("-", "_")
    return axis.startswith("config.") and ("seed" in last or last == "random_state")


def is_seed_value(value: Any, seeds: frozenset[int]) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value in seeds


def carries_seed(change: Change, a: Inputs, b: Inputs) -> bool:
    """Whether a config change is a change of seed: a key named as one, or one whose value is,
    in each run, a seed that run set (`--rs 3` that seeded torch with 3)."""
    if is_seed_key(change.axis):
        return True
    return is_seed_value(change.a, a.seed_values) and is_seed_value(change.b, b.seed_values)


def _config_pattern(pattern: str) -> bool:
    """Whether a pattern can only name config axes (see `matches`)."""
    return pattern not in (CODE_AXIS, ENV_AXIS, SEED_AXIS) and not pattern.startswith("data.")


def matches(pattern: str, axis: str) -> bool:
    """Whether an axis pattern names `axis`: `env`, `data.*`, `config.optim.*`, or a bare
    config key such as `optim.*` (anything that does not start with an axis kind)."""
    if pattern in (CODE_AXIS, ENV_AXIS, SEED_AXIS) or pattern.startswith(("config.", "data.")):
        return fnmatch.fnmatchcase(axis, _spelled_axis(pattern))
    return fnmatch.fnmatchcase(axis, _spelled_axis(f"config.{pattern}"))


def _spelled_axis(pattern: str) -> str:
    """An axis pattern naming an option as the axes name it (see _spelled)."""
    config = pattern.removeprefix("config.")
    return f"config.{_spelled(config)}" if config != pattern else pattern


@dataclass(frozen=True)
class Rules:
    """The repository's axis settings: groups that count as one axis, and axes never counted."""

    groups: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    ignore: tuple[str, ...] = ()

    @classmethod
    def of(cls, settings: Settings) -> Rules:
        return cls(dict(settings.axis_groups), settings.axis_ignore)

    @property
    def kind_preserving(self) -> bool:
        """No axis is ignored and groups gather config keys only, so runs whose inputs differ
        in two kinds (say env and seed) always differ on two axes."""
        patterns = [p for group in self.groups.values() for p in group]
        return not self.ignore and all(_config_pattern(p) for p in patterns)

    def ignored(self, axis: str) -> bool:
        return any(matches(p, axis) for p in self.ignore)

    def group_of(self, axis: str) -> str | None:
        for name, patterns in self.groups.items():
            if any(matches(p, axis) for p in patterns):
                return name
        return None

    def apply(self, changes: Sequence[Change]) -> tuple[list[Change], list[Change]]:
        """(the axes that count, the ignored ones): grouped members become one axis."""
        counted: dict[str, Change] = {}
        ignored = []
        for change in changes:
            if self.ignored(change.axis):
                ignored.append(change)
                continue
            group = self.group_of(change.axis)
            if group is None:
                counted[change.axis] = change
                continue
            found = counted.get(group) or Change(group, {}, {})
            members = (*found.members, change.axis, *change.members)
            counted[group] = Change(
                group, {**found.a, change.axis: change.a}, {**found.b, change.axis: change.b},
                members,
            )  # fmt: skip
        return list(counted.values()), ignored

    def raw_axes(self, change: Change) -> tuple[str, ...]:
        """The raw axes one counted change stands for."""
        if change.axis in self.groups:
            return change.members
        return (change.axis, *change.members)


CodeMemo = dict[tuple[Any, ...], bool]  # a run's code key → whether its code differs from base's


def counted_changes(
    repo: pygit2.Repository,
    rules: Rules,
    base: Inputs,
    other: Inputs,
    code_memo: CodeMemo,
    complete: bool = False,
) -> list[Change]:
    """The axes `other` differs from `base` on, as the repository counts them (groups and
    ignores applied), code included.

    Cheapest test first: when more than one axis differs before code is looked at, the code
    is not looked at and the list leaves it out (it is long enough to refuse either way),
    unless `complete`. `code_memo` caches, for one `base`, whether each code key differs
    from base's code.
    """
    changes = record_changes(base, other)
    counted, _ = rules.apply(changes)
    if len(counted) > 1 and not complete:
        return counted
    key = (other.snapshot, other.config_files, tuple(sorted(other.dirty_submodules.items())))
    if key not in code_memo:
        code_memo[key] = bool(code_files(repo, base, other))
    if code_memo[key] and not code_explained(repo, base, other, changes):
        counted, _ = rules.apply([Change(CODE_AXIS, base.snapshot, other.snapshot), *changes])
    return counted


def _flat_env(loaded: Any) -> dict[str, Any]:
    if not isinstance(loaded, dict):
        return {}
    env = {k: v for k, v in loaded.items() if k not in ("captured_by", "packages")}
    env["variables"] = {
        k: v for k, v in (loaded.get("variables") or {}).items() if k not in _NOT_ENV
    }
    flat = {k: v for k, v in flatten(env).items() if v is not None}  # null is absent
    for item in loaded.get("packages") or []:
        name, _, version = str(item).partition("==")
        flat[f"packages.{name}"] = version
    return flat


def _flat_seeds(loaded: Any) -> dict[str, Any]:
    if not isinstance(loaded, dict):
        return {}
    return flatten({k: v for k, v in loaded.items() if k != "note"})


def _changed(a: Mapping[str, Any], b: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    a, b = ({k: v for k, v in side.items() if v != {}} for side in (a, b))  # `variables: {}`
    # The seed itself first: the RNGs and variables it set follow from it.
    keys = sorted(
        (k for k in a.keys() | b.keys() if a.get(k, ABSENT) != b.get(k, ABSENT)),
        key=lambda k: (k != "seed", k),
    )
    return {k: a.get(k, ABSENT) for k in keys}, {k: b.get(k, ABSENT) for k in keys}


def env_differences(a: Any, b: Any) -> list[tuple[str, Any, Any]]:
    """(key, in a, in b) for every environment value that differs between two env.yaml
    mappings, as `diff` counts them (absent and null alike)."""
    old, new = _changed(_flat_env(a), _flat_env(b))
    return [(key, old[key], new[key]) for key in old]


def describe(
    change: Change, files_a: Mapping[str, bytes], files_b: Mapping[str, bytes], ids: tuple[str, str]
) -> Change:
    """`change` with readable values: for env and seed, the keys that changed and how."""
    if change.axis == ENV_AXIS:
        a, b = _changed(
            _flat_env(_load(files_a, ENV, ids[0])), _flat_env(_load(files_b, ENV, ids[1]))
        )
    elif change.axis == SEED_AXIS:
        a, b = _changed(
            _flat_seeds(_load(files_a, SEEDS, ids[0])), _flat_seeds(_load(files_b, SEEDS, ids[1]))
        )
        a, b = {**a, **change.a}, {**b, **change.b}  # and the seeds given as config
    else:
        return change
    return Change(change.axis, a, b, change.members)


def sorted_axes(changes: Iterable[Change]) -> list[Change]:
    """Axes in the order of DESIGN.md §4's table: code, config, data, env, seed."""
    order = {CODE_AXIS: 0, ENV_AXIS: 3, SEED_AXIS: 4}

    def key(change: Change) -> tuple[int, str]:
        if change.axis in order:
            return order[change.axis], ""
        return (2 if change.axis.startswith("data.") else 1), change.axis

    return sorted(changes, key=key)
