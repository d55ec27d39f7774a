"""How runs look on a terminal (rich) and to scripts (JSON); `gitexp log`'s listing is in
listing, which loads rich only to colour. Only these modules and cli use rich, and each view
loads it only when it draws: `diff` prints plain text and need not pay for rich."""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from gitexp import yamlio
from gitexp.cells import duration, number
from gitexp.history import Record
from gitexp.jsontext import as_json, json_safe
from gitexp.listing import STATUS_STYLE, width
from gitexp.reader import MetricRow
from gitexp.reader import terminal_safe as safe

if TYPE_CHECKING:  # `gitexp log` need not load what diff and verify use
    from rich.console import Console, RenderableType
    from rich.table import Table
    from rich.text import Text

    from gitexp.axes import Change
    from gitexp.comparison.ablate import Ablation
    from gitexp.comparison.compare import Row as CompareRow
    from gitexp.comparison.compare import Table as CompareTable
    from gitexp.comparison.outcomes import Outcomes
    from gitexp.comparison.stats import Difference, Spread
    from gitexp.diff import Comparison, FilePatch
    from gitexp.watch import LiveRun

_OUTPUT_TAIL_LINES = 20


def status_text(status: str) -> Text:
    from rich.text import Text

    return Text(status, style=STATUS_STYLE.get(status, ""))


def _yaml_block(title: str, data: Any) -> RenderableType:
    from rich.panel import Panel
    from rich.syntax import Syntax  # only `show` colours YAML: listings need not load it

    text = yamlio.dump(data).decode() if isinstance(data, Mapping) else str(data)
    text = safe(text, lines=True)
    return Panel.fit(
        Syntax(text.rstrip(), "yaml", theme="ansi_dark", word_wrap=True),
        title=title,
        title_align="left",
    )


def record_rows(record: Record, view: Mapping[str, Any]) -> list[tuple[str, Any]]:
    """The head of a record, label and value, as `show` and the web view give it (`view`:
    the record parsed); values that are empty are left out."""
    run = view.get("run", {})
    later = view.get("annotations") or {}
    rows = [
        ("run", record.summary.id),
        ("name", run.get("name")),
        ("status", str(run.get("status"))),
        ("exit code", run.get("exit_code")),
        ("signal", run.get("signal")),
        ("error", run.get("error")),
        ("started", run.get("started")),
        ("finished", run.get("finished")),
        ("duration", duration(run.get("duration_s"))),
        ("command", " ".join(run.get("command") or [])),
        ("cwd", run.get("cwd")),
        ("tags", ", ".join(dict.fromkeys([*(run.get("tags") or []), *later.get("tags", [])]))),
        ("notes", run.get("notes")),
        *(
            ("note", f"{n.get('text')} ({n.get('author')}, {n.get('date')})")
            for n in later.get("notes") or []
        ),
        (
            "kept out",
            ", ".join(
                f"{r.get('name')} ({r.get('reason')})"
                for r in run.get("redacted") or []
                if isinstance(r, Mapping)
            ),
        ),
        ("reproduces", run.get("reproduces")),
        ("rerun of", run.get("rerun_of")),
        ("explains", " ".join(str(run[k]) for k in ("explains", "variant") if run.get(k))),
        ("made from", ", ".join(view["lineage"]["inputs"])),
        ("used by", ", ".join(view["lineage"]["used_by"])),
        ("host", f"{run.get('user')}@{run.get('host')}"),
        ("gitexp", run.get("gitexp_version")),
    ]
    return [(label, value) for label, value in rows if value not in (None, "")]


