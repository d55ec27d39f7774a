"""The runs table: columns, sort keys and filters over runs, named as a user writes them.

`gitexp log` uses it, and so can any command that picks runs (`compare --where`,
`plot --where`)::

    keys = table.columns(["config.optim.lr,summary.val/loss.min", "status"])
    where = table.parse_where(["config.optim.lr<=1e-3", "tag=best"])
    runs = table.select(ws, where, table.parse_sort(["-summary.val/acc.last"]))
    rows = [[key.value(run) for key in keys] for run in runs]

A key is one of:

- `config.KEY`: a leaf of the resolved configuration, by its dotted path;
- `summary.METRIC.AGG`, or `METRIC.AGG` for short: a metric's last, min, max, … (AGGREGATES);
- a record field (FIELDS): `status`, `name`, `started`, `duration`, `tags`, `code.branch`, ….

A condition is KEY OP VALUE with OP one of = != < <= > >=; several conditions must all
hold. VALUE is read as a number, true/false, null, or else text ('quoted' to force text).
Numbers compare as numbers, text as text (ISO dates therefore by date), tags by membership;
a run without the key has the value null: it matches `KEY=null` and `KEY!=VALUE`, and no
ordering. Every bad part is a UsageError that says which part is wrong.
"""

from __future__ import annotations

import difflib
import functools
import json
import operator
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from gitexp import catalog, history
from gitexp.catalog import RunSummary
from gitexp.errors import UsageError
from gitexp.record import INVALID
from gitexp.workspace import Workspace

# What summary.yaml holds for each metric.
AGGREGATES = ("last", "min", "max", "last_step", "min_step", "max_step", "count", "nan_count")
STATUSES = ("running", "succeeded", "failed", "interrupted", "crashed", INVALID)
_LISTS = ("tags", "command", "inputs")  # compared by membership, never ordered
_ALIASES = {"tag": "tags", "duration_s": "duration"}


def _indexed(name: str) -> Callable[[RunSummary], Any]:
    return lambda run: run.fields.get(name)


# Record fields by name, and how each is read from a listed run.
FIELDS: dict[str, Callable[[RunSummary], Any]] = {
    "id": lambda run: run.id,
    "name": lambda run: run.name,
    "status": lambda run: run.status,
    "started": lambda run: run.started or None,
    "finished": _indexed("finished"),
    "duration": lambda run: run.duration_s,
    "exit_code": lambda run: run.exit_code,
    "tags": lambda run: list(run.tags),
    "notes": lambda run: run.notes,
    "command": lambda run: list(run.command),
    "inputs": lambda run: list(run.inputs),
    "archived": lambda run: run.archived,
    "host": _indexed("host"),
    "user": _indexed("user"),
    "cwd": _indexed("cwd"),
    "code.commit": _indexed("code.commit"),
    "code.branch": _indexed("code.branch"),
    "code.snapshot": _indexed("code.snapshot"),
    "code.dirty": _indexed("code.dirty"),
}
_HINT = (
    "use config.KEY, summary.METRIC.AGG or METRIC.AGG (AGG: "
    + ", ".join(AGGREGATES)
    + "), or a field: "
    + ", ".join(FIELDS)
)


@dataclass(frozen=True)
class Key:
    """One column of the runs table: a record field, a config leaf, or a metric aggregate."""

    kind: Literal["field", "config", "metric"]
    name: str  # the field's name, the config's dotted key, or the metric's name
    aggregate: str | None = None  # for metrics: one of AGGREGATES

    @property
    def text(self) -> str:
        """The key's full name: `status`, `config.optim.lr`, `summary.val/loss.min`."""
        if self.kind == "field":
            return self.name
        if self.kind == "config":
            return f"config.{self.name}"
        return f"summary.{self.name}.{self.aggregate}"

    def value(self, run: RunSummary) -> Any:
        """The run's value, None when it has none."""
        if self.kind == "field":
            return FIELDS[self.name](run)
        if self.kind == "config":
            return _config(run).get(self.name)
        entry = run.summary.get(self.name)
        return entry.get(self.aggregate) if isinstance(entry, dict) and self.aggregate else None


