"""`gitexp verify`: every record was created by a commit signed by a trusted key, and no file
of it but annotations.yaml has changed since (DESIGN.md §3).

Signatures are checked by `git verify-commit`, so git's own trust configuration decides
(`gpg.ssh.allowedSignersFile`, the gpg keyring, `gpg.minTrustLevel`): gitexp adds no trust
rules of its own.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import pygit2
from pygit2.enums import DeltaStatus

from gitexp import catalog, pending, store
from gitexp.errors import GitexpError
from gitexp.record import ANNOTATIONS, CODE
from gitexp.workspace import Workspace

OK, UNSIGNED, UNTRUSTED, BAD, MODIFIED, MISSING = (
    "ok",
    "unsigned",
    "untrusted key",
    "bad signature",
    "modified after signing",
    "missing",
)
# When a run has several problems, the status shown is the first of these it has.
_PRECEDENCE = (MISSING, BAD, UNTRUSTED, UNSIGNED, MODIFIED)
_SNAPSHOT = re.compile(rb"^snapshot: ([0-9a-f]{40,64})$", re.M)
# What `git verify-commit` says when a signature is sound but its key is not trusted.
_UNTRUSTED_SIGNS = ("No principal matched", "allowedSignersFile", "NO_PUBKEY", "GOODSIG")


@dataclass(frozen=True)
class Check:
    """The verdict on one run."""

    run_id: str
    status: str
    detail: str = ""
    commit: str | None = None  # the commit that created the run's folder
    signer: str = ""  # what git says of the signature


@dataclass(frozen=True)
class Report:
    checks: tuple[Check, ...]
    rewritten: tuple[str, ...] = ()  # former tips the branch's history no longer holds

    @property
    def failed(self) -> list[Check]:
        return [check for check in self.checks if check.status != OK]

    @property
    def ok(self) -> bool:
        return not self.failed and not self.rewritten


@dataclass(frozen=True)
class _Signature:
    status: str
    said: str  # git's own words


@dataclass
class _History:
    """The runs branch as its commits built it."""

    commits: set[pygit2.Oid] = field(default_factory=set)  # every runs-branch commit reached
    created: dict[str, list[pygit2.Commit]] = field(default_factory=dict)  # run → its commits


def _names(tree: pygit2.Tree | None) -> set[str]:
    return {str(entry.name) for entry in tree} if tree is not None else set()


def _added(tree: pygit2.Tree | None, parents: Sequence[pygit2.Tree | None]) -> set[str]:
    """Run folders in `tree` that none of `parents` has."""
    if tree is None:
        return set()
    found: set[str] | None = None
    for parent in parents or [None]:
        if parent is None:
            here = _names(tree)
        else:
            diff = parent.diff_to_tree(tree)
            here = {
                d.new_file.path.split("/", 1)[0]
                for d in diff.deltas
                if d.status == DeltaStatus.ADDED
            }
            here = {name for name in here if name not in parent}
        found = here if found is None else found & here
    return found or set()


def _snapshot(repo: pygit2.Repository, tree: pygit2.Tree, run_id: str) -> str | None:
    """The snapshot commit a run's code.yaml names (read without parsing the YAML)."""
    data = store.folder_file(repo, tree, f"{run_id}/{CODE}")
    if data is None:
        return None
    match = _SNAPSHOT.search(data)
    return match.group(1).decode() if match else None


# The run a gitexp commit names in its summary: a hint that saves diffing big trees.
_NAMED_RUN = re.compile(r"^gitexp: (?:annotate )?run (\S+)")


def _added_fast(
    commit: pygit2.Commit, tree: pygit2.Tree | None, parent: pygit2.Tree | None
) -> set[str] | None:
    """The runs `commit` adds, from the run its message names, when the counts prove it.

    The message is only a hint: the name must be new in the tree and the tree must have
    grown by exactly that one folder, else the caller diffs the trees. A commit that adds a
    second run while deleting another leaves that run without a creating commit, which
    fails verification: never a false `ok`.
    """
    match = _NAMED_RUN.match(commit.message)
    if match is None or tree is None or parent is None:
        return None
    name, grown = match.group(1), len(tree) - len(parent)
    if grown == 0 and name in parent:
        return set()  # an annotation: the folder was there before
    if grown == 1 and name in tree and name not in parent:
        return {name}
    return None


