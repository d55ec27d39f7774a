"""The `gitexp` command line: parse, hand off to the core, render. Nothing else.

Core modules are imported inside each command so that `gitexp --help` stays fast.
"""

from __future__ import annotations

import errno
import os
import shlex
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from gitexp import __version__
from gitexp.errors import GitexpError, crash_log

if TYPE_CHECKING:
    from gitexp import data
    from gitexp.explain.plan import Plan, Planned
    from gitexp.workspace import Workspace

_SHOWN_DIFFERENCES = 20  # environment values `reproduce` lists before it counts the rest
_STATUSES = ("running", "succeeded", "failed", "interrupted", "crashed")
# Failures of the disk rather than of gitexp: said in one line, with what to do.
_STORAGE_ERRORS = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS, errno.EACCES, errno.EIO)


class _Group(click.Group):
    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except GitexpError as e:
            error = click.ClickException(str(e))
            error.exit_code = e.exit_code  # type: ignore[misc]
            raise error from None
        except (click.exceptions.Exit, click.ClickException, click.Abort):
            raise
        except KeyboardInterrupt:
            raise click.Abort() from None
        except OSError as e:
            if e.errno not in _STORAGE_ERRORS:
                raise _unexpected(e) from None
            # A full disk, a read-only .git: the system's own words and where.
            where = f" ({e.filename})" if e.filename else ""
            raise click.ClickException(
                f"{e.strerror or e}{where}; free some space or fix the permissions, then try "
                "again (`gitexp recover` records any run this left behind)"
            ) from None
        except ModuleNotFoundError as e:
            # A dependency missing from a broken install (DVC, say): say which, not a traceback.
            raise click.ClickException(
                f"the Python package {(e.name or '?').split('.')[0]!r} that gitexp needs is not "
                "installed here; reinstall gitexp with its dependencies (`pip install gitexp`)"
            ) from None
        except Exception as e:
            raise _unexpected(e) from None


def _unexpected(error: Exception) -> click.ClickException:
    log = crash_log(error)
    return click.ClickException(
        f"unexpected {type(error).__name__}: {error}; the details are in {log}, "
        "please attach it to a bug report"
    )


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="gitexp")
def cli() -> None:
    """A git-native experiment tracker: every run is a plain-text commit."""


@cli.command()
@click.option(
    "--remote",
    type=click.Path(file_okay=False, path_type=Path),
    help="A directory to use as the DVC remote (for air-gapped clusters, a shared disk).",
)
def init(remote: Path | None) -> None:
    """Set up this repository: settings file, runs branch, DVC with a local cache."""
    from gitexp import setup, workspace

    ws = workspace.open_workspace()
    done = setup.prepare(ws, remote)
    for path in done.created:
        click.echo(f"created {path}")
    for path in done.changed:
        click.echo(f"updated {path}")
    if done.remote:
        click.echo(f"DVC remote {setup.REMOTE_NAME!r} -> {done.remote} (the default remote)")
    click.echo(f"runs are recorded on {ws.settings.branch}; commit the files above to share them")


@cli.command(context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False})
@click.option("--name", help="A name to find the run by.")
@click.option("--tag", "tags", multiple=True, help="A tag; repeat for more.")
@click.option("--notes", help="Why this run exists.")
@click.option(
    "--config",
    "config_files",
    multiple=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="A YAML, JSON or TOML config file to record; repeat to merge several.",
)
@click.option(
    "-p",
    "--param",
    "params",
    multiple=True,
    metavar="KEY=VALUE",
    help="Set a config value, typed as YAML (-p optim.lr=0.1); repeatable.",
)
@click.option(
    "--seed",
    type=click.IntRange(0, 2**32 - 1),
    help="Export as GITEXP_SEED and PYTHONHASHSEED; recorded.",
)
@click.option("--require-clean", is_flag=True, help="Refuse to run on uncommitted changes.")
@click.option(
    "--data",
    "datasets",
    multiple=True,
    metavar="PATH",
    help="A dataset the run reads, pinned by DVC; repeatable. Default: every "
    "DVC-tracked path (or `data:` in .gitexp.yaml).",
)
@click.option(
    "--output",
    "outputs",
    multiple=True,
    metavar="PATH",
    help="A file or folder the command writes: stored in the DVC cache and recorded as an "
    "artifact when it ends; repeatable.",
)
@click.option(
    "--allow-unpinned-data",
    is_flag=True,
    help="Run on data that differs from its DVC pointer (or that DVC does not "
    "track): hash it into the DVC cache and record the new md5.",
)
@click.option(
    "--no-system-metrics",
    "system_metrics",
    is_flag=True,
    flag_value=False,
    default=True,
    help="Do not sample CPU, memory and GPUs into system/… metrics (every 5 s by default).",
)
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
@click.pass_context
def run(
    ctx: click.Context,
    name: str | None,
    tags: tuple[str, ...],
    notes: str | None,
    config_files: tuple[Path, ...],
    params: tuple[str, ...],
    seed: int | None,
    require_clean: bool,
    datasets: tuple[str, ...],
    allow_unpinned_data: bool,
    outputs: tuple[str, ...],
    system_metrics: bool,
    command: tuple[str, ...],
) -> None:
    """Run COMMAND as a tracked run and exit with its status: gitexp run -- python train.py"""
    from gitexp import launch, runner, workspace

    ws = workspace.open_workspace()
    request = launch.RunRequest(
        command=command,
        name=name,
        notes=notes,
        tags=tags,
        config_files=config_files,
        params=params,
        seed=seed,
        require_clean=require_clean,
        data=datasets or None,
        allow_unpinned_data=allow_unpinned_data,
        outputs=outputs,
        system_metrics=system_metrics,
    )
    result = runner.run(ws, request, Path.cwd())
    for path in result.missing_outputs:
        click.echo(
            f"gitexp: --output {path} was not written by the command; not recorded", err=True
        )
    if result.kept is not None:  # the command's own status still goes to the scheduler
        click.echo(f"Error: {result.kept}", err=True)
    else:
        click.echo(
            f"gitexp: run {result.run_id} {result.status}, recorded on {ws.settings.branch}",
            err=True,
        )
    ctx.exit(result.exit_status)