def _config(run: RunSummary) -> dict[str, Any]:
    """The run's flattened config, decoded once however many keys read it."""
    return _decoded(run.config_json)


@functools.lru_cache(maxsize=1024)
def _decoded(config_json: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(config_json)
    return loaded


def parse_key(text: str) -> Key:
    """The key `text` names; UsageError when it names none."""
    name = text.strip()
    if not name:
        raise UsageError("an empty key; " + _HINT)
    name = _ALIASES.get(name, name)
    if name in FIELDS:
        return Key("field", name)
    if name.startswith("config."):
        if not name[7:]:
            raise UsageError("'config.' needs a key after it, e.g. config.optim.lr")
        return Key("config", name[7:])
    metric, dot, aggregate = name.removeprefix("summary.").rpartition(".")
    if dot and metric and aggregate in AGGREGATES:
        return Key("metric", metric, aggregate)
    if name.startswith("summary."):
        raise UsageError(
            f"{text.strip()!r} names no aggregate: write summary.METRIC.AGG with AGG one of "
            + ", ".join(AGGREGATES)
        )
    raise UsageError(f"unknown key {text.strip()!r}; " + _HINT)


def columns(texts: Iterable[str]) -> list[Key]:
    """The keys of `--columns` options, each a comma-separated list; duplicates dropped."""
    found: dict[str, Key] = {}
    for text in texts:
        for part in text.split(","):
            if part.strip():
                key = _option_key("--columns", part)
                found.setdefault(key.text, key)
    if not found:
        raise UsageError("--columns needs at least one key; " + _HINT)
    return list(found.values())


# --- sorting ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SortKey:
    key: Key
    descending: bool = False


def parse_sort(texts: Iterable[str]) -> list[SortKey]:
    """`--sort KEY` (ascending) or `--sort -KEY` (descending), first one first."""
    return [
        SortKey(_option_key("--sort", text.strip()[1:]), True)
        if text.strip().startswith("-")
        else SortKey(_option_key("--sort", text))
        for text in texts
    ]


def _option_key(option: str, text: str) -> Key:
    try:
        return parse_key(text)
    except UsageError as e:
        raise UsageError(f"{option} {text.strip()!r}: {e}") from None


def _order(value: Any) -> tuple[int, Any]:
    """Values of one column made comparable: numbers, then text, then anything else."""
    if isinstance(value, bool):
        return (1, int(value))
    if isinstance(value, (int, float)):
        return (0, value)
    if isinstance(value, str):
        return (2, value)
    return (2, str(value))


def sort_runs(runs: Sequence[RunSummary], order: Sequence[SortKey]) -> list[RunSummary]:
    """`runs` sorted by each key in turn; runs without a value come last either way, and
    ties keep their order (newest first, from the index)."""
    done = list(runs)
    for sort in reversed(order):
        valued = [(sort.key.value(run), run) for run in done]
        present = [(value, run) for value, run in valued if _present(value)]
        absent = [run for value, run in valued if not _present(value)]
        present.sort(key=lambda pair: _order(pair[0]), reverse=sort.descending)
        done = [run for _, run in present] + absent
    return done


def _present(value: Any) -> bool:
    return value is not None and value == value  # NaN is no value either


# --- filtering ----------------------------------------------------------------------------------

_OPERATORS: dict[str, Callable[[Any, Any], bool]] = {
    "=": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}
_CONDITION = re.compile(r"^(?P<key>[^<>=!]*)(?P<op><=|>=|!=|==|=|<|>)(?P<value>.*)$", re.DOTALL)


@dataclass(frozen=True)
class Condition:
    """KEY OP VALUE, as parsed from one `--where`."""

    key: Key
    op: str  # one of = != < <= > >=
    value: Any  # the value typed: number, bool, None or text
    text: str  # the value as text, unquoted: what text-valued keys compare with

    def matches(self, run: RunSummary) -> bool:
        have = self.key.value(run)
        if isinstance(have, (list, tuple)):
            hit = any(_equal(item, self.value, self.text) for item in have)
            return hit if self.op == "=" else (not hit if self.op == "!=" else False)
        if self.op in ("=", "!="):
            return _equal(have, self.value, self.text) == (self.op == "=")
        compare = _OPERATORS[self.op]
        if _number(have) and _number(self.value):
            return bool(compare(have, self.value))
        if isinstance(have, str) and self.value is not None:
            return bool(compare(have, self.text))
        return False


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _equal(have: Any, want: Any, text: str) -> bool:
    if have is None or want is None:
        return have is None and want is None
    if isinstance(have, str):
        return have == text
    if isinstance(have, bool) or isinstance(want, bool):
        return isinstance(have, bool) and isinstance(want, bool) and have == want
    return _number(have) and _number(want) and bool(have == want)


def _literal(text: str) -> tuple[Any, str]:
    """A condition's value typed, and as text."""
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return text[1:-1], text[1:-1]
    lowered = text.lower()
    if lowered in ("true", "false"):
        return lowered == "true", text
    if lowered in ("null", "none", "~"):
        return None, text
    for kind in (int, float):
        try:
            return kind(text), text
        except ValueError:
            pass
    return text, text


@dataclass(frozen=True)
class Filter:
    """Conditions that must all hold; the empty filter keeps every run."""

    conditions: tuple[Condition, ...] = ()

    def matches(self, run: RunSummary) -> bool:
        return all(condition.matches(run) for condition in self.conditions)

    def _equal_to(self, field: str) -> list[Any]:
        return [
            c.text
            for c in self.conditions
            if c.key == Key("field", field) and c.op == "=" and isinstance(c.value, str)
        ]

    def query(self) -> tuple[tuple[str, ...], tuple[str, ...], str | None]:
        """Statuses, tags and name the index can filter by first: a narrowing that never
        drops a match (`matches` still decides)."""
        statuses = self._equal_to("status")
        names = self._equal_to("name")
        return (
            tuple(statuses[:1]),
            tuple(self._equal_to("tags")),
            names[0] if names else None,
        )


def parse_condition(text: str) -> Condition:
    """One KEY OP VALUE; UsageError naming the part that is wrong."""
    where = f"--where {text!r}"
    found = _CONDITION.match(text)
    if found is None:
        raise UsageError(
            f"{where}: no comparison; write KEY OP VALUE with OP one of "
            + " ".join(_OPERATORS)
            + ", e.g. config.optim.lr<=1e-3"
        )
    op = "=" if found["op"] == "==" else found["op"]
    if not found["key"].strip():
        raise UsageError(f"{where}: no key before {op!r}; " + _HINT)
    try:
        key = parse_key(found["key"])
    except UsageError as e:
        raise UsageError(f"{where}: {e}") from None
    raw = found["value"].strip()
    if not raw:
        raise UsageError(f"{where}: no value after {found['op']!r}")
    if raw[0] in "<>=!":
        raise UsageError(f"{where}: {raw!r} is not a value; one operator per condition "
                         "(quote a value that starts with one)")  # fmt: skip
    value, as_text = _literal(raw)
    if key.kind == "field" and key.name in _LISTS and op not in ("=", "!="):
        raise UsageError(f"{where}: {key.name} can only be compared with = or !=")
    if op not in ("=", "!="):
        value, as_text = _ordered(where, key, value, as_text)
    if key == Key("field", "status") and value not in STATUSES:
        raise UsageError(f"{where}: {raw!r} is not a status; use one of " + ", ".join(STATUSES))
    return Condition(key, op, value, as_text)


_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}([ T]\d{2}(:\d{2}(:\d{2}(\.\d+)?)?)?)?Z?$")
_DATES = ("started", "finished")