def _history(repo: pygit2.Repository, tip: pygit2.Commit) -> _History:
    """Walk every parent of the branch, as `pull` merges histories, but not into the code
    snapshots that run commits name as their second parent."""
    history = _History()
    trees: dict[pygit2.Oid, pygit2.Tree | None] = {}  # each read once: they are big

    def experiments(commit: pygit2.Commit) -> pygit2.Tree | None:
        if commit.id not in trees:
            trees[commit.id] = store.experiments_tree(commit)
        return trees[commit.id]

    todo = [tip]
    while todo:
        commit = todo.pop()
        if commit.id in history.commits:
            continue
        history.commits.add(commit.id)
        tree = experiments(commit)
        trees.pop(commit.id, None)  # a commit is visited once; its children are done
        parents = list(commit.parents)
        first = experiments(parents[0]) if parents else None
        added = _added_fast(commit, tree, first)
        if added is None:
            added = _added(tree, [first] if parents else [])
        snapshots = {_snapshot(repo, tree, run) for run in added} if tree is not None else set()
        branch_parents = parents[:1] + [p for p in parents[1:] if str(p.id) not in snapshots]
        if len(branch_parents) > 1:
            added = _added(tree, [experiments(p) for p in branch_parents])
        for run_id in added:
            history.created.setdefault(run_id, []).append(commit)
        todo.extend(branch_parents)
    return history


def _signature(ws: Workspace, commit: pygit2.Commit) -> _Signature:
    signature, _ = commit.gpg_signature
    if not signature:
        return _Signature(UNSIGNED, "the commit has no signature")
    try:
        done = subprocess.run(
            ["git", "verify-commit", "--raw", str(commit.id)],
            cwd=ws.workdir,
            capture_output=True,
            text=True,
            errors="replace",
            check=False,
        )
    except OSError as e:
        raise GitexpError(f"cannot run git to check signatures ({e}); install git") from None
    said = _words(done.stderr)
    if done.returncode == 0:
        return _Signature(OK, said)
    if any(sign in done.stderr for sign in _UNTRUSTED_SIGNS) and "BADSIG" not in done.stderr:
        return _Signature(UNTRUSTED, said)
    return _Signature(BAD, said)


# gpg's and gpgsm's status lines (doc/DETAILS in GnuPG), in words.
_STATUS_WORDS = {
    "GOODSIG": "good signature by {uid} (key {key})",
    "BADSIG": "bad signature claiming to be by {uid} (key {key})",
    "EXPKEYSIG": "signature by {uid}, whose key {key} has expired",
    "REVKEYSIG": "signature by {uid}, whose key {key} is revoked",
    "NO_PUBKEY": "key {key} is not in the keyring",
}


