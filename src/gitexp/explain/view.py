"""How an explanation reads: its plan, and per metric what each axis did, as text for a
terminal, or as Markdown for a pull request beside `gitexp report`."""

from __future__ import annotations

import shlex

from gitexp import listing
from gitexp.explain.attribute import SMALL_SHARE, Effect, Explained, Explanation
from gitexp.explain.plan import A, B, Plan, Planned
from gitexp.reader import terminal_safe as safe
from gitexp.review import markdown as md

_ADDITIVE = {True: "they add up, within noise", False: "they interact"}
_PARAGRAPH = 2000  # characters of a Markdown sentence, where a table cell has 120


def _number(value: float | None) -> str:
    """A change, signed: +0.25, -3, 0."""
    if value is None:
        return "—"
    shown = f"{value:+.4g}"
    return "0" if float(shown) == 0 else shown


def _plain(value: float | None) -> str:
    return "—" if value is None else f"{value:.4g}"


def _ci(effect: Effect) -> str:
    return "" if effect.ci is None else f"[{_number(effect.ci[0])}, {_number(effect.ci[1])}]"


def _share(effect: Effect) -> str:
    return "" if effect.share is None else _percent(effect.share)


def _percent(share: float) -> str:
    shown = f"{share:.0%}"
    return "0%" if shown == "-0%" else shown


def _verdict(effect: Effect) -> str:
    if effect.beyond_noise is None:
        return ""
    return "beyond noise" if effect.beyond_noise else "within noise"


def _seeds(plan: Plan) -> str:
    if plan.seeds == 1:
        return "one seed each"
    seeds = sorted({p.seed for p in plan.runs if p.seed is not None})
    given = f" (A's seed, then {', '.join(map(str, seeds))})" if seeds else ""
    return f"{plan.seeds} seeds each{given}"


def heading(plan: Plan) -> str:
    shown = ", ".join(safe(c.axis) for c in plan.axes)
    count = "1 axis differs" if len(plan.axes) == 1 else f"{len(plan.axes)} axes differ"
    return f"explain {plan.a.run_id} → {plan.b.run_id}: {count} ({shown}); {_seeds(plan)}"


def _what(planned: Planned) -> str:
    if planned.impossible:
        return f"cannot be made: {planned.impossible}"
    base = B if planned.group == B else A
    return f"{base} with " + "; ".join(planned.how) if planned.how else f"{base} itself"


def _seed(seed: int | None) -> str:
    return "" if seed is None else str(seed)


def _run(planned: Planned) -> str:
    if planned.run_id is None:
        return "—" if planned.impossible else "to run"
    found = " (in the history)" if planned.reused else ""
    return f"{planned.run_id} {planned.status}{found}"


def plan_text(plan: Plan, max_runs: int) -> str:
    """`explain --plan`: each planned run, how it is made, and the run that is it."""
    rows = [[p.label, _seed(plan.seed_of(p)), safe(_what(p)), _run(p)] for p in plan.runs]
    columns = [list(c) for c in zip(*rows, strict=True)]
    table = listing.layout(["run", "seed", "how", "run id"], columns, set())
    held = sum(1 for p in plan.runs if p.reused)
    todo = len(plan.to_run)
    tail = f"{len(plan.runs)} planned runs: {held} in the history, {todo} to run"
    if todo > max_runs:
        tail += f", above --max-runs {max_runs}: explain would refuse"
    return f"{heading(plan)}\n{table}\n{tail}\n"


def _options(plan: Plan) -> list[str]:
    """The two runs and the options that make this plan, as `explain` is given them."""
    seeds = [f"--seeds={plan.seeds}"] if plan.seeds > 1 else []
    return [plan.a.run_id, plan.b.run_id, *seeds, *(f"--axis={p}" for p in plan.patterns)]


def commands(plan: Plan, retry_failed: bool, yes: bool) -> str:
    """`explain --print`: one shell command per run to make, each on a line of its own."""
    options = [*_options(plan), *["--retry-failed"] * retry_failed, *["--yes"] * yes]
    lines = [shlex.join(["gitexp", "explain", *options, f"--only={p.label}"])
             for p in plan.to_run]  # fmt: skip
    return "".join(f"{line}\n" for line in lines)


def _rows(found: Explained) -> list[list[str]]:
    total = found.total
    rows = [["A → B", _number(total.mean), _ci(total), "" if total.mean is None else "100%",
             _verdict(total)]]  # fmt: skip
    for effect in found.effects:
        rows.append([f"  {safe(effect.name)}", _number(effect.mean), _ci(effect),
                     _share(effect), _verdict(effect)])  # fmt: skip
    for axis in found.unmeasured:
        rows.append([f"  {safe(axis)}", "—", "", "", "not measured"])
    if len(found.effects) > 1 or (found.effects and found.unmeasured):
        share = _percent(found.sum / total.mean) if found.sum is not None and total.mean else ""
        rows.append(["  sum of the axes", _number(found.sum), "", share, ""])
        left = found.interaction
        verdict = "" if found.additive is None else _ADDITIVE[found.additive]
        rows.append([f"  {_rest(found)}", _number(left.mean), _ci(left), _share(left),
                     verdict])  # fmt: skip
    return rows