def _ordered(where: str, key: Key, value: Any, text: str) -> tuple[Any, str]:
    """The value of a `<`, `<=`, `>` or `>=`: a number, or a date for started and finished
    (`2026-11-30 02:07` as `log` prints it, or ISO with a T); anything else is an error
    rather than a text comparison that silently keeps no run."""
    if key.kind == "field" and key.name in _DATES:
        if not isinstance(value, str) or not _DATE.match(text):
            raise UsageError(f"{where}: {text!r} is not a date; write 2026-11-30 or "
                             "'2026-11-30 14:05' (UTC)")  # fmt: skip
        iso = text.replace(" ", "T", 1)
        return iso, iso
    if not _number(value):
        unit = " (durations are in seconds: duration>60)" if key.name == "duration" else ""
        raise UsageError(f"{where}: {text!r} is not a number; < <= > >= compare numbers, and "
                         f"dates for started and finished{unit}")  # fmt: skip
    return value, text


def check_known(
    option: str,
    keys: Iterable[Key],
    runs: Sequence[RunSummary],
    every: Callable[[], Sequence[RunSummary]] | None = None,
) -> None:
    """UsageError when `--columns` or `--sort` name a config key or metric that none of the
    listed runs has: an empty column would hide the typo. With `every`, a key some run not
    listed has (`-n` left it out) is no typo: only those none of `every()` has are."""
    keys = list(keys)
    unknown = _unknown_keys(keys, runs) if runs else []
    if unknown and every is not None:  # read every run only on this rare path
        unknown = _unknown_keys(keys, every())
    if unknown:
        raise UsageError(f"{option} names what no run here has: {', '.join(unknown)}; "
                         "`gitexp log --json` shows the keys")  # fmt: skip


