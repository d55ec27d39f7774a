"""`gitexp publish ID… [--to BRANCH]`: copies of chosen records in `experiments/` of a code
branch, as one commit, for a pull request whose code change they justify.

A copy holds the record's immutable files byte for byte (but for DVC pointers, see `copied`;
annotations change, so they stay on the runs branch) and a `.gitattributes` that keeps
checkouts from converting them; `gitexp verify` checks each copy against the signed commit
that created the record. The branch moves by git's compare-and-swap. When it is the branch
checked out here, the copies are written to the work tree and the index as `git commit`
would leave them, and nothing else there changes.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pygit2
from pygit2.enums import FileMode

from gitexp import catalog, git, guide, history, signing, store
from gitexp.atomic import replace_file
from gitexp.errors import GitexpError, Refused, UsageError
from gitexp.record import ANNOTATIONS, EXPERIMENTS, INVALID
from gitexp.settings import valid_branch
from gitexp.workspace import Workspace, checked_out_at

_ZERO = "0" * 40


@dataclass(frozen=True)
class Published:
    branch: str  # short name
    commit: str | None  # the commit made; None when every copy was there already
    added: tuple[str, ...] = ()
    restored: tuple[str, ...] = ()  # copies there before but edited, now the record again
    unchanged: tuple[str, ...] = ()
    work_tree: bool = False  # the branch is checked out here: files and index updated
    created: bool = False  # the branch is new, started at HEAD


def copy_path(run_id: str, name: str = "") -> str:
    return f"{EXPERIMENTS}/{run_id}/{name}"


def copied(name: str) -> bool:
    """Whether a copy holds the record's file `name`. Not annotations.yaml, which changes,
    nor the DVC pointers of the run's artifacts (`*.dvc`): in a code branch DVC would take
    them for outputs of the project and check the checkpoints out beside the copy.
    artifacts.yaml pins the same objects."""
    return name != ANNOTATIONS and not name.endswith(".dvc")


def _record_files(ws: Workspace, folder: pygit2.Oid) -> dict[str, pygit2.Oid]:
    """The files a copy holds, as they are on the runs branch."""
    tree = ws.repo[folder].peel(pygit2.Tree)
    return {str(e.name): e.id for e in tree if e.type_str == "blob" and copied(str(e.name))}


def _target(ws: Workspace, to: str | None) -> str:
    """The full ref of the branch to publish on: `to`, else the branch checked out here."""
    if to is None:
        head = git.run(ws.workdir, "symbolic-ref", "-q", "HEAD")
        if head is None or head.returncode != 0:
            raise UsageError("HEAD is detached: check out the branch to publish on, or name "
                             "it with --to BRANCH")  # fmt: skip
        return head.stdout.strip()
    name = to.removeprefix("refs/heads/")
    # A branch, by name: not `@{-1}` or `@` (git would expand them), nor a name that reads as
    # another kind of ref (a tag, a remote-tracking branch), which git would make ambiguous.
    remote = name.split("/", 1)[0] in _remotes(ws)
    if not valid_branch(name) or "@" in name or name.startswith("refs/") or remote:
        raise UsageError(f"--to {to!r} is not a name for a new or local branch; give one such "
                         "as `results/lr-sweep`")  # fmt: skip
    return f"refs/heads/{name}"


def _remotes(ws: Workspace) -> set[str]:
    listed = git.run(ws.workdir, "remote")
    return set(listed.stdout.split()) if listed is not None and listed.returncode == 0 else set()


def _copies_tree(
    repo: pygit2.Repository,
    root: pygit2.Tree | None,
    copies: Mapping[str, Mapping[str, pygit2.Oid]],
) -> tuple[pygit2.Oid, dict[str, str]]:
    """`root` with a copy of each record in `experiments/`, and each run's fate (added,
    restored, unchanged)."""
    listing: pygit2.Tree | None = None
    if root is not None and EXPERIMENTS in root:
        entry = root[EXPERIMENTS]
        if entry.type_str != "tree":
            raise GitexpError(f"{EXPERIMENTS} is a file on that branch; records are published "
                              f"into a folder {EXPERIMENTS}/")  # fmt: skip
        listing = entry.peel(pygit2.Tree)
    attributes = repo.create_blob(guide.PUBLISHED_ATTRIBUTES)
    builder = repo.TreeBuilder(listing) if listing is not None else repo.TreeBuilder()
    fate = {}
    for run_id, files in copies.items():
        folder = repo.TreeBuilder()
        for name, oid in sorted(files.items()):
            folder.insert(name, oid, FileMode.BLOB)
        folder.insert(guide.ATTRIBUTES, attributes, FileMode.BLOB)
        made = folder.write()
        before = listing[run_id].id if listing is not None and run_id in listing else None
        fate[run_id] = "unchanged" if before == made else "restored" if before else "added"
        builder.insert(run_id, made, FileMode.TREE)
    top = repo.TreeBuilder(root) if root is not None else repo.TreeBuilder()
    top.insert(EXPERIMENTS, builder.write(), FileMode.TREE)
    return top.write(), fate


def _refuse_local_changes(ws: Workspace, run_ids: Sequence[str]) -> None:
    """Publishing onto the checked-out branch rewrites these folders: never over changes
    nobody committed."""
    paths = [copy_path(run_id) for run_id in run_ids]
    done = git.run(ws.workdir, "status", "--porcelain", "--untracked-files=all", "--", *paths)
    if done is None:
        raise GitexpError("publishing onto the checked-out branch needs git; install it")
    changed = [line[3:] for line in done.stdout.splitlines() if line]
    if changed:
        raise Refused(f"{changed[0]} is changed or untracked in the work tree; commit, stash or "
                      "remove it before publishing that run here")  # fmt: skip
    top = ws.workdir / EXPERIMENTS
    if top.is_symlink() or (top.exists() and not top.is_dir()):
        raise Refused(f"{EXPERIMENTS} in the work tree is not a folder (a link or a file); "
                      "publish writes copies only into a folder of its own")  # fmt: skip


def _message(runs: Sequence[catalog.RunSummary], branch: str, tip: pygit2.Commit) -> str:
    named = list(dict.fromkeys(run.name or run.id for run in runs))
    more = f" and {len(named) - 3} more" if len(named) > 3 else ""
    count = f"{len(runs)} gitexp runs" if len(runs) > 1 else "gitexp run"
    lines = [f"Publish {count}: {', '.join(named[:3])}{more}", ""]
    lines += [f"Copied from {branch} at {tip.id}:", *(f"  {copy_path(run.id)}" for run in runs)]
    lines += ["", "`gitexp verify` checks each copy against the signed commit that recorded it."]
    return "\n".join(lines) + "\n"


def _chosen(ws: Workspace, refs: Sequence[str]) -> dict[str, catalog.RunSummary]:
    runs: dict[str, catalog.RunSummary] = {}
    for ref in refs:
        for run in history.resolve_many(ws, ref):
            if run.status == INVALID:
                raise GitexpError(f"run {run.id} cannot be read ({run.problem}); nothing was "
                                  "published")  # fmt: skip
            runs.setdefault(run.id, run)
    return runs


def _destination(ws: Workspace, to: str | None) -> tuple[str, bool]:
    """The full ref to publish on, and whether it is the branch checked out here; refused
    when it is the runs branch, or checked out in another worktree."""
    target = _target(ws, to)
    if target == ws.runs_ref:
        raise UsageError(f"{ws.settings.branch} is the runs branch; publish copies records "
                         "onto a code branch (--to BRANCH)")  # fmt: skip
    where = checked_out_at(ws, target)
    here = where is not None and where.resolve() == ws.workdir.resolve()
    if where is not None and not here:
        raise Refused(f"{target.removeprefix('refs/heads/')} is checked out in {where}; "
                      "publish from there, or switch that worktree to another branch")  # fmt: skip
    return target, here


def publish(ws: Workspace, refs: Sequence[str], to: str | None = None) -> Published:
    """Copy the records `refs` name onto the code branch `to` (default: the checked-out one)."""
    runs = _chosen(ws, refs)
    tip = store.tip(ws)
    if tip is None:
        raise GitexpError("there are no runs yet; record one with `gitexp run -- CMD`")
    folders = store.run_folders(tip)
    target, here = _destination(ws, to)
    branch = target.removeprefix("refs/heads/")
    repo = ws.repo
    old = ws.ref_target(target)
    if old is not None:
        base: pygit2.Commit | None = repo[old].peel(pygit2.Commit)
    else:  # a new branch starts where HEAD is, as `git switch -c` would
        base = None if repo.head_is_unborn else repo.head.peel(pygit2.Commit)
    if here:
        _refuse_local_changes(ws, list(runs))
    copies = {run_id: _record_files(ws, folders[run_id]) for run_id in runs}
    tree, fate = _copies_tree(repo, base.tree if base is not None else None, copies)
    by = {kind: tuple(r for r in runs if fate[r] == kind)
          for kind in ("added", "restored", "unchanged")}  # fmt: skip
    made: pygit2.Oid | None = None
    if base is None or tree != base.tree_id:
        message = _message(list(runs.values()), ws.settings.branch, tip)
        parents = [base.id] if base is not None else []
        made = signing.commit(repo, message, tree, parents, signing.signer(repo))
    elif old is not None:
        return Published(branch, None, unchanged=by["unchanged"], work_tree=here)
    commit = made if made is not None else base.id if base is not None else None
    moved = git.run(ws.workdir, "update-ref", "-m", "gitexp publish", target, str(commit),
                    old or _ZERO)  # fmt: skip
    if moved is None or moved.returncode != 0:
        why = git.said(moved) if moved is not None else "git is not installed"
        raise GitexpError(f"could not move {branch} ({why}); nothing was published, try again")
    if here:
        _check_out(ws, repo, {r: copies[r] for r in runs if fate[r] != "unchanged"})
    return Published(branch, str(made) if made is not None else None, by["added"],
                     by["restored"], by["unchanged"], here, created=old is None)  # fmt: skip


def _check_out(
    ws: Workspace, repo: pygit2.Repository, copies: Mapping[str, Mapping[str, pygit2.Oid]]
) -> None:
    """The new copies in the work tree and the index, exactly as committed: what an edited
    copy held besides the record goes (it had no local changes, so nothing is lost)."""
    attributes = repo.create_blob(guide.PUBLISHED_ATTRIBUTES)
    lines = []
    for run_id, record in copies.items():
        folder = ws.workdir / EXPERIMENTS / run_id
        files = {**record, guide.ATTRIBUTES: attributes}
        # Whatever the index holds there: files, or a link committed in the folder's place.
        listed = git.run(ws.workdir, "ls-files", "-z", "--", f"{EXPERIMENTS}/{run_id}")
        for path in listed.stdout.split("\0") if listed is not None else []:
            if path and path.removeprefix(copy_path(run_id)) not in files:
                (ws.workdir / path).unlink(missing_ok=True)
                lines.append(f"0 {_ZERO}\t{path}\n")
        if folder.is_symlink() or (folder.exists() and not folder.is_dir()):
            folder.unlink()  # committed in its place, and replaced by the commit: never followed
        folder.mkdir(parents=True, exist_ok=True)
        for name, oid in sorted(files.items()):
            replace_file(folder / name, repo[oid].peel(pygit2.Blob).data)
            lines.append(f"100644 {oid}\t{copy_path(run_id, name)}\n")
    done = git.run(ws.workdir, "update-index", "--index-info", stdin=os.fsencode("".join(lines)))
    if done is not None and done.returncode == 0:
        git.run(ws.workdir, "update-index", "-q", "--refresh")
        return
    why = git.said(done) if done is not None else "git is not installed"
    raise GitexpError(f"published, but the index could not be updated ({why}); "
                      "`git reset -- experiments` brings it in line with the commit")  # fmt: skip
