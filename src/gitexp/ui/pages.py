"""What each page shows, gathered from the repository by the same doors the CLI uses: the
runs table of `gitexp log` (table.select), one record of `gitexp show` (history.load),
`compare`'s statistics and `diff`'s axes (review.report), `verify`'s verdicts, `plot`'s
curves. Nothing here formats HTML: the templates do, escaping every value.

Every function takes a Workspace opened read-only by the caller (`gitexp ui` commits nothing,
not even a run a crash left behind).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import urlencode

from gitexp import axes, catalog, diff, history, reader, render, verify
from gitexp.catalog import RunSummary
from gitexp.comparison import plot, table
from gitexp.comparison.table import Key
from gitexp.errors import GitexpError, Unreadable
from gitexp.listing import column_cell
from gitexp.record import (
    ARTIFACTS,
    CODE,
    CONFIG,
    DATA,
    DIFF,
    ENV,
    INVALID,
    OUTPUT,
    SEEDS,
    shown_by_default,
)
from gitexp.review import report as reporting
from gitexp.ui.charts import POINTS, Chart, chart
from gitexp.ui.html import visible
from gitexp.workspace import Workspace

PAGE_SIZE = 200  # rows of the runs table per page: verifying and drawing stay quick
MAX_CONFIG_COLUMNS = 8  # config keys that vary among the listed runs, shown as columns
MAX_METRIC_COLUMNS = 6
MAX_CHARTS = 24  # per page: a run that logged more metrics lists the rest by name
MAX_CURVES = 40  # per chart: past it no one can tell the curves apart, and the page grows
TEXT_SHOWN = 512 * 1024  # of a long output.log or diff, the end is shown (it is where errors are)
_FIELDS = ("id", "name", "status", "started", "duration", "tags")


# --- verdicts ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Verdict:
    """What `gitexp verify` says of a run, as a badge: `ok` says who signed it."""

    status: str  # verify's status, or "running" for a run with no record yet
    detail: str

    @property
    def ok(self) -> bool:
        return self.status == verify.OK

    @property
    def word(self) -> str:
        return "verified" if self.ok else self.status


def verdicts(ws: Workspace, runs: Sequence[RunSummary]) -> dict[str, Verdict]:
    """Each run's verdict; runs still training have none yet."""
    recorded = [run.id for run in runs if run.status not in ("running", INVALID)]
    found = {
        check.run_id: Verdict(check.status, check.detail or check.signer)
        for check in (verify.verify(ws, recorded).checks if recorded else ())
    }
    for run in runs:
        if run.id not in found:
            unread = run.status == INVALID
            found[run.id] = Verdict(
                "unreadable" if unread else "running",
                run.problem or "" if unread else "not recorded yet: it is signed when it ends",
            )
    return found


# --- the runs table ----------------------------------------------------------------------------


@dataclass(frozen=True)
class TableQuery:
    """The runs table's state, as its URL carries it: `gitexp log`'s filters and sort."""

    where: tuple[str, ...] = ()
    statuses: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    name: str = ""
    sort: tuple[str, ...] = ()
    columns: str = ""  # as `log -c` takes them: config.lr,summary.loss.last
    archived: bool = False
    page: int = 1

    def url(self, **changes: Any) -> str:
        """The query string of this state with `changes`; `?` alone for the plain table."""
        state = replace(self, **changes)
        pairs: list[tuple[str, str]] = [("where", w) for w in state.where]
        pairs += [("status", s) for s in state.statuses] + [("tag", t) for t in state.tags]
        pairs += [("name", state.name)] if state.name else []
        pairs += [("sort", s) for s in state.sort]
        pairs += [("columns", state.columns)] if state.columns else []
        pairs += [("all", "1")] if state.archived else []
        pairs += [("page", str(state.page))] if state.page > 1 else []
        return "?" + urlencode(pairs)

    def keeping(self, condition: str) -> str:
        """This state's query string with one more condition (none twice), from page 1."""
        if condition in self.where:
            return self.url(page=1)
        return self.url(where=(*self.where, condition), page=1)


