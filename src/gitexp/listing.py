"""What `gitexp log` prints: the runs table, JSON and CSV.

Laid out here rather than by rich's Table, which takes seconds for 10,000 rows, and without
loading rich unless a terminal shows colour: a warm listing of 10,000 runs has 300 ms in
all (DESIGN.md §8).
"""

from __future__ import annotations

import json
import os
import sys
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, ExitStack, contextmanager
from typing import IO, Any

from gitexp.catalog import JsonLine, Progress, RunSummary
from gitexp.cells import HEADER, Cells, duration, number, started
from gitexp.comparison.table import Key
from gitexp.jsontext import as_json, json_safe
from gitexp.reader import terminal_safe as safe

STATUS_STYLE = {
    "succeeded": "green",
    "failed": "red",
    "crashed": "bold red",
    "interrupted": "yellow",
    "running": "cyan",
    "invalid": "bold magenta",
}
_LOG_METRICS = 3
_GAP = "  "


Paint = Callable[[str, str], str]  # (text, rich style name) → text with its colour codes


def runs_json(runs: Sequence[RunSummary | JsonLine]) -> str:
    """`gitexp log --json`: RunSummary.as_dict of each run, one run per line, as the index
    keeps it (see RunSummary.json_line)."""
    if not runs:
        return "[]"
    lines = (run.line if isinstance(run, JsonLine) else run.json_line() for run in runs)
    return "[\n" + ",\n".join(lines) + "\n]"


def _common_metrics(names: Iterable[Iterable[str]]) -> list[str]:
    """The metrics most runs have (each run's names given), at most _LOG_METRICS of them."""
    seen = Counter(name for run in names for name in run)
    return sorted(name for name, _ in seen.most_common(_LOG_METRICS))


def width(text: str) -> int:
    """Terminal cells `text` takes: its length, unless wide or combining characters are in it."""
    if text.isascii():
        return len(text)
    from rich.cells import cell_len

    return cell_len(text)


def unreadable(run_id: str, problem: str | None) -> str:
    """The warning for a record gitexp cannot read: which, why, where to look."""
    return f"run {safe(run_id)} cannot be read: {safe(problem or 'unknown damage')}"


def indexing_progress() -> AbstractContextManager[Progress | None]:
    """A progress bar on stderr while runs are read into the index (see progress_bar)."""
    return progress_bar("reading run records")


@contextmanager
def progress_bar(label: str) -> Iterator[Progress | None]:
    """A progress bar on stderr, on a terminal only, that appears with the first progress
    reported: work that turns out to be done at once shows none (nor loads rich)."""
    if not sys.stderr.isatty():
        yield None
        return
    with ExitStack() as stack:
        shown: list[Callable[[int, int], None]] = []

        def advance(done: int, total: int) -> None:
            if not shown:
                shown.append(_bar(stack, label))
            shown[0](done, total)

        yield advance


def _bar(stack: ExitStack, label: str) -> Callable[[int, int], None]:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, TextColumn
    from rich.progress import Progress as Bar

    columns = (TextColumn(label), BarColumn(), MofNCompleteColumn())
    bar = stack.enter_context(Bar(*columns, console=Console(stderr=True), transient=True))
    task = bar.add_task(label, total=None)
    return lambda done, total: bar.update(task, completed=done, total=total)


def colour_system(stream: IO[str] | None = None) -> str | None:
    """What colours `stream` (stdout) shows, as rich names them; None for a pipe or a file,
    decided without loading rich."""
    stream = stream or sys.stdout
    if not stream.isatty() and not os.environ.get("FORCE_COLOR"):
        return None
    from rich.console import Console

    console = Console(file=stream)
    return console.color_system if console.is_terminal else None


def painter(color_system: str | None) -> Paint | None:
    """Text painted in a rich style for a terminal showing `color_system`; None, and rich
    not loaded, when it shows none."""
    if color_system is None:
        return None
    from rich.color import ColorSystem
    from rich.style import Style

    system = {
        "standard": ColorSystem.STANDARD,
        "256": ColorSystem.EIGHT_BIT,
        "truecolor": ColorSystem.TRUECOLOR,
        "windows": ColorSystem.WINDOWS,
    }.get(color_system)
    if system is None:
        return None
    styles: dict[str, Style] = {}

    def paint(text: str, style: str) -> str:
        if style not in styles:
            styles[style] = Style.parse(style)
        return styles[style].render(text, color_system=system)

    return paint


def safe_column(cells: list[str]) -> list[str]:
    """`cells` terminal-safe (see reader.terminal_safe), checked in one pass when none needs it."""
    if "".join(cells).isprintable():
        return cells
    return [safe(cell) for cell in cells]