@cli.command("log")
@click.option(
    "--status",
    "statuses",
    multiple=True,
    type=click.Choice(_STATUSES),
    help="Only runs with this status; repeatable.",
)
@click.option("--tag", "tags", multiple=True, help="Only runs with this tag; repeatable.")
@click.option("--name", help="Only runs with this name.")
@click.option("-n", "--max-count", type=click.IntRange(min=1), help="Show at most N runs.")
@click.option(
    "--verified",
    is_flag=True,
    help="Only runs whose record, tags and notes verify: made by commits signed by a trusted "
    "key (slower: checks signatures, as `gitexp verify` does).",
)
@click.option(
    "-w",
    "--where",
    "wheres",
    multiple=True,
    metavar="KEY OP VALUE",
    help="Only runs where this holds, OP one of = != < <= > >=: config.optim.lr<=1e-3, "
    "summary.val/acc.last>0.9, status=failed, tag=best, code.branch=main, "
    "started>2026-01-01; repeat for more (all must hold).",
)
@click.option(
    "-c",
    "--columns",
    "column_texts",
    multiple=True,
    metavar="KEY,…",
    help="Show these columns: config.KEY, summary.METRIC.AGG (or METRIC.AGG; AGG: last, min, "
    "max, …) and record fields (status, name, started, duration, tags, code.branch, …).",
)
@click.option(
    "-s",
    "--sort",
    "sorts",
    multiple=True,
    metavar="[-]KEY",
    help="Sort by KEY (any column key), -KEY for descending; repeat to break ties. Runs "
    "without a value come last.",
)
@click.option("--all", "every", is_flag=True, help="Also list archived runs (`gitexp archive`).")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array for scripts.")
@click.option("--csv", "as_csv", is_flag=True, help="Print CSV, a header line first.")
def log_(
    statuses: tuple[str, ...],
    tags: tuple[str, ...],
    name: str | None,
    max_count: int | None,
    verified: bool,
    wheres: tuple[str, ...],
    column_texts: tuple[str, ...],
    sorts: tuple[str, ...],
    every: bool,
    as_json: bool,
    as_csv: bool,
) -> None:
    """List runs, newest first; archived runs only with --all."""
    from gitexp import catalog, cells, history, listing, workspace
    from gitexp.comparison import table

    if as_json and as_csv:
        raise click.UsageError("give --json or --csv, not both")
    keys = table.columns(column_texts) if column_texts else None
    if keys is not None and table.Key("field", "id") not in keys:
        keys.insert(0, table.Key("field", "id"))  # a row must say which run it is
    where, order = table.parse_where(wheres), table.parse_sort(sorts)
    ws = workspace.open_workspace()
    with listing.indexing_progress() as progress:
        if keys is None and not (where.conditions or order or verified or as_csv):
            # The plain listing: runs read brief, or as the JSON lines the index keeps.
            query = catalog.RunQuery(statuses, tags, name, limit=max_count, archived=every)
            pick = history.json_lines if as_json else history.briefs
            found: Sequence[Any] = pick(ws, query, progress)
        else:
            # Live runs are not signed yet: --verified leaves them out.
            limit = None if verified else max_count
            found = table.select(ws, where, order, limit, every, progress, not verified,
                                 statuses, tags, name)  # fmt: skip
    if verified:
        from gitexp import verify

        trusted = verify.trusted_annotations(ws, [run.id for run in found])
        found = [run for run in found if run.id in trusted][:max_count]
    if keys is not None or order:

        def all_runs() -> list[Any]:
            return history.runs(ws, live=False)

        table.check_known("--columns", keys or [], found, all_runs)
        table.check_known("--sort", [key.key for key in order], found, all_runs)
    for run in found:
        if run.status == "invalid":
            click.echo(f"warning: {listing.unreadable(run.id, run.problem)}", err=True)
    if as_json:
        click.echo(listing.runs_json(found) if keys is None else listing.columns_json(found, keys))
    elif as_csv:
        click.echo(listing.runs_csv(found, keys), nl=False)
    elif found:
        colours = listing.colour_system()
        if keys is None:
            rows = [run if isinstance(run, cells.Cells) else cells.of(run) for run in found]
            click.echo(listing.runs_table(rows, colours))
        else:
            click.echo(listing.columns_table(found, keys, colours))
    elif statuses or tags or name or verified or wheres:
        hidden = "" if every else "; archived runs are hidden unless --all"
        click.echo(f"no run matches; `gitexp log` with no filter lists every run{hidden}", err=True)
    else:
        click.echo("no runs yet; record one with `gitexp run -- python train.py`", err=True)
    waiting = len(history.unrecorded(ws))
    if waiting:  # not running, so not listed: but not to be forgotten either
        runs, them = ("1 run has", "it") if waiting == 1 else (f"{waiting} runs have", "them")
        click.echo(
            f"note: {runs} ended without being recorded; `gitexp recover` records {them} or "
            "says why it cannot",
            err=True,
        )


cli.add_command(log_, "ls")


@cli.command()
@click.argument("run_id")
@click.option("--json", "as_json", is_flag=True, help="Print the record as one JSON object.")
def show(run_id: str, as_json: bool) -> None:
    """Show one run's record: RUN_ID may be a prefix, the random suffix, a name, @ or @~N."""
    from gitexp import history, listing, render, workspace

    ws = workspace.open_workspace()
    with listing.indexing_progress() as progress:
        record = history.load(ws, run_id, progress)
    if as_json:
        for chunk in render.record_json(record):
            click.echo(chunk, nl=False)
    else:
        render.console().print(render.record_view(record))


@cli.command()
@click.argument("run_a")
@click.argument("run_b")
@click.option(
    "--axis",
    "axis_names",
    multiple=True,
    metavar="AXIS",
    help="Show only this axis: code, env, seed, config.KEY, data.PATH, a group from "
    ".gitexp.yaml, or a pattern such as 'optim.*'; repeatable.",
)
@click.option("--force", is_flag=True, help="Print the diff even when the runs differ on "
              "more than one axis, under a 'confounded' warning.")  # fmt: skip