@dataclass(frozen=True)
class Cell:
    text: str
    numeric: bool = False
    filter: str | None = None  # the condition that keeps runs with this value


@dataclass(frozen=True)
class Column:
    key: str  # as `--sort` and `--where` name it
    label: str  # as the heading shows it: `lr`, `loss` (`gitexp log`'s words)
    sort_url: str  # sorts by it; descending when it is sorted ascending now
    sorted: str = ""  # "asc", "desc" or ""


def _label(key: Key) -> str:
    if key.kind == "config":
        return key.name.removeprefix("argv.") if key.name != "argv._" else "script"
    if key.kind == "metric":
        return key.name if key.aggregate == "last" else f"{key.name}.{key.aggregate}"
    return key.name


@dataclass(frozen=True)
class TableRow:
    run: RunSummary
    cells: tuple[Cell, ...]
    verdict: Verdict


@dataclass(frozen=True)
class RunsPage:
    query: TableQuery
    columns: tuple[Column, ...] = ()
    rows: tuple[TableRow, ...] = ()
    total: int = 0
    pages: int = 1
    error: str | None = None
    unrecorded: int = 0  # runs that ended without being recorded: `gitexp recover`
    statuses: tuple[str, ...] = table.STATUSES


def _where_value(value: Any) -> str | None:
    """A value as a `--where` condition writes it, so that it keeps exactly that value."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else None
    if isinstance(value, str) and "\n" not in value:
        return f"'{value}'"  # quoted: text even when it reads as a number
    return None


def _default_keys(runs: Sequence[RunSummary], named: Sequence[Key]) -> list[Key]:
    """log's columns, then the config keys that vary among `runs` or that a filter or the
    sort names (filtered to one lr, the table still shows lr), then the metrics most of them
    logged: a sweep's table shows what was swept and what came of it."""
    keys = [Key("field", name) for name in _FIELDS]
    configs = [run.config for run in runs]
    names = sorted({k for config in configs for k in config})
    varying = [k for k in names if _varies(configs, k)]
    chosen = [key.name for key in named if key.kind == "config"]
    varying = list(dict.fromkeys([*chosen, *varying]))
    keys += [Key("config", k) for k in sorted(varying[:MAX_CONFIG_COLUMNS])]
    counts: dict[str, int] = {}
    for run in runs:
        for name in run.summary:
            if shown_by_default(name):
                counts[name] = counts.get(name, 0) + 1
    common = sorted(counts, key=lambda name: (-counts[name], name))[:MAX_METRIC_COLUMNS]
    return keys + [Key("metric", name, "last") for name in sorted(common)]


def _varies(configs: Sequence[Mapping[str, Any]], key: str) -> bool:
    """Whether `key` has two values among `configs` (1 and 1.0 and true are three); stops at
    the second, so 10,000 runs of one sweep cost one pass per key."""
    seen = None
    for config in configs:
        value = config.get(key)
        plain = (type(value).__name__, value) if isinstance(value, (str, int, float, bool)) \
            or value is None else json.dumps(value, sort_keys=True, default=str)  # fmt: skip
        if seen is None:
            seen = plain
        elif plain != seen:
            return True
    return False


