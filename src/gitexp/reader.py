"""The one reader of run records: every command reads a record's files through it.

Records are untrusted input: they arrive by pull, bundle and pull request from people on
shared clusters. Each file is read within hard limits (bytes, YAML depth and nodes, no YAML
anchors or aliases, which gitexp never writes), typed field by field, and a metric series
is streamed, never loaded whole. A record that breaks a rule is `Unreadable`, named with
its file and the reason, and every other run still works. Paths taken from a record are
checked here before anything uses them.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

from gitexp import limits, yamlio
from gitexp.errors import Unreadable
from gitexp.ids import ID_PATTERN
from gitexp.record import (
    ANNOTATIONS,
    ARTIFACTS,
    CODE,
    DATA,
    DIFF,
    METRICS,
    OUTPUT,
    RUN,
    SCHEMA,
    STATUSES,
    Annotations,
    Note,
    RunInfo,
    redactions,
    run_dir,
)

# A YAML file of a record: an environment lists hundreds of packages, a config up to
# limits.CONFIG; far more than that is not a record gitexp wrote.
YAML_LIMITS = limits.Limits(depth=64, nodes=200_000, file_size=16 * 1024 * 1024)
# code.diff (untracked files up to snapshot.max_file_size each) and output.log.
TEXT_LIMIT = 64 * 1024 * 1024
_LIMITS = {DIFF: TEXT_LIMIT, OUTPUT: TEXT_LIMIT}
# metrics.tsv is streamed, so its size costs no memory; a row longer than this is damage.
_ROW_LIMIT = 64 * 1024
_MD5 = re.compile(r"[0-9a-f]{32}(\.dir)?")


def size_limit(name: str) -> int | None:
    """How many bytes a record file may hold; None for metrics.tsv, which is streamed."""
    return None if name == METRICS else _LIMITS.get(name, YAML_LIMITS.file_size)


def is_run_id(name: str) -> bool:
    """Whether a folder name under experiments/ is a run id, as gitexp makes them."""
    return ID_PATTERN.fullmatch(name) is not None


def check_run_id(name: str) -> str:
    if not is_run_id(name):
        raise Unreadable(f"{terminal_safe(name)!r} under experiments/ is not a run id")
    return name


def file_where(run_id: str, name: str) -> str:
    """How errors name a file of a record."""
    return f"{run_dir(run_id)}/{name}"


def load_yaml(run_id: str, name: str, data: bytes | None) -> Any:
    """A YAML file of a record, within YAML_LIMITS, as plain dicts, lists and scalars."""
    if data is None:
        return None
    return yamlio.load_bounded(
        data, file_where(run_id, name), YAML_LIMITS, Unreadable, aliases=False, malformed=Unreadable
    )


def mapping(run_id: str, name: str, data: bytes | None) -> dict[str, Any]:
    """A YAML file of a record whose top level must be a mapping (empty when absent)."""
    loaded = load_yaml(run_id, name, data)
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise Unreadable(f"{file_where(run_id, name)} must hold a mapping at its top")
    return loaded


def _text(value: Any, field: str, where: str, optional: bool = True) -> str | None:
    if value is None and optional:
        return None
    if not isinstance(value, str):
        raise Unreadable(f"{where}: `{field}` must be text, not {_kind(value)}")
    return value


def _texts(value: Any, field: str, where: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise Unreadable(f"{where}: `{field}` must be a list of text")
    return tuple(value)


def _number(value: Any, field: str, where: str, whole: bool = False) -> Any:
    kinds = (int,) if whole else (int, float)
    if value is None or (isinstance(value, kinds) and not isinstance(value, bool)):
        return value
    raise Unreadable(f"{where}: `{field}` must be a number, not {_kind(value)}")


def _kind(value: Any) -> str:
    return "nothing" if value is None else type(value).__name__


def run_info(run_id: str, data: bytes | None) -> RunInfo:
    """run.yaml, typed: every field the kind RunInfo says, or Unreadable."""
    where = file_where(run_id, RUN)
    found = mapping(run_id, RUN, data)
    if not found:
        raise Unreadable(f"{where} is missing or empty")
    schema = _number(found.get("schema", SCHEMA), "schema", where, whole=True)
    if schema is None or schema > SCHEMA:
        raise Unreadable(f"{where} has schema {schema}, newer than this gitexp reads; upgrade")
    status = found.get("status")
    if status not in STATUSES:
        raise Unreadable(f"{where}: `status` {terminal_safe(str(status))!r} is not a status")
    texts = {
        key: _text(found.get(key), key, where)
        for key in (
            "name",
            "notes",
            "signal",
            "error",
            "finished",
            "reproduces",
            "rerun_of",
            "explains",
            "variant",
        )
    }
    required = {
        key: _text(found.get(key, ""), key, where, optional=False)
        for key in ("started", "cwd", "host", "user", "gitexp_version")
    }
    return RunInfo(
        id=run_id,
        command=_texts(found.get("command"), "command", where),
        tags=_texts(found.get("tags"), "tags", where),
        inputs=_texts(found.get("inputs"), "inputs", where),
        status=status,
        exit_code=_number(found.get("exit_code"), "exit_code", where, whole=True),
        duration_s=_number(found.get("duration_s"), "duration_s", where),
        schema=schema,
        redacted=redactions(found.get("redacted")),
        **texts,  # type: ignore[arg-type]
        **required,  # type: ignore[arg-type]
    )


def annotated(run_id: str, data: bytes | None) -> Annotations:
    """annotations.yaml, typed."""
    where = file_where(run_id, ANNOTATIONS)
    found = mapping(run_id, ANNOTATIONS, data)
    notes = found.get("notes") or []
    if not isinstance(notes, list) or not all(isinstance(n, dict) for n in notes):
        raise Unreadable(f"{where}: `notes` must be a list of notes")
    archived = found.get("archived") or False
    if not isinstance(archived, bool):
        raise Unreadable(f"{where}: `archived` must be true or false")
    return Annotations(
        _texts(found.get("tags"), "tags", where),
        tuple(
            Note(*(str(_text(n.get(k, ""), k, where, False)) for k in ("text", "author", "date")))
            for n in notes
        ),
        archived,
    )


def summary(run_id: str, name: str, data: bytes | None) -> dict[str, dict[str, Any]]:
    """summary.yaml: each metric's last, min and max (numbers) with their steps."""
    where = file_where(run_id, name)
    found = mapping(run_id, name, data)
    for metric, entry in found.items():
        if not isinstance(entry, dict):
            raise Unreadable(f"{where}: metric {terminal_safe(metric)!r} must be a mapping")
        for field, value in entry.items():
            _number(value, f"{metric}.{field}", where)
    return found


