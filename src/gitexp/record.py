"""What a run record holds, and its files under `experiments/<id>/`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime
from typing import Any, Literal

from gitexp import yamlio

SCHEMA = 1
EXPERIMENTS = "experiments"

Status = Literal["running", "succeeded", "failed", "interrupted", "crashed"]
STATUSES: tuple[Status, ...] = ("running", "succeeded", "failed", "interrupted", "crashed")
INVALID = "invalid"  # the status listings show for a record whose files cannot be read

# The files of a record, in the order `show` presents them. All but annotations.yaml are
# immutable once committed.
RUN, CONFIG, CODE, DIFF, ENV, SEEDS = (
    "run.yaml",
    "config.yaml",
    "code.yaml",
    "code.diff",
    "env.yaml",
    "seeds.yaml",
)
DATA, ARTIFACTS, METRICS, SUMMARY, OUTPUT, ANNOTATIONS = (
    "data.yaml",
    "artifacts.yaml",
    "metrics.tsv",
    "summary.yaml",
    "output.log",
    "annotations.yaml",
)
# Files a live run's folder may hold besides the record's own.
ENV_PROBE = "env.probe.yaml"  # the environment as `gitexp run` read it from outside
FROM_CODE = "from-code.yaml"  # name, tags, notes and error given to gitexp.init under `run`
HEARTBEAT = "heartbeat"  # touched while the run lives: its mtime is the last sign of life
# Metrics `gitexp run` samples beside the command (system.py): in the record, never a
# column or an outcome unless asked for by name.
SYSTEM_METRICS = "system/"


def shown_by_default(metric: str) -> bool:
    return not metric.startswith(SYSTEM_METRICS)


RECORD_FILES = (RUN, CONFIG, CODE, DIFF, ENV, SEEDS, DATA, ARTIFACTS, METRICS, SUMMARY, OUTPUT)


def run_dir(run_id: str) -> str:
    """The record's folder on the runs branch."""
    return f"{EXPERIMENTS}/{run_id}"


def utc_iso(moment: datetime) -> str:
    """ISO-8601 in UTC to the millisecond: `2026-11-22T13:03:51.123Z`."""
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


@dataclass(frozen=True)
class LeftOut:
    """A working-tree file kept out of the code snapshot, and why."""

    path: str
    reason: str


@dataclass(frozen=True)
class Redaction:
    """A value kept out of a record: where it was and why, never what it was."""

    where: str  # command | config
    name: str  # the option (`--auth`), word (`argument 3`) or dotted key (`wandb.token`)
    reason: str


@dataclass(frozen=True)
class CodeState:
    """The code a run ran: HEAD at launch plus the exact working tree (code.yaml)."""

    commit: str
    branch: str | None
    snapshot: str  # the commit holding the exact working tree; HEAD itself when clean
    dirty: bool
    remotes: Mapping[str, str] = field(default_factory=dict)
    submodules: Mapping[str, str] = field(default_factory=dict)  # path → checked-out commit
    # path → git's blob id of the submodule's part of code.diff, for each submodule whose
    # working tree differs from its commit: two runs with other submodule edits differ here.
    dirty_submodules: Mapping[str, str] = field(default_factory=dict)
    config_files: tuple[str, ...] = ()  # their changes are config, not code (DESIGN.md §4)
    left_out: tuple[LeftOut, ...] = ()
    shallow: bool = False
    # A script the command ran from outside the repository → sha256 of its bytes: its code is
    # not in the snapshot, but a change to it is still a change of code.
    not_captured: Mapping[str, str] = field(default_factory=dict)

    def to_yaml(self) -> bytes:
        data = asdict(self)
        if self.not_captured:
            data["not_captured"] = dict(sorted(self.not_captured.items()))
        else:
            del data["not_captured"]
        data["config_files"] = list(self.config_files)
        data["left_out"] = [asdict(item) for item in self.left_out]
        data["remotes"] = dict(sorted(self.remotes.items()))
        data["submodules"] = dict(sorted(self.submodules.items()))
        data["dirty_submodules"] = dict(sorted(self.dirty_submodules.items()))
        return yamlio.dump(data)