def runs_page(ws: Workspace, query: TableQuery) -> RunsPage:
    """The runs table: `gitexp log`'s rows for `query`, a page of them, each verified."""
    try:
        where, order = table.parse_where(query.where), table.parse_sort(query.sort)
        chosen = table.columns([query.columns]) if query.columns.strip() else None
        found = table.select(ws, where, order, None, query.archived, None, True,
                             query.statuses, query.tags, query.name or None)  # fmt: skip
        if chosen is not None:
            table.check_known("--columns", chosen, found)
    except GitexpError as e:
        return RunsPage(query, error=str(e))
    named = [c.key for c in where.conditions] + [s.key for s in order]
    keys = chosen if chosen is not None else _default_keys(found, named)
    if Key("field", "id") not in keys:
        keys.insert(0, Key("field", "id"))
    pages = max(1, math.ceil(len(found) / PAGE_SIZE))
    page = min(max(query.page, 1), pages)
    shown = found[(page - 1) * PAGE_SIZE : page * PAGE_SIZE]
    judged = verdicts(ws, shown)
    sorting = {s.key.text: "desc" if s.descending else "asc" for s in order[:1]}
    columns = tuple(
        Column(key.text, _label(key),
               query.url(sort=(("-" if sorting.get(key.text) == "asc" else "") + key.text,),
                         page=1), sorting.get(key.text, ""))
        for key in keys
    )  # fmt: skip
    rows = tuple(TableRow(run, tuple(_cell(key, run) for key in keys), judged[run.id])
                 for run in shown)  # fmt: skip
    return RunsPage(query, columns, rows, len(found), pages, None,
                    len(history.unrecorded(ws)))  # fmt: skip


def _cell(key: Key, run: RunSummary) -> Cell:
    value = key.value(run)
    text = column_cell(key, run)
    numeric = isinstance(value, (int, float)) and not isinstance(value, bool)
    if key.kind == "config" or (key.kind == "field" and key.name in ("name", "status")):
        written = _where_value(value)
        return Cell(text, numeric, f"{key.text}={written}" if written is not None else None)
    return Cell(text, numeric)


# --- one run -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Pin:
    path: str
    md5: str
    size: str
    detail: str  # nfiles and where the pointer came from; an artifact's role and step
    made_by: str | None = None  # the run whose artifact this is: lineage


@dataclass(frozen=True)
class RunPage:
    run: RunSummary
    verdict: Verdict
    overview: tuple[tuple[str, str], ...]
    links: tuple[tuple[str, tuple[str, ...]], ...]  # (relation, run ids): lineage and replays
    texts: Mapping[str, str]  # config, code, env, seeds: each file as committed
    diff: tuple[tuple[str, str], ...]  # the code diff: (line class, line)
    diff_cut: int  # characters of the diff left out, from its start
    output: str
    output_cut: int
    data: tuple[Pin, ...]
    artifacts: tuple[Pin, ...]
    pins_problem: str | None  # why the record reader refused its data or artifacts
    metrics: tuple[tuple[str, str, str, str, str], ...]  # name, last, min, max, steps
    charts: tuple[Chart, ...]
    system_charts: tuple[Chart, ...]  # the machine's load beside it, by seconds since start
    more_metrics: tuple[str, ...] = ()  # logged, but past MAX_CHARTS


def _tail(data: bytes | None) -> tuple[str, int]:
    text = (data or b"").decode(errors="replace")
    cut = max(len(text) - TEXT_SHOWN, 0)
    return visible(text[cut:]), cut


def diff_lines(text: str) -> tuple[tuple[str, str], ...]:
    """A unified diff's lines, each with the class a page colours it by (as git does)."""
    lines = text.splitlines()
    kinds = render.patch_kinds([line.encode() for line in lines])
    return tuple(zip(kinds, lines, strict=True))


def _pins(record: history.Record, name: str, makers: Mapping[str, str]
          ) -> tuple[tuple[Pin, ...], str | None]:  # fmt: skip
    """The datasets (data.yaml) or artifacts (artifacts.yaml) of a record, read by the record
    reader; none, and why, when it refuses them."""
    try:
        found = reader.pins(record.summary.id, name, record.files.get(name))
    except Unreadable as e:
        return (), visible(str(e))
    pins = []
    for pin in found:
        item = pin.entry
        size = item.get("size")
        details = [f"{item.get('nfiles')} files" if item.get("nfiles") else "",
                   visible(item.get("source") or item.get("role") or ""),
                   f"step {item['step']}" if item.get("step") is not None else ""]  # fmt: skip
        pins.append(Pin(visible(pin.path), pin.md5, _size(size) if isinstance(size, int) else "",
                        ", ".join(d for d in details if d), makers.get(pin.md5)))  # fmt: skip
    return tuple(pins), None