@click.option("--stat", is_flag=True, help="Show a summary of changed files, as git does.")
@click.option("--name-only", is_flag=True, help="Show only the names of changed files.")
@click.option("--json", "as_json", is_flag=True, help="Print the axes and their values as JSON.")
@click.option(
    "--color",
    type=click.Choice(["auto", "always", "never"]),
    default="auto",
    help="Colour the diff: always, never, or on a terminal (the default).",
)
@click.option("--no-pager", is_flag=True, help="Do not pipe the diff into a pager.")
def diff(
    run_a: str,
    run_b: str,
    axis_names: tuple[str, ...],
    force: bool,
    stat: bool,
    name_only: bool,
    as_json: bool,
    color: str,
    no_pager: bool,
) -> None:
    """Show how run B differs from run A, as a git diff; refuse if more than one axis differs."""
    from gitexp import diff as diffs
    from gitexp import listing, pager, render, workspace
    from gitexp.errors import Refused

    ws = workspace.open_workspace()
    with listing.indexing_progress() as progress:
        comparison = diffs.compare(ws, run_a, run_b, progress)
    if comparison.confounded and not force and not as_json:
        raise Refused(render.refusal(comparison))
    from gitexp.comparison.outcomes import outcomes

    outcome = outcomes(ws, comparison.a.run_id, comparison.b.run_id)
    if as_json:
        click.echo(render.comparison_json(comparison, outcome))
        return
    # What the change did, after what changed: each metric, and whether beyond seed noise.
    head = render.diff_preamble(comparison)
    head += "\n" + render.outcomes_text(outcome) if outcome.metrics else ""
    for warning in render.diff_warnings(comparison):
        click.echo(f"warning: {warning}", err=True)
    shown = diffs.selected(comparison, axis_names)
    if axis_names and not shown:
        click.echo(f"warning: no differing axis matches {', '.join(axis_names)}", err=True)
    patches = diffs.patches(ws, comparison, shown)
    terminal = sys.stdout.isatty()
    if name_only:
        output = "".join(f"{patch.path}\n" for patch in patches).encode()
    elif stat:
        output = (head + render.diffstat(patches)).encode()
    else:
        body = b"".join(patch.data for patch in patches)
        if terminal:
            body = render.safe_patch(body)
        colour = color == "always" or (color == "auto" and terminal and _colour_wanted())
        if colour:
            body = render.colour_patch(body)
        output = head.encode() + (b"\n" + body if body else b"")
    pager.write(output, pager.command(ws.repo) if terminal and not no_pager else None)


def _colour_wanted() -> bool:
    return "NO_COLOR" not in os.environ and os.environ.get("TERM") != "dumb"


@cli.command()
@click.argument("run_ids", nargs=-1)
@click.option("--all", "every", is_flag=True, help="Verify every run (the default with no ID).")
@click.option(
    "--ref",
    "rev",
    metavar="REV",
    help="Verify the runs of this commit or branch instead of the runs branch (in CI: the "
    "pull request's head).",
)
@click.option(
    "--base",
    metavar="REV",
    help="A commit the runs must have grown from, each of its runs still there unchanged "
    "(in CI: the branch the pull request targets).",
)
@click.option(
    "--published",
    is_flag=True,
    help="Only the copies `gitexp publish` put in this work tree's experiments/, each checked "
    "against the signed record it copies (in CI: a code pull request).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the verdicts as JSON, for CI.")
def verify(
    run_ids: tuple[str, ...],
    every: bool,
    rev: str | None,
    base: str | None,
    published: bool,
    as_json: bool,
) -> None:
    """Check that each run was recorded by a commit signed by a trusted key, unchanged since,
    and that each copy published in this work tree is byte for byte its record."""
    from gitexp import verdicts, workspace
    from gitexp.errors import VerificationFailed
    from gitexp.review import published as copies

    if every and run_ids:
        raise click.UsageError("give run ids or --all, not both")
    if published and (run_ids or every or rev or base):
        raise click.UsageError("--published verifies every published copy: give no run ids, "
                               "--all, --ref or --base with it")  # fmt: skip
    report = copies.verify_here(workspace.open_workspace(), run_ids, rev, base, published)
    if published and not report.published:
        click.echo(f"{_NOTHING_PUBLISHED}: nothing to verify", err=True)
        return
    if as_json:
        click.echo(verdicts.as_json_text(report))
    else:
        click.echo(verdicts.lines(report))
    if not report.ok:
        raise VerificationFailed(verdicts.summary(report))
    if not as_json:
        click.echo(verdicts.summary(report), err=True)


_NOTHING_PUBLISHED = "no run is published in this work tree's experiments/"


def _annotate(run_id: str, **change: Any) -> None:
    from gitexp import annotation, workspace

    found, now = annotation.annotate(workspace.open_workspace(), run_id, **change)
    tags = ", ".join(now.tags) or "none"
    notes = f"{len(now.notes)} note{'s' if len(now.notes) != 1 else ''}"
    click.echo(f"run {found}: tags {tags}; {notes}")


@cli.command()
@click.argument("run_id")
@click.argument("tags", nargs=-1, required=True)
@click.option("--remove", is_flag=True, help="Remove these tags instead of adding them.")
def tag(run_id: str, tags: tuple[str, ...], remove: bool) -> None:
    """Add TAGS to a finished run (in annotations.yaml, a new signed commit)."""
    _annotate(run_id, **({"remove_tags": tags} if remove else {"add_tags": tags}))


@cli.command()
@click.argument("run_id")
@click.argument("text")
@click.option("--remove", is_flag=True, help="Remove the note with exactly this text.")
def note(run_id: str, text: str, remove: bool) -> None:
    """Add a note to a finished run (in annotations.yaml, a new signed commit)."""
    _annotate(run_id, **({"remove_note": text} if remove else {"add_note": text}))


def _archive(run_ids: tuple[str, ...], archive: bool) -> None:
    from gitexp import annotation, history, workspace

    ws = workspace.open_workspace()
    done = "archived" if archive else "unarchived"
    for ref in run_ids:
        run = history.resolve(ws, ref)
        if run.archived == archive:  # nothing to commit
            click.echo(f"run {run.id} was {done} already")
            continue
        found, _ = annotation.annotate(ws, run.id, archive=archive)
        click.echo(f"{done} run {found}")


@cli.command()
@click.argument("run_ids", metavar="ID...", nargs=-1, required=True)
def archive(run_ids: tuple[str, ...]) -> None:
    """Hide runs from `gitexp log` (`log --all` still lists them); their records stay."""
    _archive(run_ids, True)


@cli.command()
@click.argument("run_ids", metavar="ID...", nargs=-1, required=True)
def unarchive(run_ids: tuple[str, ...]) -> None:
    """List archived runs in `gitexp log` again."""
    _archive(run_ids, False)