def _unknown_keys(keys: Iterable[Key], runs: Sequence[RunSummary]) -> list[str]:
    """Config keys and metrics among `keys` that no run has: a typo, most likely."""
    keys = [key for key in keys if key.kind in ("config", "metric")]
    if not keys:  # then no run need be read
        return []
    config = {key for run in runs for key in _config(run)}
    metrics = {name for run in runs for name in run.summary}
    unknown = []
    for key in keys:
        known = config if key.kind == "config" else metrics if key.kind == "metric" else None
        if known is not None and key.name not in known:
            close = difflib.get_close_matches(key.name, sorted(known), n=1)
            near = Key(key.kind, close[0], key.aggregate).text if close else None
            unknown.append(f"{key.text} (did you mean {near}?)" if near else key.text)
    return unknown


def parse_where(texts: Iterable[str]) -> Filter:
    """The filter of `--where` options: every condition must hold."""
    return Filter(tuple(parse_condition(text) for text in texts))


# --- choosing runs ------------------------------------------------------------------------------


def select(
    ws: Workspace,
    where: Filter = Filter(),
    order: Sequence[SortKey] = (),
    limit: int | None = None,
    archived: bool = False,
    progress: catalog.Progress | None = None,
    live: bool = True,
    statuses: Sequence[str] = (),
    tags: Sequence[str] = (),
    name: str | None = None,
) -> list[RunSummary]:
    """The runs that `where` keeps, sorted by `order` after newest first, at most `limit`;
    archived runs only with `archived`, runs training now with `live`. `statuses` (any
    of), `tags` (all of) and `name` filter too, as `log --status/--tag/--name` do."""
    hinted_statuses, hinted_tags, hinted_name = where.query()
    statuses = tuple(statuses) or hinted_statuses
    tags = (*tags, *hinted_tags)
    name = hinted_name if name is None else name
    simple = not where.conditions and not order  # else the limit applies after both
    found = history.runs(ws, statuses, tags, name, limit if simple else None, progress, live,
                         archived)  # fmt: skip
    if not simple:
        kept = [run for run in found if where.matches(run)]
        named = [condition.key for condition in where.conditions]
        unknown = _unknown_keys(named, found) if found and not kept else []
        if unknown:
            raise UsageError(f"--where names what no run has: {', '.join(unknown)}; "
                             "`gitexp log --json` shows the keys")  # fmt: skip
        found = sort_runs(kept, order)[:limit]
    return found