@dataclass(frozen=True)
class RunInfo:
    """Identity and outcome of a run (run.yaml)."""

    id: str
    command: tuple[str, ...]
    cwd: str
    started: str
    host: str
    user: str
    gitexp_version: str
    name: str | None = None
    notes: str | None = None
    tags: tuple[str, ...] = ()
    status: Status = "running"
    exit_code: int | None = None
    signal: str | None = None
    error: str | None = None  # the exception that ended a run using the Python API
    finished: str | None = None
    duration_s: float | None = None
    reproduces: str | None = None
    rerun_of: str | None = None  # the run this one re-ran with a change (`gitexp rerun`)
    explains: str | None = None  # `A..B`: the explanation this run is a variant of
    variant: str | None = None  # which of its planned runs (`config.lr#2`)
    inputs: tuple[str, ...] = ()
    schema: int = SCHEMA
    redacted: tuple[Redaction, ...] = ()  # secrets kept out of `command` and config.yaml
    hydra: Mapping[str, Any] | None = None  # a Hydra job's overrides and number

    def finish(
        self,
        status: Status,
        finished: datetime,
        started: datetime,
        exit_code: int | None = None,
        signal: str | None = None,
        error: str | None = None,
    ) -> RunInfo:
        """This run, ended."""
        return replace(
            self,
            status=status,
            exit_code=exit_code,
            signal=signal,
            error=error or self.error,
            finished=utc_iso(finished),
            duration_s=round((finished - started).total_seconds(), 3),
        )

    def to_yaml(self) -> bytes:
        order = [
            "schema",
            "id",
            "name",
            "status",
            "exit_code",
            "signal",
            "error",
            "started",
            "finished",
            "duration_s",
            "command",
            "cwd",
            "tags",
            "notes",
            "host",
            "user",
            "gitexp_version",
            "reproduces",
            "inputs",
        ]
        data = asdict(self)
        data["command"] = list(self.command)
        data["tags"] = list(self.tags)
        data["inputs"] = list(self.inputs)
        ordered = {key: data[key] for key in order}
        if self.rerun_of:  # written only when there is something to say
            ordered["rerun_of"] = self.rerun_of
        if self.explains:
            ordered["explains"] = self.explains
            ordered["variant"] = self.variant
        if self.redacted:  # written only when there is something to say
            ordered["redacted"] = [asdict(item) for item in self.redacted]
        if self.hydra:
            ordered["hydra"] = dict(self.hydra)
        return yamlio.dump(ordered)

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> RunInfo:
        known = set(cls.__dataclass_fields__)
        values = {k: v for k, v in data.items() if k in known}
        for key in ("command", "tags", "inputs"):
            values[key] = tuple(values.get(key) or ())
        values["redacted"] = redactions(values.get("redacted"))
        return cls(**values)


def redactions(items: Any) -> tuple[Redaction, ...]:
    """The `redacted:` list of run.yaml (where, name, reason), well-formed entries only."""
    if not isinstance(items, list):
        return ()
    return tuple(
        Redaction(item["where"], item["name"], item["reason"])
        for item in items
        if isinstance(item, Mapping)
        and all(isinstance(item.get(k), str) for k in ("where", "name", "reason"))
    )


@dataclass(frozen=True)
class Note:
    """A note added to a run after it ended."""

    text: str
    author: str
    date: str  # ISO-8601 UTC


@dataclass(frozen=True)
class Annotations:
    """What annotations.yaml holds: tags and notes added later, the only mutable file."""

    tags: tuple[str, ...] = ()
    notes: tuple[Note, ...] = ()
    archived: bool = False  # hidden from listings (`gitexp archive`); the record stays

    def to_yaml(self) -> bytes:
        found: dict[str, object] = {
            "tags": list(self.tags),
            "notes": [{"text": n.text, "author": n.author, "date": n.date} for n in self.notes],
        }
        if self.archived:  # written only when set: older annotations keep their bytes
            found["archived"] = True
        return yamlio.dump(found)
