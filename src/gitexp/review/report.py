"""`gitexp report`: what a reviewer needs to judge runs, gathered once for any rendering.

The metric table is `gitexp compare`'s (seed groups, deltas, Welch p-values, bootstrap
intervals); the axes each row differs from the baseline on are `gitexp diff`'s; every record's
verdict is `gitexp verify`'s. Nothing here decides anything of its own.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from urllib.parse import urlsplit

from gitexp import axes, catalog, diff, git, store, verify
from gitexp.axes import Change
from gitexp.catalog import RunSummary
from gitexp.comparison import compare
from gitexp.comparison.compare import Row, Table
from gitexp.errors import GitexpError
from gitexp.record import EXPERIMENTS
from gitexp.workspace import Workspace


@dataclass(frozen=True)
class Difference:
    """How one row of the table differs from the baseline row, axis by axis."""

    row: Row
    changes: tuple[Change, ...]
    code_files: tuple[str, ...] = ()

    @property
    def confounded(self) -> bool:
        return len(self.changes) > 1


@dataclass(frozen=True)
class Tested:
    """One run of the report, with its record's verdict and where to read the record."""

    run: RunSummary
    check: verify.Check
    path: str  # the record's folder on the runs branch
    commit: str  # the commit that recorded it (the branch's tip when none is found)
    link: str | None  # a web address of the record, where the remote is a known host


@dataclass(frozen=True)
class Plot:
    metric: str
    path: Path  # where the image was written
    link: str  # how the report links to it


@dataclass(frozen=True)
class Report:
    table: Table
    runs: Mapping[str, Tested]  # by id, in the table's order
    differences: tuple[Difference, ...]  # one per row but the baseline
    branch: str
    tip: str
    plots: tuple[Plot, ...] = ()
    unknown: tuple[verify.Check, ...] = ()  # published copies of runs the branch lacks

    @property
    def baseline(self) -> Row:
        return next(row for row in self.table.rows if row.baseline)

    def as_dict(self) -> dict[str, object]:
        """Everything reported, for `--json`."""
        return {
            "branch": self.branch,
            "tip": self.tip,
            "table": self.table.as_dict(),
            "differences": [
                {
                    "runs": list(d.row.run_ids),
                    "axes": [change.axis for change in d.changes],
                    "confounded": d.confounded,
                }
                for d in self.differences
            ],
            "runs": [
                {
                    "id": t.run.id,
                    "name": t.run.name,
                    "status": t.run.status,
                    "tags": list(t.run.tags),
                    "notes": t.run.notes,
                    "verified": t.check.status,
                    "detail": t.check.detail or t.check.signer,
                    "record": t.path,
                    "commit": t.commit,
                    "link": t.link,
                }
                for t in self.runs.values()
            ],
            "plots": [{"metric": p.metric, "path": str(p.path)} for p in self.plots],
            "unknown": [{"id": c.run_id, "detail": c.detail} for c in self.unknown],
        }


_SLUG_LIMIT = 80
_SCP = re.compile(r"^(?:[^@/]+@)?([A-Za-z0-9.-]+):(?!/)(.+)$")


def web_base(url: str) -> str | None:
    """The web address of a repository a remote URL names (credentials dropped), for https
    remotes and ssh remotes of any host; None for a path or a bundle."""
    url = url.strip()
    scp = _SCP.match(url)
    if scp and "://" not in url:
        host, path = scp.groups()
    else:
        parts = urlsplit(url)
        if parts.scheme not in ("https", "http", "ssh", "git") or not parts.hostname:
            return None
        host, path = parts.hostname, parts.path
        if parts.scheme in ("https", "http") and parts.port:
            host = f"{host}:{parts.port}"
    path = path.strip("/").removesuffix(".git")
    if not path or not re.fullmatch(r"[A-Za-z0-9._~/-]+", path) or ".." in path.split("/"):
        return None
    return f"https://{host}/{path}"


def _remote_base(ws: Workspace) -> str | None:
    """The web address of the remote the runs branch is shared through."""
    tracked = git.run(ws.workdir, "config", "--get", f"branch.{ws.settings.branch}.remote")
    names = [tracked.stdout.strip()] if tracked is not None and tracked.returncode == 0 else []
    listed = git.run(ws.workdir, "remote")
    remotes = listed.stdout.split() if listed is not None and listed.returncode == 0 else []
    names += ["origin"] if "origin" in remotes else remotes[:1] if len(remotes) == 1 else []
    for name in names:
        url = git.run(ws.workdir, "config", "--get", f"remote.{name}.url")
        if url is not None and url.returncode == 0:
            return web_base(url.stdout)
    return None


