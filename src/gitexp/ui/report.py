"""`gitexp report --html FILE`: the comparison page and every chosen run's page in one file.

Self-contained: the style sheet is inline, charts are inline SVG, no script, font or image
is fetched, and the page's own policy forbids any request, so it reads the same on a laptop
with the network off, from a CI artifact, or across an air gap.
"""

from __future__ import annotations

import datetime
import sys
from collections.abc import Sequence
from pathlib import Path

from gitexp import catalog
from gitexp.atomic import write_output
from gitexp.ui import html, pages
from gitexp.workspace import Workspace

MAX_RUN_PAGES = 100  # each run's own page, after the comparison of them all


def write(
    ws: Workspace,
    path: Path,
    refs: Sequence[str],
    where: Sequence[str] = (),
    baseline: str | None = None,
    metrics: Sequence[str] = (),
    published: bool = False,
    progress: catalog.Progress | None = None,
) -> int:
    """Write the report on the runs `gitexp report` would choose to `path` (`-`: standard
    output); how many."""
    compared = pages.compare_page(ws, refs, metrics, baseline, where, published, progress)
    ids = list(compared.report.runs)
    runs = [pages.run_page(ws, run_id, compared.verdicts[run_id])
            for run_id in ids[:MAX_RUN_PAGES]]  # fmt: skip
    made = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    links = html.Links(inside=frozenset(ids[:MAX_RUN_PAGES]))
    text = html.render("report.html", links=links, where=ws.workdir.name, compared=compared,
                       runs=runs, made=made, left_out=len(ids) - len(runs))  # fmt: skip
    if str(path) == "-":
        sys.stdout.write(text)
    else:
        write_output(path, text.encode())
    return len(ids)