@cli.command()
@click.argument("run_id")
@click.argument("paths", nargs=-1)
@click.option("--data", "with_data", is_flag=True, help="Only the datasets the run read.")
@click.option("--artifacts", "with_artifacts", is_flag=True, help="Only what the run made.")
@click.option("--code", "code_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Write the run's exact code (its snapshot: commit and uncommitted changes) "
              "into this new folder instead; your working tree is not touched.")  # fmt: skip
def checkout(
    run_id: str, paths: tuple[str, ...], with_data: bool, with_artifacts: bool,
    code_dir: Path | None,
) -> None:  # fmt: skip
    """Restore a run's datasets and artifacts (or only PATHS) byte for byte; with --code DIR,
    its code."""
    from gitexp import history, restore, workspace

    ws = workspace.open_workspace()
    if code_dir is not None:
        if paths or with_data or with_artifacts:
            raise click.UsageError("--code writes only the code: give no PATHS, --data or "
                                   "--artifacts with it")  # fmt: skip
        from gitexp.replay import code

        record = history.load(ws, run_id)
        snapshot = code.materialise(ws, record, code_dir)
        click.echo(f"wrote the code of run {record.summary.id} (snapshot {snapshot[:12]}) "
                   f"into {code_dir}")  # fmt: skip
        return
    both = not (with_data or with_artifacts)
    done = restore.checkout(ws, run_id, with_data or both, with_artifacts or both, paths,
                            Path.cwd())  # fmt: skip
    for item in done:
        kept = f"; its previous content is in the DVC cache as {item.previous_md5}"
        click.echo(f"restored {item.path} (md5 {item.md5[:8]}){kept if item.previous_md5 else ''}")
    if not done:
        click.echo("nothing to restore: every path already holds the run's version")


def _objects(moved: data.Moved | None, new: str) -> str:
    """What a push or pull says of the DVC objects it moved."""
    if moved is None:
        return (
            "; no DVC remote is configured, so the data and artifacts the runs name stayed "
            "behind (`dvc remote add -d NAME PATH` to share them)"
        )
    return f", {moved.objects} {new}DVC objects"


@cli.command()
@click.argument("remote", default="origin")
def push(remote: str) -> None:
    """Send the runs branch to a git REMOTE and the data it names to the DVC remote; to a
    FILE.gxb, write a bundle instead (`gitexp bundle create`)."""
    from gitexp import workspace
    from gitexp.sharing import bundle as bundles
    from gitexp.sharing import remote as sharing

    ws = workspace.open_workspace()
    if remote.endswith(bundles.SUFFIX):
        _bundle_create(ws, Path(remote), None)
        return
    done = sharing.push(ws, remote)
    click.echo(f"pushed {done.runs} runs to {remote}{_objects(done.objects, 'new ')}")


@cli.command()
@click.argument("remote", default="origin")
@click.option(
    "--unverified",
    is_flag=True,
    help="From a bundle file: import runs that do not verify, as `bundle import`.",
)
def pull(remote: str, unverified: bool) -> None:
    """Merge the runs branch of a git REMOTE into ours and fetch the data it names; from a
    gitexp bundle file, import it (`gitexp bundle import`)."""
    from gitexp import workspace
    from gitexp.sharing import bundle as bundles
    from gitexp.sharing import remote as sharing

    ws = workspace.open_workspace()
    if Path(remote).is_file() and bundles.is_bundle(Path(remote)):
        _bundle_import(ws, Path(remote), unverified)
        return
    done = sharing.pull(ws, remote)
    click.echo(f"pulled {done.runs} new runs from {remote}{_objects(done.objects, '')}")
    _warn_kept(done.kept, remote)
    missing = done.objects.missing if done.objects is not None else ()
    if missing:
        assert done.objects is not None
        raise GitexpError(
            f"the DVC remote ({done.objects.remote}) lacks {len(missing)} data objects the "
            f"runs name, and so does the DVC cache here (first: {missing[0]}); `gitexp push` "
            "them from the machine that made the runs, or check `dvc remote list`"
        )


@cli.command()
def recover() -> None:
    """Commit runs left behind: killed ones as `crashed`, others with their own outcome."""
    from gitexp import pending, workspace

    failed: dict[str, str] = {}
    recovered = pending.recover(workspace.open_workspace(), failed)
    for run_id, status in recovered.items():
        click.echo(f"recovered run {run_id} as {status}")
    for run_id, reason in failed.items():
        click.echo(f"could not record run {run_id}: {reason}", err=True)
    if failed:
        raise GitexpError(f"{len(failed)} runs are kept for a later `gitexp recover`")
    if not recovered:
        click.echo("nothing to recover")


