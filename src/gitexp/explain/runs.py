"""Running the plan: each planned run the history lacks, one after another, through the
replay machinery (its exact code in a worktree of its own, its data restored, its seeds
set), recorded as a normal run linked to the explanation; and each checked to be the run
that was planned, since a change that did not reach the script would explain nothing."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from gitexp.errors import Refused
from gitexp.explain import plan as planning
from gitexp.explain import variants
from gitexp.explain.plan import B, Plan, Planned
from gitexp.replay import recipe as recipes
from gitexp.workspace import Workspace

# (a planned run, its rank, of how many): called as it starts, and again once it has its run
Announce = Callable[[Planned, int, int], None]


def run(ws: Workspace, plan: Plan, planned: Planned) -> tuple[Planned, int, str | None]:
    """Make and run one planned run: it, updated; the command's exit status; and why it
    counts for nothing (it failed, or it is not the planned run), if it does not count."""
    source, other = (plan.b, plan.a) if planned.group == B else (plan.a, plan.b)
    taken = () if planned.group == B else plan.changes(planned)  # B's own: B's everything
    made = variants.recipe(ws, source, other, taken, plan.rules, planned.seed)
    recipe = replace(made.recipe, explains=plan.name, variant=planned.label)
    result = recipes.run(ws, recipe)
    done = replace(planned, run_id=result.run_id, status=result.status, how=made.how)
    if result.status != planning.SUCCEEDED:
        return done, result.exit_status, f"{ended(result.status)} (exit {result.exit_status})"
    return done, result.exit_status, planning.check(ws, plan, done, result.run_id)


def run_all(
    ws: Workspace, plan: Plan, announce: Announce
) -> tuple[Plan, dict[str, str], int | None]:
    """Every planned run still to make, in the plan's order (all first seeds, then the
    second…, so that a plan stopped early has measured every axis once). Returns the plan
    with their runs, why each unusable one is so, and the exit status of a run that was
    interrupted (the rest are then left for a later `explain`)."""
    problems = problems_of(ws, plan)
    todo = plan.to_run
    runs = list(plan.runs)
    for rank, planned in enumerate(todo, 1):
        announce(planned, rank, len(todo))
        done, status, problem = run(ws, plan, planned)
        runs[runs.index(planned)] = done
        announce(done, rank, len(todo))
        if problem is not None:
            problems[done.label] = problem
        if done.status == "interrupted":
            return replace(plan, runs=tuple(runs)), problems, status
    return replace(plan, runs=tuple(runs)), problems, None


def ended(status: str) -> str:
    """How a run that did not succeed ended, in words."""
    words = {"interrupted": "it was interrupted", "running": "it is still running"}
    return words.get(status, f"it {status}")


def problems_of(ws: Workspace, plan: Plan) -> dict[str, str]:
    """Why each planned run the history holds counts for nothing: it failed, or its record
    does not verify. Records arrive from others: one altered, signed by a key nobody
    trusts, or (where the repository requires signatures) unsigned, decides nothing."""
    from gitexp import verify

    found = {
        p.label: f"{ended(p.status or '')} (`gitexp show {p.run_id}`)"
        for p in plan.runs
        if p.reused and p.status != planning.SUCCEEDED
    }
    held = {p.run_id: p.label for p in plan.runs if p.reused and p.label not in found}
    # Where the repository does not require signatures, an unsigned record is the norm.
    unsigned = (verify.UNSIGNED, verify.UNSIGNED_ANNOTATION)
    tolerated = () if ws.settings.require_signed else unsigned
    for check in verify.verify(ws, [r for r in held if r is not None]).checks:
        wrong = [s for s in check.problems or (check.status,) if s not in (verify.OK, *tolerated)]
        if wrong:  # unsigned may hide worse: a record changed since it was made
            found[held[check.run_id]] = f"its record does not verify ({', '.join(wrong)})"
    return found


def check_environment(ws: Workspace, plan: Plan) -> None:
    """Refuse to make runs on a machine whose environment is not A's: each would differ
    from A on env as well, and so explain nothing (unless the repository ignores env)."""
    from gitexp import axes
    from gitexp.reader import terminal_safe as safe
    from gitexp.replay import reproduce

    if plan.rules.ignored(axes.ENV_AXIS):
        return
    differences = reproduce.plan(ws, plan.a.run_id).environment
    if not differences:
        return
    key, recorded, here = differences[0]
    more = f" and {len(differences) - 1} more" if len(differences) > 1 else ""
    raise Refused(
        f"this machine's environment is not run {plan.a.run_id}'s ({safe(key)}: "
        f"{safe(str(recorded))} here {safe(str(here))}{more}), so every run made here would "
        "differ from A on env too and explain nothing; make the runs where A ran (`--print` "
        "gives their command lines), or ignore env in the repository's axis settings"
    )