def _rest(found: Explained) -> str:
    """What A → B minus the measured axes is: their interaction, or, with axes left
    unmeasured, those axes too."""
    return "the rest" if found.unmeasured else "interaction"


def conclusion(found: Explained) -> str:
    """One sentence per metric: which axis moved it most, which account for the change."""
    label = safe(found.metric.label)
    total = found.total.mean
    missing = ", ".join(safe(a) for a in found.unmeasured)
    if total is None:
        return f"{label}: A or B has no value, so nothing is attributed."
    if total == 0:
        return f"{label}: A → B did not change it."
    if not found.effects:
        return f"{label}: no axis was measured ({missing or 'none could be'})."
    if found.main is None:
        said = f"{label}: no axis alone moved it the way A → B did ({_number(total)})"
        return said + (f"; {missing} not measured." if missing else ".")
    main = next(e for e in found.effects if e.name == found.main)
    said = f"{safe(found.main)} moved {label} most: {_number(main.mean)} of {_number(total)}"
    said += f" ({_percent(main.share)})" if main.share is not None else ""
    others = [safe(a) for a in found.accounts if a != found.main]
    if main.beyond_noise is False:
        said += ", though within seed noise"
    if others:
        said += f"; {', '.join(others)} also account{'s' if len(others) == 1 else ''} for it"
    quiet = [safe(e.name) for e in found.effects if e.beyond_noise is False and e is not main]
    if quiet:
        said += f"; {', '.join(quiet)} {'is' if len(quiet) == 1 else 'are'} within seed noise"
    left = found.interaction
    if found.additive is False:
        said += "; the effects interact, so their sum is not the whole change"
    elif missing:
        share = f" ({_percent(left.share)})" if left.share is not None else ""
        rest = f"{_number(left.mean)}{share} of it" if left.mean is not None else "the rest"
        said += f"; {rest} is left to {missing}, not measured, and to the axes together"
    elif found.additive is None and abs(left.share or 0) >= SMALL_SHARE:
        said += f"; {_number(left.mean)} ({_percent(left.share or 0)}) is left to the axes together"
        if left.n == 1:
            said += " (one seed: --seeds 2 or more to judge it against noise)"
    return said + "."


def text(found: Explanation) -> str:
    """The explanation, for a terminal."""
    plan = found.plan
    parts = [heading(plan)]
    for explained in found.metrics:
        a, b = explained.a, explained.b
        title = f"{explained.metric.label} (A {_plain(a.mean)}, B {_plain(b.mean)})"
        rows = _rows(explained)
        columns = [list(c) for c in zip(*rows, strict=True)]
        parts.append(
            listing.layout([safe(title), "Δ mean", "95% CI", "share", ""], columns, {1, 3})
        )
        parts.append(conclusion(explained))
    if not found.metrics:
        parts.append("A and B logged no metric to explain.")
    for label, why in found.problems.items():
        parts.append(f"{label}: not counted: {safe(why)}")
    for planned in plan.runs:
        if planned.impossible is not None and planned.run_id is None:
            parts.append(f"{planned.label}: cannot be made: {safe(planned.impossible)}")
    reused = sum(1 for p in plan.runs if p.reused)
    made = sum(1 for p in plan.runs if p.run_id and not p.reused)
    again = shlex.join(["gitexp", "explain", *_options(plan), "--plan"])
    parts.append(f"runs: {reused} from the history, {made} run now (`{safe(again)}` lists them)")
    return "\n".join(parts) + "\n"


def markdown(found: Explanation) -> str:
    """The explanation as Markdown: a heading, a table per metric, and the runs."""
    plan = found.plan
    out = [
        f"### Why {md.code(plan.b.run_id)} differs from {md.code(plan.a.run_id)}",
        "",
        md.text(heading(plan), _PARAGRAPH),
        "",
    ]
    for explained in found.metrics:
        rows = [[md.text(r[0].strip()), r[1], r[2], r[3], r[4]] for r in _rows(explained)]
        out += [
            md.table(
                [md.code(explained.metric.label), "Δ mean", "95% CI", "share", ""],
                rows,
                [False, True, False, True, False],
            ),
            "",
            md.text(conclusion(explained), _PARAGRAPH),
            "",
        ]
    runs = [
        [
            md.code(p.label),
            md.code(p.run_id or ""),
            md.text(p.status or "not run"),
            md.text(found.problems.get(p.label) or p.impossible or _what(p)),
        ]
        for p in plan.runs
    ]
    out += [
        "<details><summary>Runs</summary>",
        "",
        md.table(["run", "run id", "status", "how"], runs, [False] * 4),
        "",
        "</details>",
        "",
    ]
    return "\n".join(out)