def _where_option(verb: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """`-w/--where` of the commands that choose runs as `gitexp log --where` does."""
    return click.option(
        "-w",
        "--where",
        "conditions",
        multiple=True,
        metavar="KEY OP VALUE",
        help=f"Also {verb} the runs this keeps (as `gitexp log --where`); repeatable.",
    )


def _tolerance(name: str, kind: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """--rtol / --atol of `reproduce`: how far a metric may move and still reproduce."""
    return click.option(f"--{name}", type=click.FloatRange(min=0), default=0.0,
                        show_default=True, help=f"{kind} tolerance for each metric.")  # fmt: skip


@cli.command()
@click.argument("run_id")
@_tolerance("rtol", "Relative")
@_tolerance("atol", "Absolute")
@click.option(
    "--strict-env",
    is_flag=True,
    help="Refuse (exit 3) when this machine's environment differs from the record's.",
)
@click.option(
    "--yes", is_flag=True, help="Run a record that does not verify without asking (for scripts)."
)
def reproduce(run_id: str, rtol: float, atol: float, strict_env: bool, yes: bool) -> None:
    """Run RUN_ID again on its exact code, data, config and seeds, and compare its metrics
    (exact by default); exit 5 when it does not reproduce."""
    from gitexp import listing, workspace
    from gitexp.errors import NotReproduced, Refused
    from gitexp.reader import terminal_safe as safe
    from gitexp.replay import reproduce as replay

    ws = workspace.open_workspace()
    plan = replay.plan(ws, run_id)
    original = plan.record.summary.id
    _consent(ws, original, plan.command, yes)
    for note in plan.notes:
        click.echo(f"gitexp: {safe(note)}", err=True)
    if plan.environment:
        click.echo("this machine differs from the record's environment:", err=True)
        for key, recorded, here in plan.environment[:_SHOWN_DIFFERENCES]:
            click.echo(f"  {safe(key)}: {safe(str(recorded))} -> {safe(str(here))}", err=True)
        more = len(plan.environment) - _SHOWN_DIFFERENCES
        if more > 0:
            click.echo(f"  … and {more} more (`gitexp diff` of the two runs lists them all)",
                       err=True)  # fmt: skip
        if strict_env:
            raise Refused(f"{len(plan.environment)} environment values differ from run "
                          f"{original}'s; match them, or drop --strict-env")  # fmt: skip
    outcome = replay.run(ws, plan, rtol, atol)
    rows = replay.summary_text(outcome.metrics)
    if rows:
        click.echo(listing.layout(["metric", "original", "reproduction", ""],
                                  [list(c) for c in zip(*rows, strict=True)], set()))  # fmt: skip
    for key in outcome.config_changes:
        click.echo(f"config.{safe(key)} differs from the original's", err=True)
    if outcome.failure is not None:
        raise NotReproduced(f"run {outcome.run_id} does not reproduce run {original}: "
                            f"{safe(outcome.failure)}")  # fmt: skip
    tolerance = "exactly" if rtol == atol == 0 else f"within rtol={rtol:g}, atol={atol:g}"
    click.echo(f"run {outcome.run_id} reproduces run {original}: every metric {tolerance}")


@cli.command()
@click.argument("run_id")
@click.option("-p", "--param", "changes", multiple=True, required=True, metavar="KEY=VALUE",
              help="The change: an option of the command (`lr=0.01` for `--lr`), or a config "
              "key as `gitexp run -p` sets it; repeatable.")  # fmt: skip
@click.option(
    "--yes", is_flag=True, help="Run a record that does not verify without asking (for scripts)."
)
@click.pass_context
def rerun(ctx: click.Context, run_id: str, changes: tuple[str, ...], yes: bool) -> None:
    """Run RUN_ID's command again on its exact code, data and seeds, with one change: a new
    run, linked to it (rerun_of). Exits with the command's own status."""
    from gitexp import workspace
    from gitexp.reader import terminal_safe as safe
    from gitexp.replay import reproduce as replay

    ws = workspace.open_workspace()
    plan = replay.plan(ws, run_id)
    change = replay.changed(ws, plan, changes)
    _consent(ws, plan.record.summary.id, change.command, yes)
    for note in (*plan.notes, *change.notes):
        click.echo(f"gitexp: {safe(note)}", err=True)
    done = replay.rerun(ws, plan, change)
    changed = ", ".join(f"config.{safe(key)}" for key in done.config_changes)
    click.echo(f"gitexp: run {done.run_id} {done.status}: run {done.original} with "
               f"{safe(' '.join(changes))}; changed {changed or 'nothing in its config'}",
               err=True)  # fmt: skip
    if not done.config_changes:
        click.echo("gitexp: warning: the change did not reach the script's config; check "
                   "the KEY against `gitexp show` of the run", err=True)  # fmt: skip
    ctx.exit(done.exit_status)


def _consent(ws: Workspace, run_id: str, command: Sequence[str], yes: bool) -> None:
    """Run a record's command only if it verifies, or its reader agrees."""
    from gitexp.errors import Refused
    from gitexp.reader import terminal_safe as safe
    from gitexp.replay import reproduce as replay

    doubt = replay.distrust(ws, run_id)
    if doubt is None or yes:
        return
    shown = safe(shlex.join(command))
    if not sys.stdin.isatty():
        raise Refused(f"run {run_id} does not verify ({safe(doubt)}); it would run "
                      f"`{shown}`: read it, then pass --yes to run it")  # fmt: skip
    click.echo(f"run {run_id} does not verify ({safe(doubt)}).", err=True)
    if not click.confirm(f"Run `{shown}` from it?", err=True):
        raise click.Abort()


@cli.group()
def bundle() -> None:
    """Carry runs, their code and their data across an air gap in one file."""


@bundle.command("create")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--runs",
    "named",
    multiple=True,
    metavar="ID",
    help="Carry the data of this run; repeatable. Every run's record travels.",
)
@click.option("--since", metavar="DATE", help="Carry the data of runs started since DATE.")
@_where_option("carry the data of")
def bundle_create(file: Path, named: tuple[str, ...], since: str | None,
                  conditions: tuple[str, ...]) -> None:  # fmt: skip
    """Write FILE: the runs branch (every record and its code) and the DVC objects the runs
    name (all, or those --runs/--since/--where choose)."""
    from gitexp import workspace
    from gitexp.sharing import bundle as bundles

    ws = workspace.open_workspace()
    _bundle_create(ws, file, bundles.choose(ws, named, since, conditions))


def _bundle_create(ws: Workspace, file: Path, chosen: list[str] | None) -> None:
    from gitexp import listing
    from gitexp.sharing import bundle as bundles

    with listing.progress_bar("writing the bundle") as progress:
        made = bundles.create(ws, file, chosen, progress)
    click.echo(f"bundled {made.runs} runs into {file} ({made.size / 1e6:.1f} MB), with the data "
               f"of {made.with_data}: {made.objects} DVC objects")  # fmt: skip
    if made.missing:
        click.echo(f"warning: {len(made.missing)} DVC objects the runs name are not in the local "
                   f"DVC cache and stayed behind (first: {made.missing[0]}); `dvc pull` them, "
                   "then bundle again", err=True)  # fmt: skip


@bundle.command("import")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--unverified",
    is_flag=True,
    help="Import runs that do not verify (not signed by a key git trusts).",
)
def bundle_import(file: Path, unverified: bool) -> None:
    """Merge the runs of a bundle FILE into the runs branch and its data into the DVC cache,
    once every file in it checks out and its new runs verify."""
    from gitexp import workspace

    _bundle_import(workspace.open_workspace(), file, unverified)


def _bundle_import(ws: Workspace, file: Path, unverified: bool) -> None:
    from gitexp import listing
    from gitexp.sharing import bundle as bundles

    with listing.progress_bar("reading the bundle") as progress:
        done = bundles.import_(ws, file, unverified, progress)
    click.echo(f"imported {len(done.runs)} new runs from {file} ({done.known} were here "
               f"already), {done.objects} new DVC objects ({done.objects_known} were in the "
               "cache already)")  # fmt: skip
    _warn_kept(done.kept, str(file))


def _warn_kept(kept: Sequence[str], source: str) -> None:
    """Runs whose record differs on the other side: a record never changes, so ours stayed."""
    for run_id in kept:
        click.echo(f"warning: run {run_id} differs in {source} beyond its tags and notes; "
                   "this repository's record was kept (`gitexp verify` shows which is signed "
                   "as made)", err=True)  # fmt: skip