def _words(stderr: str) -> str:
    """What `git verify-commit --raw` said, in one line: ssh's own sentences, or gpg's status
    lines put into words."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    status = [line.split()[1:] for line in lines if line.startswith("[GNUPG:]")]
    if not status:
        return " ".join(lines)
    words = []
    for name, *args in status:
        if name in _STATUS_WORDS and args:
            words.append(_STATUS_WORDS[name].format(key=args[0], uid=" ".join(args[1:])))
        elif name.startswith("TRUST_"):
            words.append(f"trust {name.removeprefix('TRUST_').lower()}")
    return ", ".join(words) or "the signature could not be checked"


def _folder(repo: pygit2.Repository, commit: pygit2.Commit, run_id: str) -> dict[str, str] | None:
    tree = store.experiments_tree(commit)
    if tree is None or run_id not in tree:
        return None
    folder = tree[run_id].peel(pygit2.Tree)
    return {str(e.name): str(e.id) for e in folder if e.name != ANNOTATIONS}


def _changed(before: Mapping[str, str], after: Mapping[str, str]) -> list[str]:
    return sorted(
        name for name in before.keys() | after.keys() if before.get(name) != after.get(name)
    )


def _former_tips(
    ws: Workspace, history: _History, base: str | None, reflog: bool
) -> list[pygit2.Commit]:
    """Commits the branch pointed at before (`base`, or else its reflog when `reflog`) that
    its history lacks: the branch was rewritten since. The newest such entry is enough."""
    found: list[pygit2.Commit] = []
    if base is not None:
        commit = _commit_of(ws, base)
        if commit.id not in history.commits:
            found.append(commit)
    entries = store.former_tips(ws) if reflog and base is None else []
    for old, new in entries:  # newest first
        for oid in (new, old):
            if oid.raw == bytes(len(oid.raw)) or oid in history.commits:
                continue
            try:
                found.append(ws.repo[oid].peel(pygit2.Commit))
            except (KeyError, ValueError):
                continue  # pruned by gc: nothing left to compare with
            return found
    return found


def _commit_of(ws: Workspace, rev: str) -> pygit2.Commit:
    try:
        return ws.repo.revparse_single(rev).peel(pygit2.Commit)
    except (KeyError, ValueError, pygit2.GitError):
        raise GitexpError(f"{rev!r} names no commit in this repository") from None


Problems = dict[str, list[tuple[str, str]]]  # run id → (status, detail) for each problem


def verify(
    ws: Workspace, refs: Sequence[str] = (), rev: str | None = None, base: str | None = None
) -> Report:
    """Verify the runs `refs` name (all runs when none), on the runs branch or on `rev`.

    `base` is a commit the branch must have grown from, keeping its runs unchanged (for CI:
    the branch a pull request is to be merged into); without it, the branch's own reflog
    tells which tips it had.
    """
    pending.recover(ws)
    tip = _commit_of(ws, rev) if rev is not None else store.tip(ws)
    if tip is None:
        raise GitexpError("there are no runs yet; record one with `gitexp run -- CMD`")
    history = _history(ws.repo, tip)
    at_tip = {run_id: _folder(ws.repo, tip, run_id) for run_id in store.run_folders(tip)}
    problems: Problems = {run_id: [] for run_id in [*at_tip, *history.created]}
    former = _former_tips(ws, history, base, reflog=rev is None)
    for old in former:
        _compare_with_former(ws.repo, old, at_tip, problems)
    signers = _check_creators(ws, history, at_tip, problems)
    checks = []
    for run_id in _select(ws, refs, list(problems), on_branch=rev is None):
        found = problems.get(run_id)
        commits = history.created.get(run_id, [])
        commit = str(commits[0].id) if commits else None
        if found is None:
            checks.append(Check(run_id, MISSING, "no run with this id was ever on the branch"))
        elif not found:
            checks.append(Check(run_id, OK, "", commit, signers.get(run_id, "")))
        else:
            status = min((s for s, _ in found), key=_PRECEDENCE.index)
            detail = "; ".join(dict.fromkeys(d for _, d in found))
            checks.append(Check(run_id, status, detail, commit, signers.get(run_id, "")))
    return Report(tuple(checks), tuple(str(c.id) for c in former))


def _compare_with_former(
    repo: pygit2.Repository,
    old: pygit2.Commit,
    at_tip: Mapping[str, Mapping[str, str] | None],
    problems: Problems,
) -> None:
    """Runs a former tip held must still be there, unchanged."""
    where = f"the branch's former tip {str(old.id)[:12]}"
    for run_id in store.run_folders(old):
        then, now = _folder(repo, old, run_id), at_tip.get(run_id)
        if now is None:
            problems.setdefault(run_id, []).append((MISSING, f"it was on {where}"))
        elif then is not None and _changed(then, now):
            names = ", ".join(_changed(then, now))
            problems.setdefault(run_id, []).append((MODIFIED, f"{names} changed since {where}"))


def _check_creators(
    ws: Workspace,
    history: _History,
    at_tip: Mapping[str, Mapping[str, str] | None],
    problems: Problems,
) -> dict[str, str]:
    """Check each run's creating commits: signed by a trusted key, and the files they wrote
    still there byte for byte. Returns what git said of each good signature."""
    creators = {c.id: c for commits in history.created.values() for c in commits}
    workers = min(8, (os.cpu_count() or 1) * 2)  # each check waits on a gpg or ssh process
    with ThreadPoolExecutor(max_workers=workers) as pool:
        found = pool.map(lambda c: _signature(ws, c), creators.values())
        verdicts = dict(zip(creators, found, strict=True))
    signers: dict[str, str] = {}
    for run_id, listed in problems.items():
        now = at_tip.get(run_id)
        commits = history.created.get(run_id, [])
        if now is None:
            if commits:
                by = str(commits[0].id)[:12]
                listed.append((MISSING, f"its folder, added by {by}, is gone from the branch"))
            continue
        if not commits:
            listed.append((MISSING, "no commit in the branch's history creates it"))
        for commit in commits:
            verdict, short = verdicts[commit.id], str(commit.id)[:12]
            if verdict.status == OK:
                signers[run_id] = verdict.said
            else:
                listed.append((verdict.status, f"commit {short}: {verdict.said}"))
            names = _changed(_folder(ws.repo, commit, run_id) or {}, now)
            if names:
                listed.append((MODIFIED, f"{', '.join(names)} changed after commit {short}"))
    return signers


def _select(ws: Workspace, refs: Iterable[str], known: list[str], on_branch: bool) -> list[str]:
    """The run ids `refs` name, among every run the branch holds or held; all when none."""
    refs = list(refs)
    if not refs:
        return sorted(known, reverse=True)
    pairs: list[tuple[str, str | None]] = [(run_id, None) for run_id in sorted(known, reverse=True)]
    chosen = []
    for ref in refs:
        try:  # names and @~N as `gitexp log` shows them, then ids of runs no longer listed
            chosen.append(catalog.resolve(ws, ref).id if on_branch else catalog.choose(pairs, ref))
        except GitexpError:
            try:
                chosen.append(catalog.choose(pairs, ref))
            except GitexpError:
                chosen.append(ref)
    return list(dict.fromkeys(chosen))