def _size(n: int) -> str:
    amount = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if amount < 1024 or unit == "GiB":
            return f"{amount:.0f} {unit}" if unit == "B" else f"{amount:.1f} {unit}"
        amount /= 1024
    return f"{n} B"  # pragma: no cover - the loop returns


def _part(view: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    """One parsed file of a record; empty when absent or not a mapping."""
    found = view.get(name)
    return found if isinstance(found, Mapping) else {}


_LINKED = ("run", "reproduces", "rerun of", "explains", "made from", "used by")  # as links


def _overview(record: history.Record, view: Mapping[str, Any]) -> list[tuple[str, str]]:
    """`gitexp show`'s head, less what the page links to, and the code the run ran."""
    code = _part(view, "code")
    rows = [(label, value) for label, value in render.record_rows(record, view)
            if label not in _LINKED]  # fmt: skip
    rows += [
        ("code commit", code.get("commit")),
        ("branch", code.get("branch")),
        ("snapshot", code.get("snapshot")),
        ("uncommitted changes", "yes" if code.get("dirty") else "no" if code else None),
    ]
    return [(label, visible(value)) for label, value in rows if value not in (None, "", [])]


def run_page(ws: Workspace, ref: str, verdict: Verdict | None = None) -> RunPage:
    """Everything `gitexp show` shows of one run, with its curves; `verify`'s verdict on it
    is found unless given."""
    record = history.load(ws, ref)
    run = record.summary
    view = record.parsed()
    info = _part(view, "run")
    links = [
        ("made from", run.inputs),
        ("used by", record.used_by),
        *((label, (str(info[key]),)) for key, label in
          (("reproduces", "reproduces"), ("rerun_of", "rerun of"))
          if isinstance(info.get(key), str)),
    ]  # fmt: skip
    explains = info.get("explains")
    if isinstance(explains, str) and ".." in explains:
        links.append(("explains", tuple(explains.split("..", 1))))
    makers = catalog.artifact_makers(ws)
    data, data_problem = _pins(record, DATA, makers)
    artifacts, artifacts_problem = _pins(record, ARTIFACTS, {})
    summary = run.summary
    names = [name for name in summary if isinstance(summary.get(name), Mapping)]
    ordered = sorted(names, key=lambda n: (not shown_by_default(n), n))
    drawn = ordered[:MAX_CHARTS]
    figures = plot.run_figures(record, drawn, POINTS)
    diff_text, diff_cut = _tail(record.files.get(DIFF))
    output, output_cut = _tail(record.files.get(OUTPUT))
    metric_rows = tuple(
        (visible(name), *(visible(summary[name].get(agg)) for agg in ("last", "min", "max")),
         visible(summary[name].get("count") or summary[name].get("last_step")))
        for name in ordered
    )  # fmt: skip
    texts = {name: visible((record.files.get(file) or b"").decode(errors="replace"))
             for name, file in (("config", CONFIG), ("code", CODE), ("env", ENV),
                                ("seeds", SEEDS))}  # fmt: skip
    return RunPage(
        run=run,
        verdict=verdict or verdicts(ws, [run])[run.id],
        overview=tuple(_overview(record, view)),
        links=tuple((label, ids) for label, ids in links if ids),
        texts=texts,
        diff=diff_lines(diff_text),
        diff_cut=diff_cut,
        output=output,
        output_cut=output_cut,
        data=data,
        artifacts=artifacts,
        pins_problem=data_problem or artifacts_problem,
        metrics=metric_rows,  # type: ignore[arg-type]
        charts=tuple(chart(fig) for fig in figures if shown_by_default(fig.metric)),
        system_charts=tuple(
            chart(fig, xlabel="seconds since start")
            for fig in figures
            if not shown_by_default(fig.metric)
        ),
        more_metrics=tuple(ordered[MAX_CHARTS:]),
    )


# --- comparing runs ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Axes:
    """`gitexp diff`'s verdict on two runs: the axes, and its diff when they are one."""

    a: str
    b: str
    axes: tuple[str, ...]
    ignored: tuple[str, ...]
    neighbours: tuple[tuple[str, str], ...]  # (run id, axis): the single-axis comparisons
    patches: tuple[tuple[str, str], ...]  # the diff's lines, when the runs differ on ≤ 1 axis
    unseeded: bool

    @property
    def confounded(self) -> bool:
        return len(self.axes) > 1


@dataclass(frozen=True)
class ComparePage:
    report: reporting.Report
    charts: tuple[Chart, ...]
    axes: Axes | None  # for two rows (two runs, or two seed groups)
    verdicts: Mapping[str, Verdict]
    header: tuple[str, ...]  # compare's table as its terminal view words it, less the row name
    cells: tuple[tuple[str, ...], ...]
    notes: tuple[str, ...]
    legend: tuple[str, ...]  # compare's words under its table, a line each
    warnings: tuple[str, ...] = field(default=())


def one_axis(ws: Workspace, a: str, b: str, grouped: bool = False) -> Axes:
    """What `gitexp diff A B` decides, and the diff it prints when it does not refuse. Between
    seed groups (`grouped`) the seeds differ by design: they are no axis of the comparison."""
    found = diff.compare(ws, a, b)
    counted = [c for c in found.axes if not (grouped and c.axis == axes.SEED_AXIS)]
    lines: tuple[tuple[str, str], ...] = ()
    if len(counted) <= 1:
        text = b"".join(p.data for p in diff.patches(ws, found, counted))
        lines = diff_lines(visible(text[:TEXT_SHOWN].decode(errors="replace")))
    return Axes(
        a, b,
        tuple(visible(c.axis) for c in counted),
        tuple(visible(c.axis) for c in found.ignored),
        tuple((n.run_id, visible(n.axis)) for n in found.neighbours) if len(counted) > 1 else (),
        lines,
        found.unseeded,
    )  # fmt: skip


def compare_page(
    ws: Workspace,
    refs: Sequence[str],
    metrics: Sequence[str] = (),
    baseline: str | None = None,
    where: Sequence[str] = (),
    published: bool = False,
    progress: catalog.Progress | None = None,
) -> ComparePage:
    """`refs` (and the runs `where` keeps) side by side: their curves (seed groups as bands),
    `compare`'s table against the baseline, each row's axes, and for two rows `diff`'s
    verdict. As `gitexp report` chooses and reads them: `published` as it does too."""
    refs = list(dict.fromkeys(refs))  # a run named twice is compared once
    found = reporting.report(ws, refs, where, baseline, metrics, None, None, progress, published)
    ids = [run_id for row in found.table.rows for run_id in row.run_ids]
    groups = [row.run_ids for row in found.table.rows]  # compare's seed groups: plot's too
    charts, warnings = [], []
    names = list(dict.fromkeys(m.name for m in found.table.metrics))
    for name in names[:MAX_CHARTS]:
        if len(groups) > MAX_CURVES:
            warnings.append(f"{len(groups)} curves are too many to draw on one chart (at most "
                            f"{MAX_CURVES}): compare fewer runs to see them")  # fmt: skip
            break
        try:
            fig = plot.figure(ws, ids, name, points=POINTS, groups=groups)
        except GitexpError as e:
            warnings.append(visible(str(e)))
            continue
        charts.append(chart(fig))
    rows = found.table.rows
    grouped = any(len(row.run_ids) > 1 for row in rows)
    pair = (one_axis(ws, rows[0].run_ids[0], rows[1].run_ids[0], grouped)
            if len(rows) == 2 else None)  # fmt: skip
    judged = {run_id: Verdict(t.check.status, t.check.detail or t.check.signer)
              for run_id, t in found.runs.items()}  # fmt: skip
    header, cells = render.compare_cells(found.table, with_changes=len(rows) > 1)
    legend = render.compare_legend(found.table).splitlines() if len(rows) > 1 else []
    return ComparePage(found, tuple(charts), pair, judged, tuple(header[1:]),
                       tuple(tuple(row[1:]) for row in cells),
                       tuple(render.compare_notes(found.table)), tuple(legend), tuple(warnings))