@cli.command()
@click.argument("run_ids", nargs=-1)
@_where_option("draw")
@click.option("-m", "--metric", required=True, help="The metric to draw, as logged (train/loss).")
@click.option(
    "--smooth",
    type=click.IntRange(1, 100_000),
    default=1,
    metavar="N",
    help="Draw the moving average of the last N logged values (trailing window).",
)
@click.option("--logy", is_flag=True, help="A logarithmic y axis (values <= 0 are left out).")
@click.option(
    "--steps",
    "step_range",
    metavar="FIRST:LAST",
    help="Only these steps, both ends included: 100:500, :500 or 100:.",
)
@click.option(
    "--separate", is_flag=True, help="Draw each run of a seed group, not their mean and band."
)
@click.option(
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write a .png or .svg image instead (needs `pip install 'gitexp[plot]'`).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the curves' points as JSON.")
def plot(
    run_ids: tuple[str, ...],
    conditions: tuple[str, ...],
    metric: str,
    smooth: int,
    logy: bool,
    step_range: str | None,
    separate: bool,
    output: Path | None,
    as_json: bool,
) -> None:
    """Draw METRIC for each run; runs that differ only by seed as a mean and a ±1 sd band."""
    import shutil

    from gitexp import listing, workspace
    from gitexp.comparison import compare as comparing
    from gitexp.comparison import plot as plots

    if not run_ids and not conditions:
        raise click.UsageError("name the runs to draw, or choose them with --where")

    try:
        steps = plots.parse_steps(step_range) if step_range else plots.StepRange()
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="--steps") from None
    if output is not None:
        plots.check_image(output)
    width, height = shutil.get_terminal_size()
    ws = workspace.open_workspace()
    with listing.indexing_progress() as progress:
        chosen = [run.id for run in comparing.select(ws, run_ids, conditions, progress)]
        points = plots.MAX_POINTS if output or as_json else max(width * 2, 20)
        fig = plots.figure(ws, chosen, metric, smooth=smooth, steps=steps, logy=logy,
                           separate=separate, points=points, progress=progress)  # fmt: skip
    for warning in fig.warnings:
        click.echo(f"warning: {warning}", err=True)
    if as_json:
        click.echo(fig.as_json())
    elif output is not None:
        plots.save_image(fig, output)
        click.echo(f"wrote {output}", err=True)
    else:
        colour = sys.stdout.isatty() and _colour_wanted()
        click.echo(plots.terminal(fig, width, min(max(height - 3, 12), 40), colour))


@cli.command()
@click.option(
    "--interval",
    type=click.FloatRange(0.1, 3600),
    default=2.0,
    show_default=True,
    help="Seconds between refreshes.",
)
@click.option(
    "-m", "--metric", "metrics", multiple=True, help="A metric to show; repeatable (default: "
    "the first four by name)."
)  # fmt: skip
@click.option("--once", is_flag=True, help="Print the table once and exit.")
@click.option("--json", "as_json", is_flag=True, help="Print the running runs once, as JSON.")
def watch(interval: float, metrics: tuple[str, ...], once: bool, as_json: bool) -> None:
    """Show the running runs in a table refreshed in place, until they end or Ctrl-C."""
    import json
    import time

    from rich.live import Live

    from gitexp import render, workspace
    from gitexp import watch as watching

    watcher = watching.Watcher(workspace.open_workspace(), metrics)
    runs = watcher.poll()
    if as_json:
        click.echo(json.dumps([run.as_dict() for run in runs], indent=2))
        return
    if not runs:
        click.echo("no run is running; start one with `gitexp run -- python train.py`", err=True)
        return
    out = render.console()
    if once:
        out.print(render.watch_table(runs))
        return
    try:
        with Live(render.watch_table(runs), console=out, auto_refresh=False) as live:
            count = f"{len(runs)} running run{'s' if len(runs) != 1 else ''}"
            click.echo(f"watching {count}; Ctrl-C to stop", err=True)
            while True:
                time.sleep(interval)
                runs = watcher.poll()
                if not runs:
                    break  # the last table stays on screen
                live.update(render.watch_table(runs), refresh=True)
    except KeyboardInterrupt:
        return  # Ctrl-C is how one stops watching: not an error
    click.echo("no run is running any more", err=True)


# `-m` of compare and ablate: which metrics, and which aggregate of each.
_METRICS = click.option(
    "-m",
    "--metric",
    "metrics",
    multiple=True,
    metavar="METRIC[.AGG]",
    help="A metric to show (its last value, or .min/.max); repeatable. Default: all.",
)


@cli.command()
@click.argument("run_ids", nargs=-1)
@_where_option("compare")
@_METRICS
@click.option(
    "--baseline",
    metavar="RUN",
    help="Show each row's change against this run's row (default: the first that succeeded).",
)
@click.option(
    "--group-seeds/--no-group-seeds",
    default=True,
    show_default=True,
    help="One row per seed group (runs identical but for seed), as mean ± sd.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the table as JSON.")
@click.option("--csv", "as_csv", is_flag=True, help="Print the table as CSV.")
@click.option("--markdown", is_flag=True, help="Print the table as Markdown, for a pull request.")
def compare(
    run_ids: tuple[str, ...],
    conditions: tuple[str, ...],
    metrics: tuple[str, ...],
    baseline: str | None,
    group_seeds: bool,
    as_json: bool,
    as_csv: bool,
    markdown: bool,
) -> None:
    """Compare runs side by side: the config keys that differ, metrics, seed statistics.

    RUN_IDS name runs as `show` does; with none and no --where, every run is compared."""
    from gitexp import jsontext, listing, render, workspace
    from gitexp.comparison import compare as comparing

    if as_json + as_csv + markdown > 1:
        raise click.UsageError("choose one of --json, --csv and --markdown")
    ws = workspace.open_workspace()
    with listing.indexing_progress() as progress:
        runs = comparing.select(ws, run_ids, conditions, progress)
        table = comparing.compare(ws, runs, metrics, baseline, group_seeds, progress)
    if as_json:
        click.echo(jsontext.as_json(table.as_dict()))
    elif as_csv:
        click.echo(render.compare_csv(table), nl=False)
    elif markdown:
        click.echo(render.compare_markdown(table), nl=False)
    else:
        render.console().print(render.compare_view(table))


