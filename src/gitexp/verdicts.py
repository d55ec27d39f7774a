"""What `gitexp verify` prints: a line per run, the summary, or JSON for CI.

Plain text, kept apart from `render` and its rich tables, so that verifying one run loads no
more than it needs.
"""

from __future__ import annotations

from collections.abc import Sequence

from gitexp.jsontext import as_json
from gitexp.reader import terminal_safe as safe
from gitexp.verify import OK, Check, Report


def lines(report: Report) -> str:
    """One line per run: verdict, id, and what git said or what is wrong."""
    width = max((len(check.status) for check in (*report.checks, *report.published)), default=2)
    found = [
        f"{check.status.ljust(width)}  {check.run_id}  {check.detail or check.signer}".rstrip()
        for check in report.checks
    ]
    for check in report.published:  # names from the work tree: shown, never obeyed
        said = check.detail or f"published copy matches commit {(check.commit or '')[:12]}"
        found.append(safe(f"{check.status.ljust(width)}  {check.run_id}  {said}"))
    found.extend(
        f"history rewritten: {tip[:12]}, a former tip of the branch, is no longer in its history"
        for tip in report.rewritten
    )
    found.extend(f"branch: {problem}" for problem in report.broken)
    return "\n".join(found)


def summary(report: Report) -> str:
    def tally(checks: Sequence[Check], one: str, many: str) -> str:
        failed = sum(check.status != OK for check in checks)
        counted = f"{len(checks)} {one if len(checks) == 1 else many}"
        return f"{failed} of {counted} failed verification" if failed else f"{counted} verified"

    parts = []
    if report.checks or not report.published:
        parts.append(tally(report.checks, "run", "runs"))
    if report.published:
        parts.append(tally(report.published, "published copy", "published copies"))
    text = "; ".join(parts)
    if report.ok:
        return text
    if report.rewritten:
        text += ", and the branch's history was rewritten"
    if report.broken:
        text += ", and the branch itself has objects missing, damaged or substituted"
    return text + "; see the lines above"


def as_json_text(report: Report) -> str:
    return as_json(
        {
            "ok": report.ok,
            "runs": [
                {
                    "id": check.run_id,
                    "status": check.status,
                    "detail": check.detail,
                    "commit": check.commit,
                    "signature": check.signer,
                }
                for check in report.checks
            ],
            "published": [
                {
                    "id": check.run_id,
                    "path": f"experiments/{check.run_id}/",
                    "status": check.status,
                    "detail": check.detail,
                    "commit": check.commit,
                    "signature": check.signer,
                }
                for check in report.published
            ],
            "rewritten": list(report.rewritten),
            "branch": list(report.broken),
        }
    )