def record_view(record: Record) -> RenderableType:
    """Every part of one record, readably; long parts are summarised with where to see them."""
    from rich.console import Group
    from rich.markup import escape
    from rich.panel import Panel
    from rich.table import Table
    from rich.text import Text

    view = record.parsed()
    head = Table.grid(padding=(0, 2))
    head.add_column(style="bold")
    head.add_column()
    for label, value in record_rows(record, view):
        head.add_row(label, status_text(value) if label == "status" else escape(safe(str(value))))
    parts: list[RenderableType] = [head]
    for key, title in (("config", "config.yaml"), ("code", "code.yaml"), ("seeds", "seeds.yaml")):
        if key in view:
            parts.append(_yaml_block(title, view[key]))
    if view.get("diff"):
        from rich.syntax import Syntax

        parts.append(
            Panel.fit(
                Syntax(
                    safe(view["diff"].rstrip(), lines=True),
                    "diff",
                    theme="ansi_dark",
                    word_wrap=True,
                ),
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
        parts.append(metrics_table(view["summary"], record.metric_rows()))
    if view.get("output"):
        lines = safe(view["output"].rstrip("\n"), lines=True).splitlines()
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


def metrics_table(summary: Mapping[str, Any], rows: Iterable[MetricRow]) -> Table:
    """summary.yaml as a table, each metric with its curve from metrics.tsv.

    The rows stream by; each curve keeps a bounded sample of its values, so a run of
    millions of steps draws in flat memory.
    """
    from rich.markup import escape
    from rich.table import Table

    keep = _CURVE_WIDTH * 8
    series: dict[str, list[float]] = {}
    every: dict[str, int] = {}
    seen: dict[str, int] = {}
    for row in rows:
        if row.name not in summary:
            continue
        n = seen[row.name] = seen.get(row.name, -1) + 1
        if row.name not in every:
            count = summary[row.name].get("count")
            every[row.name] = max(1, int(count) // keep) if isinstance(count, int) else 1
        if n % every[row.name] == 0:
            values = series.setdefault(row.name, [])
            values.append(row.value)
            if len(values) > 4 * keep:  # the summary undercounted: thin out, stay bounded
                values[:] = values[::2]
                every[row.name] *= 2
    table = Table(title="metrics", title_justify="left", box=None, header_style="bold")
    for column in ("metric", "last", "min", "max", "steps", "curve"):
        table.add_column(column, justify="left" if column in ("metric", "curve") else "right")
    for name, entry in summary.items():
        table.add_row(
            escape(safe(name)),
            number(entry.get("last")),
            number(entry.get("min")),
            number(entry.get("max")),
            str(entry.get("count", "")),
            sparkline(series.get(name, [])),
        )
    return table


def record_json(record: Record) -> Iterator[str]:
    """`gitexp show --json`: one JSON object, written piece by piece so that the metric rows
    stream from the record to the output without ever being held all at once."""
    view = record.parsed()
    lineage = view.pop("lineage")
    yield "{\n"
    for key, value in view.items():
        yield f"  {json.dumps(key)}: {_indented(value)},\n"
    yield '  "metrics": ['
    first = True
    for row in record.metric_rows():
        item = {"step": row.step, "time": row.time, "name": row.name, "value": row.value}
        yield ("\n    " if first else ",\n    ") + json.dumps(json_safe(item))
        first = False
    yield "],\n" if first else "\n  ],\n"
    yield f'  "lineage": {_indented(lineage)}\n}}\n'


def _indented(value: Any) -> str:
    return as_json(value).replace("\n", "\n  ")


def console(stderr: bool = False) -> Console:
    """A console that respects NO_COLOR and drops colour when not on a terminal."""
    from rich.console import Console

    terminal = Console(stderr=stderr).is_terminal
    # Piped output is for grep and less: never cut a column to fit 80 characters.
    return Console(stderr=stderr, highlight=False, width=None if terminal else 1000)


# --- gitexp diff ---------------------------------------------------------------------------

_ELLIPSIS = "…"
_MAX_VALUES = 3  # changed keys shown per env, seed or group axis before "(+N more)"


def value_text(value: Any, exact: bool = True) -> str:
    """One value on one line: hashes cut to 8 characters; `exact` quotes strings that would
    read as another type (the config value "1" is not 1)."""
    from gitexp.axes import ABSENT

    if value is ABSENT:
        return "(absent)"
    if isinstance(value, str):
        if len(value) in (32, 40, 64) and all(c in "0123456789abcdef" for c in value):
            return value[:8] + _ELLIPSIS
        plain = not exact or (value and isinstance(yamlio.typed_value(value), str))
        text = value if plain else json.dumps(value)
    else:
        text = json.dumps(json_safe(value), default=str, ensure_ascii=False)
    return text if len(text) <= 60 else text[:59] + _ELLIPSIS


def axis_text(change: Change, code_files: Sequence[str] = ()) -> str:
    """`config.optim.lr: 0.001 → 0.0003`; env, seed and groups list the keys that changed."""
    if isinstance(change.a, Mapping) and isinstance(change.b, Mapping):
        keys = list(change.a)
        exact = change.axis not in ("env", "seed")  # versions and variables are all text
        if change.axis == "seed" and keys[:1] == ["seed"]:
            # The RNGs and variables it seeded changed with it.
            return safe(f"seed: {value_text(change.a['seed'])} → {value_text(change.b['seed'])}")
        parts = [
            f"{key} {value_text(change.a[key], exact)} → {value_text(change.b[key], exact)}"
            for key in keys[:_MAX_VALUES]
        ]
        more = f" (+{len(keys) - _MAX_VALUES} more)" if len(keys) > _MAX_VALUES else ""
        return safe(f"{change.axis}: {', '.join(parts) or 'differs'}{more}")
    also = f" (also {', '.join(change.members)})" if change.members else ""
    if change.axis == "code" and code_files:
        listed = ", ".join(code_files[:_MAX_VALUES])
        more = f" and {len(code_files) - _MAX_VALUES} more" if len(code_files) > _MAX_VALUES else ""
        also = f" ({listed}{more})"
    return safe(f"{change.axis}: {value_text(change.a)} → {value_text(change.b)}{also}")


def safe_patch(data: bytes) -> bytes:
    """A patch for a terminal: control characters from records shown, not obeyed."""
    text = data.decode("utf-8", "surrogateescape")
    return safe(text, lines=True).encode("utf-8", "surrogateescape")


def _axes_count(n: int) -> str:
    return "no axis differs" if n == 0 else f"{n} axis differs" if n == 1 else f"{n} axes differ"


def diff_preamble(comparison: Comparison) -> str:
    """What `diff` prints above the patches: the axes, and why to distrust a forced diff."""
    lines = []
    if comparison.confounded:
        lines.append(
            f"confounded: {len(comparison.axes)} axes differ, so no difference below can be "
            "put down to one of them"
        )
    lines.append(
        f"{comparison.a.run_id} → {comparison.b.run_id}: {_axes_count(len(comparison.axes))}"
    )
    lines.extend(f"  {axis_text(change, comparison.code_files)}" for change in comparison.axes)
    if comparison.ignored:
        names = ", ".join(change.axis for change in comparison.ignored)
        lines.append(f"  also differ, ignored by axes.ignore in .gitexp.yaml: {names}")
    return "\n".join(lines) + "\n"


def diff_warnings(comparison: Comparison) -> list[str]:
    if comparison.unseeded and comparison.axes:
        return ["neither run was seeded, so differences between their results may be noise"]
    return []


_MAX_NEIGHBOURS = 5  # per axis


def refusal(comparison: Comparison) -> str:
    """The message of a refused diff: every axis, and the comparisons that would be valid."""
    a, b = comparison.a.run_id, comparison.b.run_id
    lines = [
        f"refusing to diff {a} and {b}: {_axes_count(len(comparison.axes))}, so no difference "
        "between their results can be put down to one of them",
        *(f"  {axis_text(change, comparison.code_files)}" for change in comparison.axes),
    ]
    by_axis: dict[str, list[str]] = {}
    for found in comparison.neighbours:
        by_axis.setdefault(found.axis, []).append(found.run_id)
    if by_axis:
        lines.append(f"runs that differ from {a} on one of these axes alone:")
        for change in comparison.axes:
            runs = by_axis.get(change.axis, [])
            for run_id in runs[:_MAX_NEIGHBOURS]:
                lines.append(f"  {change.axis}: gitexp diff {a} {run_id}")
            if len(runs) > _MAX_NEIGHBOURS:
                lines.append(f"  {change.axis}: and {len(runs) - _MAX_NEIGHBOURS} more")
    else:
        lines.append(f"no run differs from {a} on one of these axes alone")
    lines.append("use --force to see the diff anyway (--axis AXIS shows one axis of it)")
    return "\n".join(lines)


def _change_json(change: Change) -> dict[str, Any]:
    from gitexp.axes import ABSENT

    def present(value: Any) -> Any:
        if isinstance(value, Mapping):
            return {k: v for k, v in value.items() if v is not ABSENT}
        return value

    out: dict[str, Any] = {"axis": change.axis}
    out.update(
        {side: present(v) for side, v in (("a", change.a), ("b", change.b)) if v is not ABSENT}
    )
    if change.members:
        out["members"] = list(change.members)
    return out


def comparison_json(comparison: Comparison, outcomes: Outcomes | None = None) -> str:
    """The axes of a comparison for scripts; a value missing from one run is left out."""
    from gitexp.axes import ABSENT

    return as_json(
        {
            "a": comparison.a.run_id,
            "b": comparison.b.run_id,
            "confounded": comparison.confounded,
            "axes": [_change_json(change) for change in comparison.axes],
            "ignored": [_change_json(change) for change in comparison.ignored],
            "neighbours": [
                {
                    "run": n.run_id,
                    "axis": n.axis,
                    **({"value": n.value} if n.value is not ABSENT else {}),
                }
                for n in comparison.neighbours
            ],
            "unseeded": comparison.unseeded,
            **({"outcome": outcomes_json(outcomes)} if outcomes is not None else {}),
        }
    )


# git's default diff colours (color.diff.*).
_META, _FRAG, _OLD, _NEW, _RESET = b"\x1b[1m", b"\x1b[36m", b"\x1b[31m", b"\x1b[32m", b"\x1b[m"


def patch_kinds(lines: Sequence[bytes]) -> list[str]:
    """Each line of a patch as git colours it: `meta` (headers), `hunk`, `add`, `del` or
    `ctx`. A line is a header only outside a hunk: a deleted `-- x` is no `--- a/file`."""
    kinds = []
    in_hunk = False
    for line in lines:
        if line.startswith(b"diff --git"):
            in_hunk = False
        if line.startswith(b"@@"):
            in_hunk = True
            kinds.append("hunk")
        elif not in_hunk:
            kinds.append("meta")
        elif line.startswith(b"+"):
            kinds.append("add")
        elif line.startswith(b"-"):
            kinds.append("del")
        else:
            kinds.append("ctx")
    return kinds


def colour_patch(data: bytes) -> bytes:
    """A patch coloured as git colours it: bold headers, cyan hunk lines, red and green."""
    lines = data.splitlines(keepends=True)
    out = []
    for line, kind in zip(lines, patch_kinds(lines), strict=True):
        body, end = (line[:-1], b"\n") if line.endswith(b"\n") else (line, b"")
        if kind == "hunk":
            close = body.find(b"@@", 2)
            head, rest = (body[: close + 2], body[close + 2 :]) if close > 0 else (body, b"")
            out.append(_FRAG + head + _RESET + rest + end)
        elif kind == "meta":
            out.append(_META + body + _RESET + end)
        elif kind == "add":
            out.append(_NEW + body + _RESET + end)
        elif kind == "del":
            out.append(_OLD + body + _RESET + end)
        else:
            out.append(line)
    return b"".join(out)


_STAT_WIDTH = 80


def diffstat(patches: Sequence[FilePatch]) -> str:
    """`git diff --stat`: one line per file and a total."""
    if not patches:
        return ""
    names = [p.path for p in patches]
    name_width = max(width(n) for n in names)
    counts = [str(p.added + p.deleted) if not p.binary else "Bin" for p in patches]
    count_width = max(len(c) for c in counts)
    most = max((p.added + p.deleted for p in patches if not p.binary), default=0)
    room = max(_STAT_WIDTH - name_width - count_width - 5, 10)
    scale = min(1.0, room / most) if most else 1.0
    lines = []
    for patch, name, count in zip(patches, names, counts, strict=True):
        pad = " " * (name_width - width(name))
        if patch.binary:
            graph = f" {patch.sizes[0]} -> {patch.sizes[1]} bytes"
        else:
            plus, minus = (
                max(round(n * scale), 1 if n else 0) for n in (patch.added, patch.deleted)
            )
            graph = (" " + "+" * plus + "-" * minus) if plus or minus else ""
        lines.append(f" {name}{pad} | {count.rjust(count_width)}{graph}")
    added, deleted = sum(p.added for p in patches), sum(p.deleted for p in patches)
    total = f" {len(patches)} file{'s' if len(patches) != 1 else ''} changed"
    if added:
        total += f", {added} insertion{'s' if added != 1 else ''}(+)"
    if deleted:
        total += f", {deleted} deletion{'s' if deleted != 1 else ''}(-)"
    return "\n".join([*lines, total]) + "\n"


# --- outcomes in gitexp diff, gitexp compare and gitexp ablate -----------------------------


def _signed(value: float | None) -> str:
    return "" if value is None else f"{value:+.4g}"


def _percent(value: float | None) -> str:
    return "" if value is None else f"{value * 100:+.1f}%"


def change_text(delta: float | None, relative: float | None) -> str:
    """`-0.2812 (-54.9%)`; the relative part only where A is not 0."""
    if delta is None:
        return ""
    return _signed(delta) + (f" ({_percent(relative)})" if relative is not None else "")


def spread_text(spread: Spread) -> str:
    """`0.2311 ± 0.03 (n=3)`; one run has no ± part."""
    if spread.mean is None:
        return "(none)"
    if spread.sd is None:
        return f"{number(spread.mean)} (n={spread.n})"
    return f"{number(spread.mean)} ± {spread.sd:.2g} (n={spread.n})"


def noise_text(difference: Difference) -> str:
    """`p=0.0012, 95% CI [-0.31, -0.25]: beyond seed noise`, or why nothing can be said."""
    parts = []
    if difference.p_value is not None:
        parts.append(f"p={difference.p_value:.2g}")
    if difference.ci is not None:
        parts.append(f"95% CI [{number(difference.ci[0])}, {number(difference.ci[1])}]")
    if difference.within_noise is None:
        verdict = f"no statistics: {difference.reason}" if difference.reason else ""
    else:
        verdict = "within seed noise" if difference.within_noise else "beyond seed noise"
        method = difference.method or ""
        if not difference.within_noise:  # the test's criterion, the other way round
            method = method.replace("≤", ">").replace("≥", "<")
        verdict += f" ({method})" if difference.p_value is None and method else ""
    return ", ".join(parts) + (": " if parts and verdict else "") + verdict


def _aligned(rows: Sequence[Sequence[str]], indent: str = "  ") -> list[str]:
    widths = [max(width(row[i]) for row in rows) for i in range(len(rows[0]))]
    return [
        indent + "  ".join(cell + " " * (w - width(cell)) for cell, w in zip(row, widths,
                                                                              strict=True)).rstrip()
        for row in rows
    ]  # fmt: skip


def outcomes_text(outcomes: Outcomes) -> str:
    """What `diff` prints after the axes: each metric of A and B, and over seed groups, the
    spread of each side and whether the change is beyond seed noise."""
    if not outcomes.metrics:
        return ""  # nothing to say: a diff of runs that log no metric stays as it was
    lines = [f"outcome ({outcomes.aggregate} value of each metric):"]
    rows = [["metric", "A", "B", "change"]]
    rows += [
        [safe(o.metric), number(o.a) or "(absent)", number(o.b) or "(absent)",
         change_text(o.delta, o.relative)]
        for o in outcomes.metrics
    ]  # fmt: skip
    lines += _aligned(rows)
    if any(o.seeds for o in outcomes.metrics):
        n_a, n_b = len(outcomes.a_group), len(outcomes.b_group)
        if outcomes.same_group:
            lines.append(f"over the seed group of A and B ({n_a} runs identical but for seed):")
        else:
            lines.append(f"over seed groups (A and {n_a - 1} siblings, B and {n_b - 1} siblings; "
                         "runs identical but for seed that succeeded):")  # fmt: skip
        same = outcomes.same_group
        rows = [["metric", "group", "A → B"] if same else ["metric", "A", "B", "change", "noise"]]
        for o in outcomes.metrics:
            if o.seeds is None:
                continue
            d = o.seeds.difference
            if same:
                rows.append([safe(o.metric), spread_text(o.seeds.a), noise_text(d)])
            else:
                rows.append([safe(o.metric), spread_text(o.seeds.a), spread_text(o.seeds.b),
                             change_text(d.delta, d.relative), noise_text(d)])  # fmt: skip
        lines += _aligned(rows)
    return "\n".join(lines) + "\n"


def spread_json(spread: Spread) -> dict[str, Any]:
    return {"n": spread.n, "mean": spread.mean, "sd": spread.sd}


def difference_json(difference: Difference) -> dict[str, Any]:
    return {
        "delta": difference.delta,
        "relative": difference.relative,
        "p_value": difference.p_value,
        "ci95": list(difference.ci) if difference.ci else None,
        "within_noise": difference.within_noise,
        "method": difference.method,
        "reason": difference.reason,
    }


def outcomes_json(outcomes: Outcomes) -> dict[str, Any]:
    """The outcome part of `diff --json`."""
    return {
        "aggregate": outcomes.aggregate,
        "a_group": list(outcomes.a_group),
        "b_group": list(outcomes.b_group),
        "metrics": [
            {
                "metric": o.metric,
                "a": o.a,
                "b": o.b,
                "delta": o.delta,
                "relative": o.relative,
                **(
                    {
                        "seeds": {
                            "a": spread_json(o.seeds.a),
                            "b": spread_json(o.seeds.b),
                            **difference_json(o.seeds.difference),
                        }
                    }
                    if o.seeds
                    else {}
                ),
            }
            for o in outcomes.metrics
        ],
    }


# --- gitexp watch ------------------------------------------------------------------------------


def watch_table(runs: Sequence[LiveRun]) -> Table:
    """The `gitexp watch` table: one row per running run, the last value of a few metrics."""
    from rich.table import Table
    from rich.text import Text

    metrics = list(dict.fromkeys(name for run in runs for name, _ in run.metrics))
    table = Table(box=None, header_style="bold", pad_edge=False)
    table.add_column("run")
    for heading in ("elapsed", "step", "steps/s", *map(safe, metrics)):
        table.add_column(heading, justify="right")
    for run in runs:
        values = dict(run.metrics)
        rate = "" if run.steps_per_s is None else f"{run.steps_per_s:.3g}"
        table.add_row(
            Text(safe(run.name or run.run_id), style="bold"),
            duration(run.elapsed_s),
            number(run.step),
            rate,
            *(number(values.get(name)) for name in metrics),
        )
    return table


def _row_name(row: CompareRow) -> str:
    first = safe(row.run_ids[0])
    more = f" +{len(row.run_ids) - 1}" if len(row.run_ids) > 1 else ""
    return first + more + (" (baseline)" if row.baseline else "")


def change_cell(difference: Difference | None) -> str:
    """`-0.5 (-75.8%) p=1.8e-07 [-0.51, -0.49]`, and `≈` ahead of a change within noise."""
    if difference is None:
        return ""
    text = change_text(difference.delta, difference.relative)
    if difference.p_value is not None:
        text += f" p={difference.p_value:.2g}"
    if difference.ci is not None:
        text += f" [{number(difference.ci[0])}, {number(difference.ci[1])}]"
    return ("≈ " if difference.within_noise else "") + text


def compare_cells(table: CompareTable, with_changes: bool) -> tuple[list[str], list[list[str]]]:
    """The header and rows of the compare table, as text."""
    header = ["run", *(safe(k) for k in table.keys), "status"]
    for metric in table.metrics:
        header.append(safe(metric.label))
        if with_changes:
            header.append(f"Δ {safe(metric.label)}")
    rows = []
    for row in table.rows:
        cells = [_row_name(row), *(value_text(row.config.get(k), exact=False)
                                   for k in table.keys), row.status]  # fmt: skip
        for metric in table.metrics:
            cells.append(spread_text(row.values[metric.label]))
            if with_changes:
                cells.append(change_cell(row.changes.get(metric.label)))
        rows.append(cells)
    return header, rows


def compare_notes(table: CompareTable) -> list[str]:
    """What `compare` says above and below its table."""
    lines = []
    if table.common:
        same = ", ".join(f"{k}={value_text(v, exact=False)}" for k, v in table.common.items())
        lines.append(safe(f"same in every row: {same}"))
    if table.grouped:
        seeds = f" ({', '.join(table.varying)})" if table.varying else ""
        lines.append(f"rows are seed groups: runs identical but for seed{seeds}, mean ± sd (n)")
    return lines


def compare_legend(table: CompareTable) -> str:
    base = next(row for row in table.rows if row.baseline)
    text = f"Δ: against the baseline {base.run_ids[0]}"
    if table.grouped:
        text += (
            "; p: Welch's t-test, [a, b]: bootstrap 95% CI of Δ, ≈: within seed noise (p ≥ 0.05)"
        )
    reasons = {d.reason for row in table.rows for d in row.changes.values()
               if d.reason and d.p_value is None}  # fmt: skip
    return text + "".join(f"\nno statistics where {r}" for r in sorted(reasons))


def compare_view(table: CompareTable) -> RenderableType:
    """`gitexp compare` on a terminal."""
    from rich.console import Group
    from rich.markup import escape
    from rich.table import Table
    from rich.text import Text

    header, rows = compare_cells(table, with_changes=len(table.rows) > 1)
    grid = Table(box=None, header_style="bold", pad_edge=False)
    for i, name in enumerate(header):
        grid.add_column(name, justify="left" if i <= len(table.keys) + 1 else "right")
    for cells in rows:
        grid.add_row(*(escape(cell) for cell in cells))
    parts: list[RenderableType] = [Text(line) for line in compare_notes(table)]
    parts.append(grid)
    if len(table.rows) > 1:
        parts.append(Text(compare_legend(table)))
    return Group(*parts)


def compare_markdown(table: CompareTable) -> str:
    """`gitexp compare --markdown`: for a pull request."""
    header, rows = compare_cells(table, with_changes=len(table.rows) > 1)

    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"

    out = [f"{note}\n" for note in compare_notes(table)]
    out.append(line(header))
    out.append("|" + "|".join("---" if i <= len(table.keys) + 1 else "---:"
                              for i in range(len(header))) + "|")  # fmt: skip
    out.extend(line(cells) for cells in rows)
    if len(table.rows) > 1:
        out.append("\n" + compare_legend(table).replace("\n", "  \n"))
    return "\n".join(out) + "\n"


def compare_csv(table: CompareTable) -> str:
    """`gitexp compare --csv`: numbers as numbers, one column per statistic."""
    import csv
    import io

    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    head = ["runs", "baseline", "status", *table.keys]
    for m in table.metrics:
        head += [f"{m.label}{s}" for s in ("", " sd", " n", " delta", " relative", " p", " ci_low",
                                           " ci_high", " within_noise")]  # fmt: skip
    writer.writerow(head)
    for row in table.rows:
        cells: list[Any] = [" ".join(row.run_ids), row.baseline, row.status]
        cells += [value_text(row.config.get(k), exact=False) for k in table.keys]
        for m in table.metrics:
            s, d = row.values[m.label], row.changes.get(m.label)
            ci = d.ci if d and d.ci else (None, None)
            cells += [s.mean, s.sd, s.n, d and d.delta, d and d.relative, d and d.p_value, *ci,
                      d and d.within_noise]  # fmt: skip
        writer.writerow(["" if c is None else c for c in cells])
    return out.getvalue()


def ablation_text(ablation: Ablation) -> str:
    """`gitexp ablate`: the baseline's metrics, then each axis with its single-axis variants
    and what the change did to each metric."""
    from gitexp.axes import ABSENT

    base = next((v.changes for v in ablation.variants), ())
    lines = [f"baseline {ablation.baseline}"]
    if not ablation.variants:
        lines.append("no run in the history differs from it on exactly one axis; vary one "
                     "thing (gitexp run … --lr 0.2, --seed 1) to make one")  # fmt: skip
        return "\n".join(lines) + "\n"
    values = ", ".join(f"{safe(c.metric)} {number(c.a) or '(absent)'}" for c in base)
    if values:
        lines[0] += f": {values}"
    for axis, variants in ablation.by_axis().items():
        was = ablation.base_value.get(axis, ABSENT)
        lines.append("")
        lines.append(safe(axis) + (f" (baseline {value_text(was)})" if was is not ABSENT else ""))
        heads = [part for m in ablation.metrics for part in (safe(m.label), "")]
        rows = [["run", "value", "status", *heads]]
        for v in variants:
            cells = [safe(v.run_id), value_text(v.value) if v.value is not ABSENT else "", v.status]
            for c in v.changes:  # the value and its change in columns of their own: aligned
                cells += [number(c.b) or "(absent)", change_text(c.delta, c.relative)]
            rows.append(cells)
        lines += _aligned(rows)
    return "\n".join(lines) + "\n"
