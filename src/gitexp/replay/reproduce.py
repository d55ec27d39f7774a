"""`gitexp reproduce ID`: run a recorded run again, exactly, and say whether it came out
the same.

The run's code snapshot is checked out in a worktree of its own (replay.code), its pinned
datasets restored there from the DVC cache (or remote), and its command run as it was
recorded: the same working directory, config files and seed variables. The new run is
recorded like any other, with `reproduces: ID`, and its summary metrics are compared with
the original's.
"""

from __future__ import annotations

import math
import os
import shutil
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from gitexp import argv, axes, environment, git, history, reader, yamlio
from gitexp.config import flatten
from gitexp.errors import GitexpError, Unreadable, UsageError
from gitexp.record import CODE, CONFIG, DATA, ENV, RUN, SEEDS, SUMMARY, RunInfo, shown_by_default
from gitexp.replay import code
from gitexp.replay import recipe as recipes
from gitexp.replay.recipe import Recipe
from gitexp.seeds import DETERMINISM_VARIABLE, SEED_VARIABLES
from gitexp.workspace import Workspace


@dataclass(frozen=True)
class Plan:
    """What a reproduction will run, and how this machine differs from the record's."""

    record: history.Record
    info: RunInfo  # its run.yaml, as read once
    command: tuple[str, ...]
    cwd: str  # relative to the top of the code
    snapshot: str
    environment: tuple[tuple[str, Any, Any], ...]  # (key, recorded, here) that differ
    variables: Mapping[str, str]  # seed and determinism variables the run saw
    notes: tuple[str, ...] = ()  # what had to be adapted to this machine, for the user


@dataclass(frozen=True)
class Metric:
    name: str
    original: float | None
    again: float | None
    matches: bool


@dataclass(frozen=True)
class Outcome:
    """How the reproduction ended and what it gave."""

    original: str
    run_id: str
    status: str
    exit_status: int
    metrics: tuple[Metric, ...]
    config_changes: tuple[str, ...]  # config keys whose value differs from the original's

    @property
    def failure(self) -> str | None:
        """Why the reproduction does not reproduce the original; None when it does."""
        if self.status != "succeeded":
            return f"it {self.status} (exit {self.exit_status})"
        if not self.metrics:
            return (
                f"run {self.original} recorded no metrics, so there is nothing to compare; "
                "log them (gitexp.init, run.log) to make a run reproducible"
            )
        differ = [m.name for m in self.metrics if not m.matches]
        if differ:
            return f"{len(differ)} of {len(self.metrics)} metrics differ ({', '.join(differ)})"
        if self.config_changes:
            return f"its config came out differently ({', '.join(self.config_changes)})"
        return None


def plan(ws: Workspace, ref: str) -> Plan:
    """Read the run `ref` names and check this machine against its record; runs nothing
    but the interpreter the command names, to ask its versions."""
    record = history.load(ws, ref)
    run_id = record.summary.id
    info = reader.run_info(run_id, record.files.get(RUN))
    if not info.command:
        raise Unreadable(f"run {run_id} recorded no command to run again")
    hidden = sorted({r.name for r in info.redacted if r.where == "command"})
    if hidden:  # the record holds a placeholder where the secret was: never run that
        raise GitexpError(
            f"run {run_id}'s command held secrets its record keeps out ({', '.join(hidden)}), "
            "so it cannot be run again as it was; give secrets through the environment or a "
            "file, not the command line, to make runs replayable"
        )
    snapshot = code.snapshot_of(record)
    seeds = reader.mapping(run_id, SEEDS, record.files.get(SEEDS))
    variables = replayed_variables(seeds)
    command, notes = runnable(info.command)
    recorded = reader.mapping(run_id, ENV, record.files.get(ENV))
    env = {**os.environ, **variables}
    here = environment.capture(command, env, ws.workdir, ws.settings.env_allow)
    differences = axes.env_differences(recorded, here)
    return Plan(record, info, command, info.cwd, snapshot, tuple(differences), variables, notes)


