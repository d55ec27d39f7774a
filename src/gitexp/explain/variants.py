"""How each planned run of an explanation is made: a replay recipe that keeps everything of
one run (A, or B for B's own seeds) but what it takes from the other, and says how.

Nothing here runs anything: recipes are written from the two records and their code
snapshots, so that `explain --plan` can show them before a single run starts.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pygit2
import pygit2.enums

from gitexp import axes, history, limits, reader, yamlio
from gitexp import config as config_mod
from gitexp.axes import ABSENT
from gitexp.errors import GitexpError
from gitexp.record import CODE, CONFIG, DATA, EXPERIMENTS, RUN, SEEDS, RunInfo
from gitexp.replay import code as replay_code
from gitexp.replay import reproduce
from gitexp.replay.recipe import Recipe
from gitexp.seeds import SEED_MAX, SEED_VARIABLES, child_variables
from gitexp.workspace import Workspace

_EDITED = (".yaml", ".yml", ".json")  # the config files explain can change a key of
# How a run takes its seed, and so how a replicate is given another one.
BY_OPTION, BY_VARIABLES, UNSEEDED, IN_CODE = "option", "variables", "unseeded", "code"


class Unvariable(GitexpError):
    """A planned run that explain cannot make from the records: why, for the user."""


@dataclass(frozen=True)
class Source:
    """One of the two runs, read once: everything a recipe is made from."""

    run_id: str
    info: RunInfo
    inputs: axes.Inputs
    config: Mapping[str, Any]  # flattened
    snapshot: str
    config_files: tuple[str, ...]
    pins: Mapping[str, str]  # dataset path → md5
    pointers: Mapping[str, str]  # dataset path → the pointer file that pins it
    variables: Mapping[str, str]  # the seed and determinism variables it saw
    carrier: str  # BY_OPTION, BY_VARIABLES, UNSEEDED or IN_CODE
    seed_key: str | None = None  # the config key of its seed, BY_OPTION
    seed: int | None = None  # its seed, when it was given one we can give again


def read(ws: Workspace, run_id: str) -> Source:
    """The run's record, as recipes and seeds need it."""
    record = history.load(ws, run_id)
    files = record.files
    info = reader.run_info(run_id, files.get(RUN))
    if not info.command:
        raise GitexpError(f"run {run_id} recorded no command, so explain cannot run it again")
    inputs = axes.inputs_of(run_id, files)
    config = config_mod.flatten(reader.mapping(run_id, CONFIG, files.get(CONFIG)))
    recorded_code = reader.mapping(run_id, CODE, files.get(CODE))
    pinned = reader.pins(run_id, DATA, files.get(DATA))
    seeds = reader.mapping(run_id, SEEDS, files.get(SEEDS))
    given = seeds.get("variables")
    variables: dict[str, Any] = given if isinstance(given, dict) else {}
    carrier, key, seed = _carrier(config, inputs, variables)
    return Source(
        run_id=run_id,
        info=info,
        inputs=inputs,
        config=config,
        snapshot=replay_code.snapshot_of(record),
        config_files=tuple(
            str(f) for f in recorded_code.get("config_files") or () if isinstance(f, str)
        ),
        pins={p.path: p.md5 for p in pinned},
        pointers={
            p.path: str(p.entry["pointer"])
            for p in pinned
            if isinstance(p.entry.get("pointer"), str)
        },
        variables=reproduce.replayed_variables(seeds),
        carrier=carrier,
        seed_key=key,
        seed=seed,
    )