@cli.command()
@click.argument("run_ids", nargs=-1)
@_where_option("report on")
@_METRICS
@click.option("--baseline", metavar="RUN",
              help="The row every other is measured against (default: the first that "
              "succeeded).")  # fmt: skip
@click.option(
    "--published",
    is_flag=True,
    help="Report on the runs published in this work tree's experiments/.",
)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the Markdown to this file instead of printing it.",
)
@click.option("--plots", "plots", type=click.Path(file_okay=False, path_type=Path),
              metavar="DIR", help="Draw each metric's curves into DIR (PNG) and embed them; "
              "needs `pip install 'gitexp[plot]'`.")  # fmt: skip
@click.option("--html", "html_file", type=click.Path(dir_okay=False, allow_dash=True,
              path_type=Path), metavar="FILE", help="Write the report as one self-contained "
              "HTML page instead (- for standard output): "
              "curves, statistics, axes and every run's record; no script, no network."
              )  # fmt: skip
@click.option("--json", "as_json", is_flag=True, help="Print the report's content as JSON.")
def report(
    run_ids: tuple[str, ...],
    conditions: tuple[str, ...],
    metrics: tuple[str, ...],
    baseline: str | None,
    published: bool,
    output: Path | None,
    plots: Path | None,
    html_file: Path | None,
    as_json: bool,
) -> None:
    """A Markdown summary of runs for a pull request: what was tested, the axes that differ
    from the baseline, metrics with seed statistics, and whether each record verifies.
    With --html, the same as one page to attach or carry offline.

    RUN_IDS name runs as `show` does; with none and no --where, every listed run."""
    from gitexp import jsontext, listing, workspace
    from gitexp.atomic import write_output
    from gitexp.review import markdown
    from gitexp.review import published as copies
    from gitexp.review import report as reporting

    if html_file is not None and (as_json or output or plots):
        given = "--json" if as_json else "--output" if output else "--plots"
        raise click.UsageError(f"--html writes the whole report to its file: give it or {given}, "
                               "not both")  # fmt: skip
    ws = workspace.open_workspace()
    if published and not copies.found(ws):  # a pull request without published runs
        click.echo(f"{_NOTHING_PUBLISHED}: no report", err=True)
        return
    if html_file is not None:
        from gitexp.ui import report as html_report

        with listing.indexing_progress() as progress:
            count = html_report.write(ws, html_file, run_ids, conditions, baseline, metrics,
                                      published, progress)  # fmt: skip
        if str(html_file) != "-":
            click.echo(f"wrote the report on {count} runs to {html_file}", err=True)
        return
    with listing.indexing_progress() as progress:
        found = reporting.report(ws, run_ids, conditions, baseline, metrics, plots, output,
                                 progress, published)  # fmt: skip
    text = jsontext.as_json(found.as_dict()) + "\n" if as_json else markdown.render_report(found)
    if output is None:
        click.echo(text, nl=False)
        return
    write_output(output, text.encode())
    click.echo(f"wrote the report on {len(found.runs)} runs to {output}", err=True)


@cli.command()
@click.option("--port", type=click.IntRange(0, 65535), metavar="N",
              help="Serve on this port of 127.0.0.1 (0: any free one); default: the first "
              "free from 8765.")  # fmt: skip
def ui(port: int | None) -> None:
    """Serve a read-only web view of the runs on 127.0.0.1 until Ctrl-C: the runs table,
    each run's record and curves, and comparisons. The address it prints carries a token:
    only its holder gets in."""
    from gitexp import workspace
    from gitexp.ui import serve

    root = workspace.open_workspace(read_only=True).workdir
    serve.serve(root, port, lambda text: click.echo(text, err=True))
    click.echo("gitexp ui: stopped", err=True)
    # A page still being made (a huge record) runs on in its worker thread, which Python
    # would wait for: the view writes nothing, so nothing is lost by not waiting.
    sys.stderr.flush()
    os._exit(0)


@cli.command()
@click.argument("run_ids", nargs=-1, required=True)
@click.option("--to", "branch", metavar="BRANCH",
              help="The code branch to publish on (created from HEAD if missing); default: the "
              "branch checked out.")  # fmt: skip
def publish(run_ids: tuple[str, ...], branch: str | None) -> None:
    """Copy run records into experiments/ of a code branch, as one commit, so that a pull
    request carries the runs that justify it; `gitexp verify` checks the copies."""
    from gitexp import verify, workspace
    from gitexp.review import publish as publishing

    ws = workspace.open_workspace()
    done = publishing.publish(ws, run_ids, branch)
    copied = (*done.added, *done.restored, *done.unchanged)
    for check in verify.verify(ws, copied).checks:  # a copy is only as good as its record
        if check.status != verify.OK:
            click.echo(f"warning: run {check.run_id} does not verify ({check.status}), so its "
                       "copy will not either: see `gitexp verify`", err=True)  # fmt: skip
    if done.commit is None:
        made = f"created {done.branch} at HEAD, which" if done.created else done.branch
        click.echo(f"{made} already holds these records; nothing to commit")
        return
    parts = [f"{len(ids)} {what}" for what, ids in (("added", done.added),
             ("restored (it had been edited)", done.restored), ("already there", done.unchanged))
             if ids]  # fmt: skip
    click.echo(f"published on {done.branch} in commit {done.commit[:12]}: {', '.join(parts)}")
    if not done.work_tree:
        click.echo(f"(not checked out here: `git switch {done.branch}` to see the copies)")


@cli.command()
@click.argument("baseline")
@_METRICS
@click.option("--json", "as_json", is_flag=True, help="Print the ablation as JSON.")
def ablate(baseline: str, metrics: tuple[str, ...], as_json: bool) -> None:
    """List every run that differs from BASELINE on exactly one axis, by axis, with the
    change of each metric: the valid comparisons at a glance."""
    from gitexp import jsontext, listing, render, workspace
    from gitexp.comparison import ablate as ablating

    ws = workspace.open_workspace()
    with listing.indexing_progress() as progress:
        found = ablating.ablate(ws, baseline, metrics, progress)
    if as_json:
        click.echo(jsontext.as_json(found.as_dict()))
    else:
        click.echo(render.ablation_text(found), nl=False)


@cli.command()
@click.argument("run_a")
@click.argument("run_b")
@_METRICS
@click.option("--seeds", type=click.IntRange(1, 100), default=1, show_default=True, metavar="N",
              help="Run each variant with N seeds: a noise estimate of each effect.")  # fmt: skip