def _differences(ws: Workspace, table: Table) -> list[Difference]:
    """Each row's axes against the baseline row, as `gitexp diff` counts them between the
    first run of each; seeds are left out between seed groups (they differ by design)."""
    base = next(row for row in table.rows if row.baseline)
    found = []
    for row in table.rows:
        if row.baseline:
            continue
        comparison = diff.compare(ws, base.run_ids[0], row.run_ids[0], find_neighbours=False)
        grouped = len(row.run_ids) > 1 or len(base.run_ids) > 1
        changes = tuple(c for c in comparison.axes if not (grouped and c.axis == axes.SEED_AXIS))
        found.append(Difference(row, changes, comparison.code_files))
    return found


def _slug(metric: str, taken: set[str]) -> str:
    """A file name for a metric's image: safe characters, short enough for any file system."""
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", metric).strip("._")[:_SLUG_LIMIT] or "metric"
    name, n = stem, 1
    while name in taken:
        n += 1
        name = f"{stem}-{n}"
    taken.add(name)
    return name


def _plots(ws: Workspace, table: Table, folder: Path, relative_to: Path) -> list[Plot]:
    """One image per metric of the table, every run's curve on it (seed groups as bands)."""
    from gitexp.comparison import plot

    folder.mkdir(parents=True, exist_ok=True)
    ids = [run_id for row in table.rows for run_id in row.run_ids]
    plots: list[Plot] = []
    taken: set[str] = set()
    for name in dict.fromkeys(metric.name for metric in table.metrics):
        try:
            figure = plot.figure(ws, ids, name)
        except GitexpError:
            continue  # no run drew a curve of it (a metric logged once, in the summary only)
        path = folder / f"{_slug(name, taken)}.png"
        try:
            plot.save_image(figure, path)
        except OSError as e:
            raise GitexpError(f"cannot write {path}: {e.strerror or e}") from None
        link = Path(os.path.relpath(path.resolve(), relative_to.resolve())).as_posix()
        plots.append(Plot(name, path, link))
    return plots


def report(
    ws: Workspace,
    refs: Sequence[str],
    where: Sequence[str] = (),
    baseline: str | None = None,
    metrics: Sequence[str] = (),
    plots: Path | None = None,
    output: Path | None = None,
    progress: catalog.Progress | None = None,
    published: bool = False,
) -> Report:
    """Everything `gitexp report` shows of the runs `refs` and `where` choose; with
    `published`, of the copies published in this work tree, each verified as a copy."""
    if plots is not None:  # before any work: an image needs matplotlib
        from gitexp.comparison.plot import check_image

        check_image(plots / "metric.png")
    if published:
        from gitexp.review import published as copies

        verdicts = copies.verify_here(ws, only_published=True).published
        absent = tuple(check for check in verdicts if check.status == verify.MISSING)
        refs = [*refs, *(check.run_id for check in verdicts if check not in absent)]
        if not refs:
            branch = ws.settings.branch
            raise GitexpError("no copy published in this work tree is of a run on the runs "
                              f"branch; fetch it (`git fetch origin {branch}`)")  # fmt: skip
    runs = compare.select(ws, refs, where, progress)
    table = compare.compare(ws, runs, metrics, baseline, True, progress)
    # The baseline first: a reviewer reads every other row against it.
    table = replace(table, rows=tuple(sorted(table.rows, key=lambda row: not row.baseline)))
    shown = {run.id: run for run in runs}
    for row in table.rows:  # the baseline may be a run neither named nor matched
        for run_id in row.run_ids:
            if run_id not in shown:
                shown[run_id] = catalog.resolve(ws, run_id)
    ordered = [run_id for row in table.rows for run_id in row.run_ids]
    checks = {c.run_id: c for c in verify.verify(ws, ordered).checks}
    if published:  # a copy's verdict is its record's and its own
        checks.update({check.run_id: check for check in verdicts})
    tip = store.tip(ws)
    tip_id = str(tip.id) if tip is not None else ""
    base_url = _remote_base(ws)
    tested = {}
    for run_id in ordered:
        check = checks.get(run_id) or verify.Check(run_id, verify.MISSING, "not verified")
        commit = check.commit or tip_id
        path = f"{EXPERIMENTS}/{run_id}/"
        link = f"{base_url}/tree/{commit}/{path}" if base_url else None
        tested[run_id] = Tested(shown[run_id], check, path, commit, link)
    images: list[Plot] = []
    if plots is not None:
        images = _plots(ws, table, plots, output.parent if output is not None else Path.cwd())
    return Report(table, tested, tuple(_differences(ws, table)), ws.settings.branch, tip_id,
                  tuple(images), absent if published else ())  # fmt: skip
