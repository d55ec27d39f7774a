"""Published copies of records (`gitexp publish`) in the work tree's `experiments/`, checked
byte for byte against the signed commit that created each record on the runs branch.

A copy is read as untrusted input: only regular files are hashed (never a link followed or a
pipe opened), by streaming, and every name it holds besides the record's own is reported.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping, Sequence
from dataclasses import replace

import pygit2

from gitexp import guide, verify
from gitexp.ids import ID_PATTERN
from gitexp.record import EXPERIMENTS
from gitexp.review.publish import copied, copy_path
from gitexp.verify import MISSING, MODIFIED, OK, Check, Report
from gitexp.workspace import Workspace, checked_out_at

_SHOWN = 10  # problems named per copy; a copy may hold any number of files


def found(ws: Workspace) -> list[str]:
    """The run ids published in the work tree's `experiments/`, newest first; none when the
    runs branch itself is checked out here."""
    where = checked_out_at(ws, ws.runs_ref)
    if where is not None and where.resolve() == ws.workdir.resolve():
        return []
    top = ws.workdir / EXPERIMENTS
    if top.is_symlink() or not top.is_dir():
        return []
    with os.scandir(top) as entries:
        return sorted((e.name for e in entries if ID_PATTERN.fullmatch(e.name)), reverse=True)


def _problems(ws: Workspace, run_id: str, commit: str) -> list[str]:
    """What differs between the copy of `run_id` and what `commit` wrote, file by file."""
    repo = ws.repo
    tree = repo[commit].peel(pygit2.Commit).tree
    signed = tree[f"{EXPERIMENTS}/{run_id}"].peel(pygit2.Tree)
    record = {str(e.name): e for e in signed if copied(str(e.name))}
    folder = ws.workdir / EXPERIMENTS / run_id
    short = commit[:12]
    if folder.is_symlink() or not folder.is_dir():
        return [f"{copy_path(run_id)} is not a folder"]
    problems = []
    with os.scandir(folder) as entries:
        present = {e.name: e for e in entries}
    for name, entry in sorted(record.items()):
        path = copy_path(run_id, name)
        there = present.get(name)
        if there is None:
            problems.append(f"{path} is missing")
            continue
        mode = there.stat(follow_symlinks=False)
        if not stat.S_ISREG(mode.st_mode):
            problems.append(f"{path} is not a regular file")
        elif (
            mode.st_size != entry.peel(pygit2.Blob).size or pygit2.hashfile(there.path) != entry.id
        ):
            problems.append(f"{path} differs from what commit {short} signed")
    extra = sorted(set(present) - set(record) - {guide.ATTRIBUTES})
    problems += [f"{copy_path(run_id, _name(name))} is not part of the signed record"
                 for name in extra]  # fmt: skip
    if len(problems) > _SHOWN:
        problems[_SHOWN:] = [f"and {len(problems) - _SHOWN} more"]
    return problems


def _name(name: str) -> str:
    """A file name from the work tree as text: bytes that are not UTF-8 as `\\xNN`."""
    return os.fsencode(name).decode("utf-8", "backslashreplace")


def check(ws: Workspace, run_ids: Sequence[str], records: Mapping[str, Check]) -> list[Check]:
    """The verdict on each published copy: its record's own, when that fails; else whether
    the copy is byte for byte what the signed commit wrote."""
    branch = ws.settings.branch
    checks = []
    for run_id in run_ids:
        record = records.get(run_id)
        if record is None or record.status == MISSING or record.commit is None:
            checks.append(Check(run_id, MISSING, f"published in {copy_path(run_id)}, but no run "
                                f"with this id is on {branch}; fetch that branch (`git fetch "
                                f"origin {branch}`) or `gitexp pull`"))  # fmt: skip
        elif record.status != OK:
            checks.append(replace(record, detail=f"its record on {branch}: {record.detail}"))
        else:
            problems = _problems(ws, run_id, record.commit)
            status = MODIFIED if problems else OK
            checks.append(Check(run_id, status, "; ".join(problems), record.commit, record.signer))
    return checks


def verify_here(
    ws: Workspace,
    refs: Sequence[str] = (),
    rev: str | None = None,
    base: str | None = None,
    only_published: bool = False,
) -> Report:
    """`gitexp verify`: the runs branch's records (or `rev`'s) as verify.verify checks them,
    and the copies published in this work tree; with `only_published`, just the copies."""
    if only_published:
        copies = found(ws)
        if not copies:  # a pull request without published runs: nothing to check
            return Report(checks=())
        records = verify.verify(ws, copies)
        by_id = {c.run_id: c for c in records.checks}
        return replace(records, checks=(), published=tuple(check(ws, copies, by_id)))
    copies = found(ws) if rev is None else []
    report = verify.verify(ws, refs, rev, base)
    by_id = {c.run_id: c for c in report.checks}
    if refs:
        copies = [run_id for run_id in copies if run_id in by_id]
    return replace(report, published=tuple(check(ws, copies, by_id)))