@click.option("--axis", "patterns", multiple=True, metavar="AXIS",
              help="Vary only this axis (`code`, `config.lr`, `data.*`); repeatable.")  # fmt: skip
@click.option("--plan", "show_plan", is_flag=True,
              help="Print the plan and what the history already holds; run nothing.")  # fmt: skip
@click.option("--print", "print_commands", is_flag=True,
              help="Print one command line per run still to make (for a SLURM array or "
              "`xargs -P`); run nothing.")  # fmt: skip
@click.option("--only", metavar="RUN", help="Make only this run of the plan (`code#2`).")
@click.option("--max-runs", type=click.IntRange(min=0), default=16, show_default=True,
              help="Refuse (exit 3) a plan that needs more new runs than this.")  # fmt: skip
@click.option("--retry-failed", is_flag=True,
              help="Run again the planned runs the history holds as failed.")  # fmt: skip
@click.option(
    "--yes", is_flag=True, help="Run records that do not verify without asking (for scripts)."
)
@click.option(
    "--json", "as_json", is_flag=True, help="Print the explanation (or the plan) as JSON."
)
@click.option("--markdown", is_flag=True, help="Print the explanation as Markdown.")
@click.pass_context
def explain(
    ctx: click.Context,
    run_a: str,
    run_b: str,
    metrics: tuple[str, ...],
    seeds: int,
    patterns: tuple[str, ...],
    show_plan: bool,
    print_commands: bool,
    only: str | None,
    max_runs: int,
    retry_failed: bool,
    yes: bool,
    as_json: bool,
    markdown: bool,
) -> None:
    """Run the single-axis variants between RUN_A and RUN_B (A with one axis taken from B)
    and say which axis made the difference. Runs the history holds are reused."""
    from contextlib import nullcontext, redirect_stdout

    from gitexp import jsontext, listing, workspace
    from gitexp.errors import Refused
    from gitexp.explain import attribute, runs, view
    from gitexp.explain import plan as planning

    if as_json and markdown:
        raise click.UsageError("give --json or --markdown, not both")
    if show_plan + print_commands + (only is not None) > 1:
        raise click.UsageError("give one of --plan, --print and --only")
    if (print_commands or only is not None) and (as_json or markdown):
        raise click.UsageError("--print and --only print no explanation: drop --json and "
                               "--markdown")  # fmt: skip
    if show_plan and markdown:
        raise click.UsageError("--plan prints text or --json, not Markdown")
    ws = workspace.open_workspace()
    with listing.indexing_progress() as progress:
        plan = planning.make(ws, run_a, run_b, seeds, patterns, retry_failed, progress)
    if show_plan:
        if as_json:
            click.echo(jsontext.as_json({**plan.as_dict({}), "max_runs": max_runs}))
        else:
            click.echo(view.plan_text(plan, max_runs), nl=False)
        return
    if only is not None:
        chosen = plan.planned(only)
        if chosen.run_id is not None:
            click.echo(f"{chosen.label} is run {chosen.run_id} ({chosen.status}) already")
            return
        if chosen.impossible is not None:
            raise GitexpError(f"{chosen.label} cannot be made: {chosen.impossible}")
        _explain_consent(ws, plan, yes)
        done, status, problem = runs.run(ws, plan, chosen)
        _said_run(done, problem)
        if done.status == "interrupted":
            ctx.exit(status or 130)  # never 0: even if the script's own handler exited so
        ctx.exit(status or (1 if problem is not None else 0))  # made, but not the planned run
    todo = plan.to_run
    if len(todo) > max_runs:
        raise Refused(f"the plan needs {len(todo)} new runs, above --max-runs {max_runs}; raise "
                      "--max-runs, lower --seeds, or vary fewer axes with --axis (`--plan` "
                      "lists them)")  # fmt: skip
    if print_commands:
        if todo:
            _explain_consent(ws, plan, yes)
        click.echo(view.commands(plan, retry_failed, yes), nl=False)
        return
    interrupted = None
    if todo:
        _explain_consent(ws, plan, yes)
        quiet = as_json or markdown  # then stdout is for the explanation alone
        with redirect_stdout(sys.stderr) if quiet else nullcontext():
            plan, problems, interrupted = runs.run_all(ws, plan, _announce)
    else:
        problems = runs.problems_of(ws, plan)
    found = attribute.explain(ws, plan, metrics, problems)
    if as_json:
        click.echo(jsontext.as_json(found.as_dict()))
    elif markdown:
        click.echo(view.markdown(found), nl=False)
    else:
        click.echo(view.text(found), nl=False)
    if interrupted is not None:  # never 0: even if the script's own handler exited so
        click.echo("gitexp: explain stopped; run it again to make the rest", err=True)
        ctx.exit(interrupted or 130)
    if found.problems:
        count = len(found.problems)
        failed = any(p.status == "failed" for p in plan.runs if p.label in found.problems)
        raise GitexpError(
            f"{count} planned run{' counts' if count == 1 else 's count'} for nothing (see "
            "above), so the explanation leaves their axes out"
            + ("; --retry-failed runs the failed ones again" if failed else "")
        )


def _explain_consent(ws: Workspace, plan: Plan, yes: bool) -> None:
    """explain runs A's command on B's code and data: both records must verify, or the user
    agree; and this machine must be A's environment, or no run made here is a variant."""
    from gitexp.explain import runs

    for source in (plan.a, plan.b):
        _consent(ws, source.run_id, source.info.command, yes)
    runs.check_environment(ws, plan)


def _announce(planned: Planned, rank: int, count: int) -> None:
    from gitexp.reader import terminal_safe as safe

    if planned.run_id is None:
        how = "; ".join(planned.how) or "as it ran"
        click.echo(f"gitexp explain: [{rank}/{count}] {planned.label}: {safe(how)}", err=True)
    else:
        click.echo(f"gitexp explain: [{rank}/{count}] {planned.label} is run {planned.run_id} "
                   f"({planned.status})", err=True)  # fmt: skip


def _said_run(done: Planned, problem: str | None) -> None:
    from gitexp.reader import terminal_safe as safe

    click.echo(f"gitexp explain: {done.label} is run {done.run_id} ({done.status})", err=True)
    if problem is not None:
        click.echo(f"gitexp explain: {done.label} counts for nothing: {safe(problem)}",
                   err=True)  # fmt: skip


def main() -> None:
    cli(prog_name="gitexp")
