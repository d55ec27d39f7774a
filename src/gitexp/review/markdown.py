"""A report as GitHub-flavoured Markdown, for a pull request's description or a comment.

Tables are padded so the text reads as well in a terminal as rendered. Everything taken from
a record is untrusted: free text is escaped so it cannot add markup, links, images or HTML,
and an `@` cannot mention (ping) anyone; names and values go into code spans.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from gitexp import render, verify
from gitexp.cells import number
from gitexp.comparison.compare import Row
from gitexp.reader import terminal_safe
from gitexp.review.report import Difference, Report, Tested

_WORD_JOINER = "\u2060"  # shown as nothing, but breaks what a host would turn into a link
_SPECIAL = re.compile(r"([\\`*_\[\]<>|~&])")
# What GitHub links by itself in plain text: @mentions (which notify people) and e-mail
# addresses, bare web addresses, and issue references (which add a cross-reference to the
# issue). A word joiner after the `@`, the `:`, the `www` or the `#` keeps them as text.
_AUTOLINKS = re.compile(r"@|(?<=:)(?=//)|(?<=\bwww)(?=\.)|#(?=\d)", re.I)
_UNESCAPED_PIPE = re.compile(r"(?<!\\)\|")
_CELL_LIMIT = 120
_FINDINGS_LIMIT = 12
_VERDICT = {verify.OK: "✓ verified"}


def _line(value: str, limit: int) -> str:
    one = " ".join(terminal_safe(value).split())
    return one if len(one) <= limit else one[: limit - 1] + "…"


def text(value: str, limit: int = _CELL_LIMIT) -> str:
    """Untrusted free text, on one line, shown as typed and never as markup or a link."""
    escaped = _SPECIAL.sub(r"\\\1", _line(value, limit))
    return _AUTOLINKS.sub(lambda m: m.group() + _WORD_JOINER, escaped)


def code(value: str, limit: int = _CELL_LIMIT) -> str:
    """An identifier or value as a code span: nothing in it is markup or a link."""
    one = _line(value, limit)
    fence = "``" if "`" in one else "`"
    pad = " " if fence == "``" or one.startswith("`") or one.endswith("`") else ""
    return f"{fence}{pad}{one}{pad}{fence}" if one else ""


def table(header: Sequence[str], rows: Sequence[Sequence[str]], right: Sequence[bool]) -> str:
    """A pipe table with its columns padded to one width: readable before it is rendered."""

    def line(cells: Sequence[str]) -> str:
        padded = (c.rjust(w) if r else c.ljust(w) for c, w, r in zip(cells, widths, right,
                                                                     strict=True))  # fmt: skip
        return "| " + " | ".join(padded) + " |"

    # A table splits its rows on `|` before anything else, code spans included.
    header = [_UNESCAPED_PIPE.sub(r"\|", cell) for cell in header]
    rows = [[_UNESCAPED_PIPE.sub(r"\|", cell) for cell in row] for row in rows]
    widths = [max(len(cell) for cell in column) for column in zip(header, *rows, strict=True)]
    widths = [max(w, 3) for w in widths]

    rule = "|" + "|".join("-" * (w + 1) + ":" if r else "-" * (w + 2)
                          for w, r in zip(widths, right, strict=True)) + "|"  # fmt: skip
    return "\n".join([line(header), rule, *(line(row) for row in rows)])


def _row_label(report: Report, row: Row, mark_baseline: bool = True) -> str:
    """A row by its runs' names (each name once), else its first run's id."""
    runs = [report.runs[run_id].run for run_id in row.run_ids]
    names = sorted({run.name for run in runs if run.name})
    label = ", ".join(code(name) for name in names[:3]) or code(runs[0].id)
    label += ", …" if len(names) > 3 else ""
    notes = [f"{len(runs)} seeds"] if len(runs) > 1 else []
    notes += ["baseline"] if row.baseline and mark_baseline else []
    return label + (f" ({', '.join(notes)})" if notes else "")


def _metrics(report: Report) -> list[str]:
    t = report.table
    with_changes = len(t.rows) > 1
    header = ["run", *(code(k) for k in t.keys), "status"]
    right = [False] * len(header)
    for metric in t.metrics:
        header.append(code(metric.label))
        right.append(True)
        if with_changes:
            header.append(f"Δ {code(metric.label)}")
            right.append(True)
    rows = []
    for row in t.rows:
        cells = [_row_label(report, row)]
        cells += [code(render.value_text(row.config.get(k), exact=False)) for k in t.keys]
        cells.append(row.status)
        for metric in t.metrics:
            cells.append(render.spread_text(row.values[metric.label]))
            if with_changes:
                cells.append(render.change_cell(row.changes.get(metric.label)))
        rows.append(cells)
    out = []
    notes = render.compare_notes(t)
    if t.common:
        same = ", ".join(code(f"{k}={render.value_text(v, exact=False)}")
                         for k, v in t.common.items())  # fmt: skip
        out.append(f"Same in every row: {same}.\n")
    if t.grouped:  # the seed keys' names come from records: escaped
        out.append(text(notes[-1][0].upper() + notes[-1][1:], limit=1000) + ".\n")
    out.append(table(header, rows, right))
    if with_changes:  # Δ is against the baseline row: its mean when it is a seed group
        legend = render.compare_legend(t).replace("\n", "; ")
        out.append("\n" + re.sub(r"^Δ: against the baseline \S+", "Δ: against the baseline row",
                                 legend))  # fmt: skip
    return out


def _finding(report: Report, row: Row) -> list[str]:
    """Each metric's change for one row, in words, where statistics exist."""
    lines = []
    for metric in report.table.metrics:
        d = row.changes.get(metric.label)
        if d is None or d.p_value is None:
            continue
        change = render.change_text(d.delta, d.relative)
        ci = f", 95% CI [{number(d.ci[0])}, {number(d.ci[1])}]" if d.ci else ""
        verdict = "within seed noise" if d.within_noise else "outside seed noise"
        if d.within_noise and d.ci and (d.ci[0] > 0 or d.ci[1] < 0):  # few seeds: they disagree
            verdict = (
                "unclear: within seed noise by the t-test, not by the interval; run more seeds"
            )
        lines.append(f"- {_row_label(report, row)}: {code(metric.label)} {change} against the "
                     f"baseline (p = {d.p_value:.2g}{ci}): **{verdict}**")  # fmt: skip
    return lines


