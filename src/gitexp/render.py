"""How runs look on a terminal (rich) and to scripts (JSON). Only this module and cli use rich."""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from rich.cells import cell_len
from rich.color import ColorSystem
from rich.console import Console, Group, RenderableType
from rich.markup import escape
from rich.panel import Panel
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.style import Style
from rich.syntax import Syntax
from rich.table import Table
from rich.text import Text

from gitexp import yamlio
from gitexp.catalog import RunSummary
from gitexp.history import Record

_STATUS_STYLE = {
    "succeeded": "green",
    "failed": "red",
    "crashed": "bold red",
    "interrupted": "yellow",
    "running": "cyan",
    "invalid": "bold magenta",
}
_LOG_METRICS = 3
# rich's names for what a terminal can show (Console.color_system).
_COLOR_SYSTEMS = {
    "standard": ColorSystem.STANDARD,
    "256": ColorSystem.EIGHT_BIT,
    "truecolor": ColorSystem.TRUECOLOR,
    "windows": ColorSystem.WINDOWS,
}
_OUTPUT_TAIL_LINES = 20


def _json_safe(value: Any) -> Any:
    """NaN and infinities as strings: JSON has no spelling for them."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, Mapping):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def as_json(value: Any) -> str:
    return json.dumps(_json_safe(value), indent=2, sort_keys=False)


def runs_json(runs: Sequence[RunSummary]) -> str:
    return as_json([run.as_dict() for run in runs])


def duration(seconds: float | None) -> str:
    """`0.4s`, `12s`, `3m 05s`, `2h 07m`."""
    if seconds is None:
        return ""
    if seconds < 10:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes == 0:
        return f"{secs}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m" if hours else f"{minutes}m {secs:02d}s"


def started(text: str) -> str:
    """`2026-11-22T13:03:51.123Z` → `2026-11-22 13:03` (UTC, as recorded)."""
    return text[:16].replace("T", " ")


def _number(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "" if value is None else str(value)


def _common_metrics(runs: Sequence[RunSummary]) -> list[str]:
    seen = Counter(name for run in runs for name in run.summary)
    return sorted(name for name, _ in seen.most_common(_LOG_METRICS))


def status_text(status: str) -> Text:
    return Text(status, style=_STATUS_STYLE.get(status, ""))


def _width(text: str) -> int:
    """Terminal cells `text` takes: its length, unless wide or combining characters are in it."""
    return len(text) if text.isascii() else cell_len(text)


def runs_table(runs: Sequence[RunSummary], color_system: str | None) -> str:
    """The `gitexp log` table: newest first, with the last value of the commonest metrics.

    Laid out here rather than by rich's Table, which takes seconds for 10,000 rows; rich
    still measures cell widths and writes the colour codes.
    """
    metrics = _common_metrics(runs)
    header = ["id", "name", "status", "started (UTC)", "duration", "tags", *metrics]
    rows = [
        [
            run.id,
            run.name or "",
            run.status,
            started(run.started),
            duration(run.duration_s),
            ", ".join(run.tags),
            *(_number(run.summary.get(name, {}).get("last")) for name in metrics),
        ]
        for run in runs
    ]
    widths = [max(_width(row[i]) for row in [header, *rows]) for i in range(len(header))]
    right = set(range(6, len(header)))
    bold = Style(bold=True)
    system = _COLOR_SYSTEMS.get(color_system or "")

    def line(cells: Sequence[str], heading: bool = False) -> str:
        parts = []
        for i, cell in enumerate(cells):
            pad = " " * (widths[i] - _width(cell))
            if system and heading:
                cell = bold.render(cell, color_system=system)
            elif system and i in (0, 2):
                style = bold if i == 0 else Style.parse(_STATUS_STYLE.get(cell, "none"))
                cell = style.render(cell, color_system=system)
            parts.append(pad + cell if i in right else cell + pad)
        return "  ".join(parts).rstrip()

    return "\n".join([line(header, heading=True), *(line(row) for row in rows)])


def _yaml_block(title: str, data: Any) -> RenderableType:
    text = yamlio.dump(data).decode() if isinstance(data, Mapping) else str(data)
    return Panel.fit(
        Syntax(text.rstrip(), "yaml", theme="ansi_dark", word_wrap=True),
        title=title,
        title_align="left",
    )


def record_view(record: Record) -> RenderableType:
    """Every part of one record, readably; long parts are summarised with where to see them."""
    view = record.parsed()
    run = view.get("run", {})
    head = Table.grid(padding=(0, 2))
    head.add_column(style="bold")
    head.add_column()
    rows = [
        ("run", record.summary.id),
        ("name", run.get("name")),
        ("status", status_text(str(run.get("status")))),
        ("exit code", run.get("exit_code")),
        ("signal", run.get("signal")),
        ("started", run.get("started")),
        ("finished", run.get("finished")),
        ("duration", duration(run.get("duration_s"))),
        ("command", " ".join(run.get("command") or [])),
        ("cwd", run.get("cwd")),
        ("tags", ", ".join(run.get("tags") or [])),
        ("notes", run.get("notes")),
        ("made from", ", ".join(view["lineage"]["inputs"])),
        ("used by", ", ".join(view["lineage"]["used_by"])),
        ("host", f"{run.get('user')}@{run.get('host')}"),
        ("gitexp", run.get("gitexp_version")),
    ]
    for label, value in rows:
        if value not in (None, ""):
            head.add_row(label, value if isinstance(value, Text) else escape(str(value)))
    parts: list[RenderableType] = [head]
    for key, title in (("config", "config.yaml"), ("code", "code.yaml"), ("seeds", "seeds.yaml")):
        if key in view:
            parts.append(_yaml_block(title, view[key]))
    if view.get("diff"):
        parts.append(
            Panel.fit(
                Syntax(view["diff"].rstrip(), "diff", theme="ansi_dark", word_wrap=True),
                title="code.diff",
                title_align="left",
            )
        )
    if "env" in view:
        env = dict(view["env"])
        packages = env.pop("packages", [])
        env["packages"] = f"{len(packages)} distributions (all in `gitexp show --json`)"
        parts.append(_yaml_block("env.yaml", env))
    for key in ("data", "artifacts"):
        if key in view:
            parts.append(_yaml_block(f"{key}.yaml", view[key]))
    if view.get("summary"):
        parts.append(metrics_table(view["summary"], view.get("metrics", [])))
    if view.get("output"):
        lines = view["output"].rstrip("\n").splitlines()
        shown = "\n".join(lines[-_OUTPUT_TAIL_LINES:])
        title = "output.log" + (
            f" (last {_OUTPUT_TAIL_LINES} of {len(lines)} lines)"
            if len(lines) > _OUTPUT_TAIL_LINES
            else ""
        )
        parts.append(Panel.fit(Text(shown), title=title, title_align="left"))
    return Group(*parts)


_BARS = "▁▂▃▄▅▆▇█"
_CURVE_WIDTH = 40


def sparkline(values: Sequence[float], width: int = _CURVE_WIDTH) -> str:
    """A metric's curve in one line of block characters, averaged down to `width` points."""
    finite = [v for v in values if math.isfinite(v)]
    if not finite:
        return ""
    buckets = [
        finite[i * len(finite) // width : (i + 1) * len(finite) // width] for i in range(width)
    ]
    points = [sum(b) / len(b) for b in buckets if b] if len(finite) > width else finite
    low, high = min(points), max(points)
    span = (high - low) or 1.0
    return "".join(_BARS[int((p - low) / span * (len(_BARS) - 1))] for p in points)


def metrics_table(summary: Mapping[str, Any], rows: Sequence[Mapping[str, Any]]) -> Table:
    """summary.yaml as a table, each metric with its curve from metrics.tsv."""
    series: dict[str, list[float]] = {}
    for row in rows:
        series.setdefault(row["name"], []).append(row["value"])
    table = Table(title="metrics", title_justify="left", box=None, header_style="bold")
    for column in ("metric", "last", "min", "max", "steps", "curve"):
        table.add_column(column, justify="left" if column in ("metric", "curve") else "right")
    for name, entry in summary.items():
        table.add_row(
            escape(name),
            _number(entry.get("last")),
            _number(entry.get("min")),
            _number(entry.get("max")),
            str(entry.get("count", "")),
            sparkline(series.get(name, [])),
        )
    return table


@contextmanager
def indexing_progress() -> Iterator[Callable[[int, int], None] | None]:
    """A progress bar on stderr while runs are read into the index, on a terminal only."""
    err = console(stderr=True)
    if not err.is_terminal:
        yield None
        return
    with Progress(
        TextColumn("reading run records"), BarColumn(), MofNCompleteColumn(),
        console=err, transient=True,
    ) as bar:  # fmt: skip
        task = bar.add_task("index", total=None)

        def advance(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        yield advance


def console(stderr: bool = False) -> Console:
    """A console that respects NO_COLOR and drops colour when not on a terminal."""
    terminal = Console(stderr=stderr).is_terminal
    # Piped output is for grep and less: never cut a column to fit 80 characters.
    return Console(stderr=stderr, highlight=False, width=None if terminal else 1000)