def layout(
    header: Sequence[str],
    columns: Sequence[Sequence[str]],
    right: set[int],
    paint: Paint | None = None,
    styles: Callable[[int, str], str | None] = lambda column, cell: None,
) -> str:
    """Columns two spaces apart, those in `right` right-aligned. With `paint`, the header in
    bold and each cell in the style `styles` names for it (None: plain)."""
    plain = all("".join(column).isascii() for column in columns)  # then length is width
    measure = len if plain else width
    widths = [
        max(measure(title), *map(measure, column)) if column else measure(title)
        for title, column in zip(header, columns, strict=True)
    ]
    rows = list(zip(*columns, strict=True))
    if paint is None and plain and "".join(header).isascii():
        # One format call per line: 10,000 runs lay out in milliseconds.
        shape = _GAP.join(f"{{:{'>' if i in right else '<'}{w}}}" for i, w in enumerate(widths))
        return "\n".join(shape.format(*row).rstrip() for row in [header, *rows])

    def line(cells: Sequence[str], heading: bool) -> str:
        parts = []
        for i, cell in enumerate(cells):
            pad = " " * (widths[i] - width(cell))
            style = "bold" if heading else styles(i, cell) if cell else None
            if paint is not None and style is not None:
                cell = paint(cell, style)
            parts.append(pad + cell if i in right else cell + pad)
        return _GAP.join(parts).rstrip()

    return "\n".join([line(header, heading=True), *(line(row, heading=False) for row in rows)])


def runs_table(rows: Sequence[Cells], color_system: str | None) -> str:
    """The `gitexp log` table: newest first, with the last value of the commonest metrics.
    Its cells are made (gitexp.cells); here they are only laid out."""
    metrics = _common_metrics(row.metrics for row in rows)
    header = [*HEADER, *metrics]  # metric names, terminal-safe as cells keeps them
    columns = [list(column) for column in zip(*(row.fields for row in rows), strict=True)]
    columns += [[row.metrics.get(name, "") for row in rows] for name in metrics]
    right = set(range(len(HEADER), len(header)))
    return layout(header, columns, right, painter(color_system), _id_and_status)


def _id_and_status(column: int, cell: str) -> str | None:
    if column == 0:
        return "bold"
    if column == 2:
        return STATUS_STYLE.get(cell.split()[0], "none")
    return None


def _plain(value: Any, number: Callable[[float], str]) -> str:
    """A value of the runs table as text: lists joined, null empty, floats by `number`."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return number(value)
    if isinstance(value, (list, tuple)):
        return ", ".join(_plain(v, number) for v in value)
    if isinstance(value, Mapping):
        return json.dumps(json_safe(value), sort_keys=True)
    return str(value)


def column_cell(key: Key, run: RunSummary) -> str:
    value = key.value(run)
    if key.kind == "field" and key.name in ("started", "finished"):
        return safe(started(value or ""))
    if key.kind == "field" and key.name == "duration":
        return duration(value)
    if key == Key("field", "status"):
        return f"{run.status} (archived)" if run.archived else run.status
    return safe(_plain(value, number))


def _numeric(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def columns_table(runs: Sequence[RunSummary], keys: Sequence[Key], color_system: str | None) -> str:
    """The `gitexp log --columns` table: one column per key, numbers right-aligned."""
    header = [safe(key.text) for key in keys]
    columns = [[column_cell(key, run) for run in runs] for key in keys]
    right = {
        i
        for i, key in enumerate(keys)
        if all(_numeric(v) for v in (key.value(run) for run in runs) if v is not None)
    }
    id_key, status_key = Key("field", "id"), Key("field", "status")

    def styles(column: int, cell: str) -> str | None:
        if keys[column] == id_key:
            return "bold"
        if keys[column] == status_key:
            return STATUS_STYLE.get(cell.split()[0], "none")
        return None

    return layout(header, columns, right, painter(color_system), styles)


def columns_json(runs: Sequence[RunSummary], keys: Sequence[Key]) -> str:
    """`gitexp log --columns … --json`: one object per run, its keys as the columns name them."""
    return as_json([{key.text: key.value(run) for key in keys} for run in runs])


def runs_csv(runs: Sequence[RunSummary], keys: Sequence[Key] | None) -> str:
    """`gitexp log --csv`: a header line, then a line per run; without `keys`, the columns
    of the plain table (metrics by their last value)."""
    import csv
    import io

    if keys is None:
        fields = ("id", "name", "status", "started", "duration", "tags")
        keys = [Key("field", f) for f in fields]
        metrics = _common_metrics(run.summary for run in runs)
        keys += [Key("metric", name, "last") for name in metrics]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([safe(key.text) for key in keys])
    for run in runs:
        writer.writerow([safe(_plain(key.value(run), repr)) for key in keys])
    return out.getvalue()