def _axes(report: Report, difference: Difference) -> str:
    label = _row_label(report, difference.row)
    if not difference.changes:
        return f"- {label}: no axis differs (a repeat of the baseline)"
    shown = "; ".join(code(render.axis_text(c, difference.code_files), limit=200)
                      for c in difference.changes)  # fmt: skip
    if difference.confounded:
        return (f"- {label}: ⚠️ **{len(difference.changes)} axes differ**, so no change in its "
                f"metrics can be put down to one of them: {shown}")  # fmt: skip
    return f"- {label}: {shown}"


def _signer(check: verify.Check) -> str:
    """Who signed, as git says it: the principal of an ssh signature, the user id of gpg's."""
    said = check.signer or check.detail
    found = re.search(r"signature for (\S+) with", said) or re.search(
        r"signature by (.+?) \(key", said
    )
    return code(found.group(1) if found else said, limit=80)


def _tested_rows(report: Report) -> list[list[str]]:
    rows = []
    for tested in report.runs.values():
        run = tested.run
        rows.append([code(run.id), code(run.name or ""), run.status,
                     ", ".join(code(tag) for tag in run.tags), text(run.notes or "")])  # fmt: skip
    return rows


def _record(tested: Tested) -> str:
    path = code(tested.path)
    where = f"[{path}]({tested.link})" if tested.link else path
    return f"{where} at {tested.commit[:12]}"


def _verification(report: Report) -> list[str]:
    rows = []
    for tested in report.runs.values():
        status = tested.check.status
        verdict = _VERDICT.get(status, f"✗ {status}")
        rows.append([code(tested.run.id), verdict, _signer(tested.check), _record(tested)])
    for check in report.unknown:
        rows.append([code(check.run_id), f"✗ {check.status}", "", text(check.detail)])
    failed = sum(t.check.status != verify.OK for t in report.runs.values()) + len(report.unknown)
    total = len(report.runs) + len(report.unknown)
    if failed:
        verb = "does" if failed == 1 else "do"
        summary = (f"**{failed} of {total} records {verb} not verify**: do not trust their "
                   "numbers until `gitexp verify` passes.")  # fmt: skip
    else:
        summary = (f"All {total} records verify: each was recorded by a commit signed with a key "
                   "this repository trusts, and is unchanged since.")  # fmt: skip
    return [summary, "", table(["run", "verified", "signed by", "record"], rows, [False] * 4)]


def render_report(report: Report) -> str:
    """The whole report, as Markdown."""
    t = report.table
    base = report.baseline
    runs = len(report.runs)
    out = ["## Experiment report", ""]
    out.append(f"{runs} run{'s' if runs != 1 else ''} in {len(t.rows)} row"
               f"{'s' if len(t.rows) != 1 else ''}; the baseline is "
               f"{_row_label(report, base, mark_baseline=False)}.")  # fmt: skip
    doubtful = [t.run.id for t in map(report.runs.get, base.run_ids)
                if t is not None and t.check.status != verify.OK]  # fmt: skip
    if doubtful:
        out += ["", f"⚠️ **The baseline does not verify** ({', '.join(map(code, doubtful))}): "
                "every change below is measured against numbers nobody can vouch for."]  # fmt: skip
    findings = [line for row in t.rows if not row.baseline for line in _finding(report, row)]
    if findings:
        out += ["", "### Findings", ""]
        out += findings[:_FINDINGS_LIMIT]
        if len(findings) > _FINDINGS_LIMIT:
            out.append(f"- and {len(findings) - _FINDINGS_LIMIT} more in the table below")
    if report.differences:
        out += ["", "### What differs from the baseline", ""]
        out += [_axes(report, d) for d in report.differences]
    out += ["", "### Metrics", "", *_metrics(report)]
    for image in report.plots:
        out += ["", f"![{text(image.metric)}]({image.link})"]
    out += ["", "### Runs", ""]
    out.append(table(["run", "name", "status", "tags", "notes"], _tested_rows(report),
                     [False] * 5))  # fmt: skip
    out += ["", "### Verification", "", *_verification(report)]
    out += [
        "",
        f"<sub>gitexp report · runs branch {code(report.branch)} at "
        f"{report.tip[:12]} · read a record with `git show --first-parent COMMIT`</sub>",
    ]
    return "\n".join(out) + "\n"