def contained(path: Any, where: str) -> str:
    """A path from a record, checked to stay inside the repository: relative, no `..`."""
    if not isinstance(path, str) or not path or "\0" in path or "\\" in path:
        raise Unreadable(f"{where}: {terminal_safe(repr(path))} is not a path in the repository")
    pure = PurePosixPath(path)
    if pure.is_absolute() or ".." in pure.parts or pure.parts[:1] == (".git",):
        raise Unreadable(
            f"{where}: the path {terminal_safe(path)!r} leads outside the repository's working tree"
        )
    return pure.as_posix()


@dataclass(frozen=True)
class Pinned:
    """A dataset or artifact a record names: where it goes and its DVC md5."""

    path: str
    md5: str
    entry: Mapping[str, Any]  # the whole entry as recorded


def pins(run_id: str, name: str, data: bytes | None) -> list[Pinned]:
    """The datasets (data.yaml) or artifacts (artifacts.yaml) a record names, paths checked."""
    key = {DATA: "datasets", ARTIFACTS: "artifacts"}[name]
    where = file_where(run_id, name)
    entries = mapping(run_id, name, data).get(key) or []
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise Unreadable(f"{where}: `{key}` must be a list of entries")
    found = []
    for entry in entries:
        md5 = entry.get("md5")
        if not isinstance(md5, str) or not _MD5.fullmatch(md5):
            raise Unreadable(f"{where}: {terminal_safe(repr(md5))} is not a DVC md5")
        found.append(Pinned(contained(entry.get("path"), where), md5, entry))
    return found


def snapshot_of(run_id: str, data: bytes | None) -> str | None:
    """The snapshot commit code.yaml names."""
    snapshot = mapping(run_id, CODE, data).get("snapshot")
    if snapshot is not None and not (
        isinstance(snapshot, str) and re.fullmatch(r"[0-9a-f]{40}([0-9a-f]{24})?", snapshot)
    ):
        raise Unreadable(f"{file_where(run_id, CODE)}: `snapshot` is not a commit id")
    return snapshot


@dataclass(frozen=True)
class MetricRow:
    step: int
    time: float
    name: str
    value: float


def metric_rows(run_id: str, lines: Iterable[bytes]) -> Iterator[MetricRow]:
    """metrics.tsv row by row, as it streams: memory stays flat however long the run was."""
    where = file_where(run_id, METRICS)
    rows = iter(lines)
    next(rows, None)  # the header
    for number, line in enumerate(rows, 2):
        if len(line) > _ROW_LIMIT:
            raise Unreadable(f"{where}: line {number} is longer than {_ROW_LIMIT} bytes")
        parts = line.rstrip(b"\n").split(b"\t")
        try:
            step, moment, name, value = parts
            yield MetricRow(int(step), float(moment), name.decode(), float(value))
        except (ValueError, UnicodeDecodeError):
            raise Unreadable(f"{where}: line {number} is not `step, time, name, value`") from None


# C0 and C1 control characters, DEL, and the Unicode ones that reorder or hide text; a
# newline and a tab stay, where the caller allows them.
# Lone surrogates too: a file name that is not UTF-8 carries its bytes as surrogates, and
# printed as they are, they would reach the terminal raw (0x9b is an 8-bit CSI).
_CONTROL = re.compile(
    "[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2066-\u2069\ufeff\ud800-\udfff]"
)
_CONTROL_AND_LINES = re.compile(
    "[\x00-\x1f\x7f-\x9f\u2028\u2029\u200b-\u200f\u202a-\u202e\u2066-\u2069\ufeff\ud800-\udfff]"
)


def _shown(match: re.Match[str]) -> str:
    code = ord(match.group())
    if 0xDC80 <= code <= 0xDCFF:  # a byte that was not UTF-8, as surrogateescape keeps it
        return f"\\x{code - 0xDC00:02x}"
    return repr(match.group())[1:-1]


def terminal_safe(text: str, lines: bool = False) -> str:
    """`text` with control characters and escape sequences shown, not obeyed: `\\x1b` for
    ESC. A record's words can then never move the cursor, recolour or retitle a terminal,
    nor forge a line of output. With `lines`, newlines and tabs are kept (a log, a diff)."""
    if text.isprintable():  # no control or format character: the common case, checked in C
        return text
    pattern = _CONTROL if lines else _CONTROL_AND_LINES
    return pattern.sub(_shown, text)


def finite_or_text(value: float) -> float | str:
    """A metric value JSON can hold: NaN and infinities as their names."""
    return value if math.isfinite(value) else repr(value)