def _whole(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _carrier(
    config: Mapping[str, Any], inputs: axes.Inputs, variables: Mapping[str, Any]
) -> tuple[str, str | None, int | None]:
    """How a run was seeded: by an option of its command (`--seed 3`, the config key that
    carries it), by `gitexp run --seed` (GITEXP_SEED), not at all, or in its code."""
    seeded = inputs.seed_values  # what seeded its RNGs, as observed: an option named seed
    keys = sorted(  # that seeded none of them (a `--seed` the code ignores) carries nothing
        (
            k
            for k in config
            if axes.is_seed_key(f"config.{k}")
            and _whole(config[k]) is not None
            and (not seeded or config[k] in seeded)
        ),
        key=lambda k: (k.rsplit(".", 1)[-1].lower() != "seed", k),  # `seed` before `data_seed`
    )
    if keys:
        return BY_OPTION, keys[0], config[keys[0]]
    given = str(variables.get(SEED_VARIABLES[0]))
    if re.fullmatch(r"[0-9]{1,10}", given) and int(given) <= SEED_MAX:
        return BY_VARIABLES, None, int(given)
    if not inputs.seed_values:
        return UNSEEDED, None, None
    return IN_CODE, None, None


@dataclass(frozen=True)
class Made:
    """A recipe, and how it differs from its source run, in words for the plan."""

    recipe: Recipe
    how: tuple[str, ...]


def _text(value: Any, key: str) -> str:
    """A config value as its command line option spells it."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise Unvariable(f"config.{key} is {_shown(value)} in B, which no single option spells")
    return value if isinstance(value, str) else json.dumps(value)


def _shown(value: Any) -> str:
    return "absent" if value is ABSENT else reader.terminal_safe(repr(value))[:80]


def _option_name(key: str) -> str:
    """The option a config key is read from: `lr`, or `lr` of `argv.lr` (an unparsed command)."""
    return key.removeprefix(f"{config_mod.ARGV}.")


def _spelled_at(command: Sequence[str], name: str) -> int | None:
    """Where the command spells the option `name` (`--name`, `--name=v`, `-name`), if it does."""
    from gitexp import argv

    for i in range(argv.script_end(command), len(command)):
        word = command[i]
        if word == "--":
            return None
        if reproduce.names_option(word, name):
            return i
    return None


class _Draft:
    """A recipe being written: the source run's, changed one part at a time."""

    def __init__(self, ws: Workspace, source: Source, other: Source | None = None) -> None:
        hidden = sorted({r.name for r in source.info.redacted if r.where == "command"})
        if hidden:  # the record holds a placeholder where the secret was: never run that
            raise Unvariable(
                f"run {source.run_id}'s command held secrets its record keeps out "
                f"({', '.join(hidden)}), so it cannot be run again"
            )
        self.ws = ws
        self.source = source
        self.other = other  # the run whose values are taken
        self.snapshot = source.snapshot
        self.command = list(reproduce.runnable(source.info.command)[0])
        self.pins = dict(source.pins)
        self.variables = dict(source.variables)
        self.overlays: dict[str, bytes | None] = {}
        self.unpinned = False
        self.how: list[str] = []

    def code(self, other: Source) -> None:
        """The other run's code, with this run's config files, data pointers and lock files:
        a change of those is another axis, never code (DESIGN.md §4)."""
        repo = self.ws.repo
        diff = axes.code_diff(repo, self.source.inputs, other.inputs)
        counts = axes.code_paths(self.source.inputs, other.inputs)
        mine = _tree(repo, self.source.snapshot)
        changed = sorted(
            {
                path
                for delta in (diff.deltas if diff else [])
                for path in (delta.old_file.path, delta.new_file.path)
            }
        )
        for path in changed:
            if counts(path) or path.startswith(f"{EXPERIMENTS}/"):
                continue
            self.overlays[path] = _blob(repo, mine, path)
        self.snapshot = other.snapshot
        files = axes.code_files(repo, self.source.inputs, other.inputs)
        shown = ", ".join(files[:3]) + (f" and {len(files) - 3} more" if len(files) > 3 else "")
        self.how.append(f"B's code ({shown or 'its snapshot'})")

    def config(self, key: str, value: Any) -> None:
        """Set the config key `key` to `value` where the run reads it: an option of its
        command, or a key of one of its YAML or JSON config files."""
        if key == f"{config_mod.ARGV}._":
            raise Unvariable(
                "the command's positional arguments (the script it runs) differ; "
                "explain changes options and config keys only"
            )
        name = _option_name(key)
        at = _spelled_at(self.command, name)
        mine = self.source.config.get(key, ABSENT)
        if value is ABSENT or value is None:
            if at is None:
                raise Unvariable(
                    f"config.{key} is absent in one run and set in the other by "
                    "something explain cannot remove"
                )
            self.how.append(f"without {self.command[at].partition('=')[0]}")
            self._drop(at)
            return
        if isinstance(value, bool):
            self._switch(key, name, at, value, mine)
            return
        text = _text(value, key)
        if at is not None:
            reproduce.set_option(self.command, name, text)
            self.how.append(f"{self.command[at].partition('=')[0]} {text}")
            return
        option = reproduce.option_of(self.ws, self.snapshot, name)
        if option is not None and key in self.source.config:
            self.command.append(f"{option}={text}")
            self.how.append(f"{option}={text}")
            return
        if self._in_file(key, value):
            return
        if any(not f.lower().endswith(_EDITED) for f in self.source.config_files):
            raise Unvariable(f"config.{key} is no option of the command, and explain edits "
                             "YAML and JSON config files only")  # fmt: skip
        raise Unvariable(
            f"config.{key} is neither an option of the command nor a key of its "
            "config files, so explain cannot set it"
        )

    def _drop(self, at: int) -> None:
        from gitexp import argv

        word = self.command[at]
        ends = at + 1
        if "=" not in word and ends < len(self.command) and not argv.is_option(self.command[ends]):
            ends += 1
        del self.command[at:ends]

    def _switch(self, key: str, name: str, at: int | None, value: bool, mine: Any) -> None:
        """A flag: present or absent on the command line, no value."""
        if value and at is None:
            option = reproduce.option_of(self.ws, self.snapshot, name)
            if option is None:
                raise Unvariable(f"config.{key} is a switch the code does not define")
            self.command.append(option)
            self.how.append(option)
        elif not value and at is not None and "=" not in self.command[at]:
            self.how.append(f"without {self.command[at]}")
            del self.command[at]
        elif mine is not value:
            raise Unvariable(f"config.{key} is a switch explain can only turn on or leave off")

    def _in_file(self, key: str, value: Any) -> bool:
        """Set `key` in the config file of this run that holds it, if one does: in place,
        every other byte of the file as it was."""
        repo = self.ws.repo
        tree = _tree(repo, self.snapshot)
        for path in self.source.config_files:
            if not path.lower().endswith(_EDITED):
                continue
            raw = self.overlays.get(path, _blob(repo, tree, path))
            if raw is None:
                continue
            json_file = path.lower().endswith(".json")
            loaded = (
                _json(raw, path)
                if json_file
                else yamlio.load_bounded(raw, path, error=Unvariable, malformed=Unvariable)
            )
            if not isinstance(loaded, dict) or key not in config_mod.flatten(loaded):
                continue
            if json_file:  # one reading only: rewritten whole, every value as it was
                config_mod.set_dotted(loaded, key, value)
                edited: bytes | None = json.dumps(loaded, indent=2).encode() + b"\n"
            else:
                edited = yamlio.with_scalar(raw, key, value, path, self._spelled(path, key, value))
            if edited is None:
                raise Unvariable(f"config.{key} in {path} is no single value explain can "
                                 "change in place")  # fmt: skip
            self.overlays[path] = edited
            self.how.append(f"{key}: {_shown(value)} in {path}")
            return True
        return False

    def _spelled(self, path: str, key: str, value: Any) -> str | None:
        """How B's own copy of the config file `path` spells `key`, when `value` is B's:
        copied as it is, the script's YAML reader (PyYAML reads `off` and `012` as YAML 1.1
        does) reads there what B's read."""
        other = self.other
        if other is None or path not in other.config_files:
            return None
        if not axes.same_value(other.config.get(key, ABSENT), value):
            return None  # another value: a seed of a replicate, say
        raw = _blob(self.ws.repo, _tree(self.ws.repo, other.snapshot), path)
        if raw is None:
            return None
        try:  # B's snapshot is as untrusted as A's: read within the same bounds first
            yamlio.load_bounded(raw, path, error=Unvariable, malformed=Unvariable)
        except Unvariable:
            return None
        return yamlio.scalar_at(raw, key)

    def data(self, path: str, other: Source) -> None:
        """The dataset at `path` at the other run's version, its pointer file with it."""
        md5 = other.pins.get(path)
        if md5 is None:
            raise Unvariable(f"{other.run_id} read no {path}; explain cannot take a dataset away")
        self.pins[path] = md5
        pointer = other.pointers.get(path, "")
        tree = _tree(self.ws.repo, other.snapshot)
        content = _blob(self.ws.repo, tree, pointer) if pointer.endswith(".dvc") else None
        if content is not None:
            self.overlays[pointer] = content
        else:  # dvc.lock, or no pointer: the content is pinned by its md5 all the same
            self.unpinned = True
        self.how.append(f"{path} at {md5[:8]}")

    def seed(self, seed: int | None) -> None:
        """Run with `seed` as the source run took its own; None leaves its seeding alone."""
        if seed is None:
            return
        source = self.source
        if source.carrier == BY_OPTION and source.seed_key is not None:
            self.config(source.seed_key, seed)
        elif source.carrier == BY_VARIABLES:
            self.variables.update(child_variables(seed))
            self.how.append(f"{SEED_VARIABLES[0]}={seed}")
        else:
            raise Unvariable(f"run {source.run_id} takes no seed explain can give it")

    def made(self) -> Made:
        source = self.source
        recipe = Recipe(
            source=source.run_id,
            snapshot=self.snapshot,
            cwd=source.info.cwd,
            command=tuple(self.command),
            config_files=source.config_files,
            tags=source.info.tags,
            pins=tuple(sorted(self.pins.items())),
            variables=self.variables,
            overlays=self.overlays,
            allow_unpinned_data=self.unpinned,
        )
        return Made(recipe, tuple(self.how))


def _json(raw: bytes, path: str) -> Any:
    """A JSON config file of a snapshot, within gitexp's limits for config."""
    try:
        return limits.plain(json.loads(raw), path, error=Unvariable)
    except (ValueError, RecursionError):
        raise Unvariable(f"{path} is not JSON explain can read") from None


def _tree(repo: pygit2.Repository, snapshot: str) -> pygit2.Tree:
    try:
        return repo[snapshot].peel(pygit2.Tree)
    except (KeyError, ValueError):
        raise axes.MissingSnapshot(
            f"the code snapshot {snapshot[:12]} is not in this "
            "repository; fetch it with `gitexp pull`"
        ) from None


def _blob(repo: pygit2.Repository, tree: pygit2.Tree, path: str) -> bytes | None:
    """The file at `path` in `tree`, or None where it has none; a link is no file."""
    try:
        entry = tree[path]
    except (KeyError, ValueError):
        return None
    if entry.filemode == pygit2.enums.FileMode.LINK:
        raise Unvariable(f"{path} is a link in the run's code, not a file")
    # A config file or pointer, from a snapshot someone else made: sized before it is read.
    limits.check_size(repo.odb.read_header(entry.id)[1], path, error=Unvariable)
    found = repo[entry.id]
    return found.data if isinstance(found, pygit2.Blob) else None


def recipe(
    ws: Workspace,
    source: Source,
    other: Source,
    taken: Sequence[axes.Change],
    rules: axes.Rules,
    seed: int | None,
) -> Made:
    """`source`'s run with the axes `taken` from `other`, run with `seed` (None: seeded as
    `source` was). Unvariable when one of them cannot be taken."""
    draft = _Draft(ws, source, other)
    for change in taken:  # the code first: options are looked up in the code that runs
        if change.axis == axes.CODE_AXIS or axes.CODE_AXIS in _raw(change, rules):
            draft.code(other)
    for change in taken:
        if change.axis == axes.SEED_AXIS:
            _take_seed(draft, change, other)
            continue
        for axis in _raw(change, rules):
            if axis.startswith("config."):
                key = axis.removeprefix("config.")
                draft.config(key, other.config.get(key, ABSENT))
            elif axis.startswith("data."):
                draft.data(axis.removeprefix("data."), other)
            elif axis == axes.ENV_AXIS:
                raise Unvariable(
                    "explain runs on this machine, whose environment it cannot "
                    "change; run A's command in B's environment by hand"
                )
    draft.seed(seed)
    return draft.made()


def _raw(change: axes.Change, rules: axes.Rules) -> tuple[str, ...]:
    """The raw axes a counted change takes: a group's members; otherwise the axis alone (an
    option folded into its config key, or code explained by a default, goes with it)."""
    return change.members if change.axis in rules.groups else (change.axis,)


def _take_seed(draft: _Draft, change: axes.Change, other: Source) -> None:
    """The other run's seed: through the config keys that carry it, else as it was given."""
    given = change.b if isinstance(change.b, dict) else {}
    members = [m for m in change.members if m.startswith("config.")]
    for member in members:
        draft.config(member.removeprefix("config."), given.get(member, ABSENT))
    if not members:
        if other.seed is None:
            raise Unvariable(f"run {other.run_id} was seeded in a way explain cannot repeat")
        draft.seed(other.seed)