def runnable(command: tuple[str, ...]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The recorded command, runnable here: a Python interpreter recorded by a path this
    machine lacks (another machine's virtual environment) is this machine's `python` of the
    same name on PATH, and the user is told; the environment check shows what differs."""
    program = command[0]
    if not os.path.isabs(program) or os.path.exists(program) or not argv.is_python(program):
        return command, ()
    found = shutil.which(os.path.basename(program)) or shutil.which("python3") or sys.executable
    note = f"{program} is not on this machine: running {found} instead"
    return (found, *command[1:]), (note,)


def distrust(ws: Workspace, run_id: str) -> str | None:
    """Why the record of `run_id` is not to be trusted to run (not signed by a key git
    trusts, or altered since), or None when it verifies."""
    from gitexp import verify

    report = verify.verify(ws, [run_id])
    if report.ok:
        return None
    if report.failed:
        check = report.failed[0]
        return f"{check.status}: {check.detail}" if check.detail else check.status
    return "the runs branch itself does not verify (`gitexp verify` says why)"


def replayed_variables(seeds: Mapping[str, Any]) -> dict[str, str]:
    """The seed variables (`gitexp run --seed`) and determinism flag the run saw."""
    seen, flags = seeds.get("variables"), seeds.get("deterministic")
    seen = seen if isinstance(seen, dict) else {}
    flags = flags if isinstance(flags, dict) else {}
    found = {name: str(seen[name]) for name in SEED_VARIABLES if name in seen}
    if DETERMINISM_VARIABLE in flags:
        found[DETERMINISM_VARIABLE] = str(flags[DETERMINISM_VARIABLE])
    return found


def run(ws: Workspace, chosen: Plan, rtol: float, atol: float) -> Outcome:
    """Run the plan in a worktree of the run's code; record and compare the new run."""
    record = chosen.record
    result = recipes.run(ws, replace(recipe(chosen), reproduces=record.summary.id))
    again = history.load(ws, result.run_id)
    return Outcome(
        record.summary.id,
        result.run_id,
        result.status,
        result.exit_status,
        tuple(compare_metrics(record, again, rtol, atol)),
        tuple(_config_changes(record, again)),
    )


@dataclass(frozen=True)
class Rerun:
    """A run re-run with a change, and the config keys that changed."""

    original: str
    run_id: str
    status: str
    exit_status: int
    command: tuple[str, ...]
    config_changes: tuple[str, ...]


@dataclass(frozen=True)
class Changed:
    """What a rerun runs: the command with its changed options, config set beside it."""

    command: tuple[str, ...]
    params: tuple[str, ...]  # KEY=VALUE set in the config, as `gitexp run -p` does
    notes: tuple[str, ...]  # for the user: what was set where the script may not read it


def changed(ws: Workspace, chosen: Plan, changes: Sequence[str]) -> Changed:
    """`changes` (KEY=VALUE each) applied to the plan's command: an option the command
    spells takes the new value; an option it left at its default is added, spelled as the
    code's parser spells it (found in the snapshot's Python files); any other key is set
    in the config, as `gitexp run -p` does."""
    record = chosen.record
    config = reader.mapping(record.summary.id, CONFIG, record.files.get(CONFIG))
    command, params, notes = list(chosen.command), [], []
    for change in changes:
        key, sep, value = change.partition("=")
        if not sep or not key or key.startswith("-"):
            raise UsageError(f"-p {change!r}: write KEY=VALUE, e.g. -p lr=0.01")
        if set_option(command, key, value):
            continue
        option = option_of(ws, chosen.snapshot, key) if key in config else None
        if option is None:
            params.append(change)
            notes.append(
                f"{key} is neither an option of the command nor one its code defines; it is "
                "set in the config only, where the script may not read it"
            )
        elif isinstance(config[key], bool):  # a switch: present or absent, no value
            if yamlio.typed_value(value) is not True or config[key]:
                raise UsageError(f"-p {change!r}: {option} is a switch the command can only "
                                 "turn on, and it is off by default; give true")  # fmt: skip
            command.append(option)
        else:
            command.append(f"{option}={value}")
    return Changed(tuple(command), tuple(params), tuple(notes))


def option_of(ws: Workspace, snapshot: str, key: str) -> str | None:
    """How the code at `snapshot` spells the option whose value the config holds as `key`:
    `--test-batch-size` or `--test_batch_size`, whichever a Python file of it defines."""
    for option in dict.fromkeys([f"--{key.replace('_', '-')}", f"--{key}"]):
        quoted = ["-e", f'"{option}"', "-e", f"'{option}'"]
        found = git.run(ws.workdir, f"--git-dir={ws.git_dir}", "grep", "-q", "-F", *quoted,
                        snapshot, "--", "*.py")  # fmt: skip
        if found is not None and found.returncode == 0:
            return option
    return None


def rerun(ws: Workspace, chosen: Plan, change: Changed) -> Rerun:
    """The plan's command with `change`, on the run's own code, data and seeds."""
    record = chosen.record
    made = recipe(chosen, change.command, change.params)
    result = recipes.run(ws, replace(made, rerun_of=record.summary.id))
    again = history.load(ws, result.run_id)
    differs = tuple(_config_changes(record, again))
    return Rerun(record.summary.id, result.run_id, result.status, result.exit_status,
                 change.command, differs)  # fmt: skip


def names_option(word: str, key: str) -> bool:
    """Whether a word of a command is the option `key` (`--key`, `--key=v`, `-key`), however
    its underscores are spelled."""
    name = word.partition("=")[0].lstrip("-")
    return argv.is_option(word) and name in (key, key.replace("_", "-"))


def set_option(command: list[str], key: str, value: str) -> bool:
    """Give the option `key` of the command (`--key v`, `--key=v`, `-k v`) the value `value`,
    wherever the command already spells it; whether it did."""
    found = False
    for i in range(argv.script_end(command), len(command)):
        word = command[i]
        if word == "--":
            break
        name, has_value, _ = word.partition("=")
        if not names_option(word, key):
            continue
        if has_value:
            command[i] = f"{name}={value}"
            found = True
        elif i + 1 < len(command) and not argv.is_option(command[i + 1]):
            command[i + 1] = value
            found = True
    return found


def recipe(
    chosen: Plan, command: tuple[str, ...] | None = None, params: tuple[str, ...] = ()
) -> Recipe:
    """The plan's run as a recipe: its command (or `command`) on its own code, data, config
    files and seed variables."""
    record = chosen.record
    run_id = record.summary.id
    recorded_code = reader.mapping(run_id, CODE, record.files.get(CODE))
    files = [str(f) for f in recorded_code.get("config_files") or [] if isinstance(f, str)]
    pins = [(p.path, p.md5) for p in reader.pins(run_id, DATA, record.files.get(DATA))]
    return Recipe(
        source=run_id,
        snapshot=chosen.snapshot,
        cwd=chosen.cwd,
        command=chosen.command if command is None else command,
        params=params,
        config_files=tuple(files),
        tags=chosen.info.tags,
        pins=tuple(pins),
        variables=dict(chosen.variables),
    )


def compare_metrics(
    original: history.Record, again: history.Record, rtol: float, atol: float
) -> list[Metric]:
    """Each summary metric's last value in both runs, and whether they agree within
    |again - original| <= atol + rtol * |original| (NaN agrees with NaN only). System metrics
    (the machine's load, sampled beside the run) are no outcome of the run: never compared."""
    first = reader.summary(original.summary.id, SUMMARY, original.files.get(SUMMARY))
    second = reader.summary(again.summary.id, SUMMARY, again.files.get(SUMMARY))
    found = []
    for name in sorted(filter(shown_by_default, first)):
        a, b = _last(first.get(name)), _last(second.get(name))
        found.append(Metric(name, a, b, _close(a, b, rtol, atol)))
    return found


def _last(entry: Any) -> float | None:
    value = entry.get("last") if isinstance(entry, dict) else None
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _close(a: float | None, b: float | None, rtol: float, atol: float) -> bool:
    if a is None or b is None:
        return a is b
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return a == b or abs(b - a) <= atol + rtol * abs(a)


def _config_changes(original: history.Record, again: history.Record) -> list[str]:
    """Config keys whose values differ: a reproduction ran what the original ran, or says."""

    def config(record: history.Record) -> dict[str, Any]:
        run_id = record.summary.id
        return flatten(reader.mapping(run_id, CONFIG, record.files.get(CONFIG)))

    a, b = config(original), config(again)
    return sorted(k for k in a.keys() | b.keys() if not axes.same_value(a.get(k), b.get(k)))


def summary_text(metrics: Sequence[Metric]) -> list[list[str]]:
    """Rows for the table `reproduce` prints: metric, original, again, verdict."""

    def shown(value: float | None) -> str:
        return "(absent)" if value is None else f"{value:.6g}"

    return [
        [m.name, shown(m.original), shown(m.again), "same" if m.matches else "DIFFERS"]
        for m in metrics
    ]
