"""The runs branch: one commit per run, written with pygit2, never touching the working tree."""

from __future__ import annotations

import fcntl
import os
import random
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import pygit2
from pygit2.enums import FileMode

from gitexp import signing
from gitexp.errors import GitexpError
from gitexp.record import EXPERIMENTS
from gitexp.workspace import Workspace

README = """\
# Experiment records

This branch is written by gitexp, a git-native experiment tracker. Nobody needs to check it
out: read it with `git log`, `git show` and `git diff`.

- Each commit on the first-parent line records one run, newest first:
  `git log --first-parent {branch}`.
- `experiments/<run id>/` holds the run's record as plain text: `run.yaml` (identity and
  outcome), `config.yaml` (the resolved configuration), `code.yaml` and `code.diff` (the
  commit the run started from and its uncommitted changes), `env.yaml`, `seeds.yaml`,
  `data.yaml`, `artifacts.yaml`, `metrics.tsv`, `summary.yaml` and `output.log`.
- A run commit's second parent is the snapshot commit of the exact working tree the run
  used, so `git diff <snapshot A> <snapshot B>` compares two runs' code.
- Every file except `annotations.yaml` is written once and never edited.
"""

_RETRIES = 50
# git's own default for `gc.auto`: above this many loose objects, `git gc --auto` packs.
_LOOSE_OBJECT_LIMIT = 6700


def _commit_message(summary: str, body: str) -> str:
    return f"{summary}\n\n{body}".rstrip() + "\n"


@contextmanager
def _branch_lock(ws: Workspace) -> Iterator[None]:
    # Writers on one machine queue here instead of racing; the compare-and-swap ref update
    # below stays the guarantee (a shared filesystem may not honour flock).
    ws.state_dir.mkdir(parents=True, exist_ok=True)
    with open(ws.state_dir / "branch.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _checked_out_at(ws: Workspace) -> Path | None:
    """The worktree that has the runs branch checked out, if any."""
    common = ws.state_dir.parent
    heads = [(common / "HEAD", ws.workdir)]
    worktrees = common / "worktrees"
    if worktrees.is_dir():
        for entry in worktrees.iterdir():
            gitdir = entry / "gitdir"
            where = Path(gitdir.read_text().strip()).parent if gitdir.is_file() else entry
            heads.append((entry / "HEAD", where))
    for head, where in heads:
        try:
            if head.read_text().strip() == f"ref: {ws.runs_ref}":
                return where
        except OSError:
            continue
    return None


def check_writable(ws: Workspace) -> None:
    """Refuse, as git does, to move a branch that a worktree has checked out."""
    where = _checked_out_at(ws)
    if where is not None:
        raise GitexpError(
            f"the runs branch {ws.settings.branch} is checked out in {where}; gitexp will not "
            "move a checked-out branch: switch that worktree to another branch"
        )


def tip(ws: Workspace) -> pygit2.Commit | None:
    """The newest commit of the runs branch, or None before the first run."""
    try:
        ref = ws.repo.references[ws.runs_ref]
    except KeyError:
        return None
    return ws.repo[ref.target].peel(pygit2.Commit)


def ensure_branch(ws: Workspace) -> pygit2.Commit:
    """The runs branch's tip, creating the branch with its README root commit if missing."""
    existing = tip(ws)
    if existing is not None:
        return existing
    repo = ws.repo
    readme = repo.create_blob(README.format(branch=ws.settings.branch).encode())
    builder = repo.TreeBuilder()
    builder.insert("README.md", readme, FileMode.BLOB)
    message = _commit_message(
        "gitexp: start the runs branch", "Each following commit records one experiment run."
    )
    sign_with = signing.required_signer(repo, ws.settings.require_signed)
    root = signing.commit(repo, message, builder.write(), [], sign_with)
    try:
        repo.references.create(ws.runs_ref, root)
    except (pygit2.AlreadyExistsError, pygit2.GitError):
        pass  # another process created it first: use theirs
    found = tip(ws)
    if found is None:  # pragma: no cover - the ref was created above or by a racer
        raise GitexpError(f"could not create the branch {ws.settings.branch}")
    return found


def experiments_tree(commit: pygit2.Commit) -> pygit2.Tree | None:
    """The `experiments/` folder of a runs-branch commit, None before the first run."""
    root = commit.tree
    return root[EXPERIMENTS].peel(pygit2.Tree) if EXPERIMENTS in root else None


def _with_folder(
    repo: pygit2.Repository,
    root: pygit2.Tree,
    experiments: pygit2.Tree | None,
    folder: str,
    files: Mapping[str, bytes],
) -> pygit2.Oid:
    """`root` with `experiments/<folder>/` replaced by `files`.

    With thousands of runs, `experiments/` is by far the largest object written; it is read
    once and rewritten once per commit.
    """
    run = repo.TreeBuilder()
    for name, data in sorted(files.items()):
        run.insert(name, repo.create_blob(data), FileMode.BLOB)
    listing = repo.TreeBuilder(experiments) if experiments is not None else repo.TreeBuilder()
    listing.insert(folder, run.write(), FileMode.TREE)
    top = repo.TreeBuilder(root)
    top.insert(EXPERIMENTS, listing.write(), FileMode.TREE)
    return top.write()


def write_run(
    ws: Workspace,
    run_id: str,
    files: Mapping[str, bytes],
    message: tuple[str, str],
    snapshot: str | None = None,
) -> pygit2.Oid:
    """Commit `files` as `experiments/<run_id>/` on top of the runs branch.

    The first parent is the previous tip; `snapshot`, the run's code, is the second. A run
    already on the branch is left alone and its existing commit returned.
    """

    def new_folder(current: Mapping[str, bytes] | None) -> Mapping[str, bytes] | None:
        return files if current is None else None

    return _append(ws, run_id, new_folder, message, snapshot)


def update_run(
    ws: Workspace,
    run_id: str,
    change: Callable[[Mapping[str, bytes]], Mapping[str, bytes] | None],
    message: tuple[str, str],
) -> pygit2.Oid:
    """Commit `change(files)` as the new content of a run's folder (for annotations).

    `change` sees the folder as it is at the tip this commit goes on, so that two people
    annotating at once both keep their changes; it returns None when there is nothing to do.
    """

    def changed(current: Mapping[str, bytes] | None) -> Mapping[str, bytes] | None:
        if current is None:
            raise GitexpError(f"no run {run_id!r}; see `gitexp log`")
        return change(current)

    return _append(ws, run_id, changed, message, None)


def _append(
    ws: Workspace,
    run_id: str,
    make: Callable[[Mapping[str, bytes] | None], Mapping[str, bytes] | None],
    message: tuple[str, str],
    snapshot: str | None,
) -> pygit2.Oid:
    """One commit on the runs branch whose folder for `run_id` is `make(current folder)`.

    Safe against concurrent writers: the ref moves by compare-and-swap and the whole step is
    retried when another writer got there first. The commit is signed when git has a signing
    key (signing.SigningFailed if it cannot sign).
    """
    check_writable(ws)
    repo = ws.repo
    sign_with = signing.required_signer(repo, ws.settings.require_signed)
    with _branch_lock(ws):
        for attempt in range(_RETRIES):
            parent = ensure_branch(ws)
            experiments = experiments_tree(parent)
            current = _folder_files(repo, experiments, run_id)
            files = make(current)
            if files is None:
                return parent.id
            tree = _with_folder(repo, parent.tree, experiments, run_id, files)
            parents = [parent.id] + ([pygit2.Oid(hex=snapshot)] if snapshot else [])
            oid = signing.commit(repo, _commit_message(*message), tree, parents, sign_with)
            ref = repo.references[ws.runs_ref]
            if ref.target != parent.id:
                continue
            try:
                ref.set_target(oid, message[0])
            except pygit2.GitError:
                # Moved by another writer, or its lock file is held: read the tip again.
                time.sleep(random.uniform(0, 0.01 * (attempt + 1)))
                continue
            _pack_if_needed(ws)
            return oid
    raise GitexpError(
        f"could not update {ws.settings.branch} after {_RETRIES} attempts; the run is kept "
        "under .git/gitexp/ and `gitexp recover` will commit it"
    )


def _folder_files(
    repo: pygit2.Repository, experiments: pygit2.Tree | None, run_id: str
) -> dict[str, bytes] | None:
    if experiments is None or run_id not in experiments:
        return None
    folder = experiments[run_id].peel(pygit2.Tree)
    return {str(entry.name): repo[entry.id].peel(pygit2.Blob).data for entry in folder}


def _loose_object_limit(repo: pygit2.Repository) -> int:
    try:
        return repo.config.get_int("gc.auto")
    except (KeyError, ValueError, pygit2.GitError):
        return _LOOSE_OBJECT_LIMIT


def _pack_if_needed(ws: Workspace) -> None:
    """Run `git gc --auto` once loose objects pile up, as git does after its own commits.

    libgit2 writes every object loose; thousands of runs would otherwise leave hundreds of
    thousands of small files. The count is estimated from one fan-out folder, as git does,
    so the common case costs one directory listing. git detaches the packing itself
    (`gc.autoDetach`), so a run's exit is not held up by it.
    """
    limit = _loose_object_limit(ws.repo)
    sample = ws.state_dir.parent / "objects" / "17"
    try:
        loose = len(os.listdir(sample)) * 256
    except OSError:
        return
    if limit <= 0 or loose <= limit:
        return
    try:
        subprocess.run(
            ["git", "gc", "--auto", "--quiet"],
            cwd=ws.workdir,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            check=False,
        )
    except OSError:
        pass  # no git on PATH: the records are safe, merely unpacked


def read_files(ws: Workspace, commit: pygit2.Commit, run_id: str) -> dict[str, bytes]:
    """Every file of one record as stored in `commit`."""
    files = _folder_files(ws.repo, experiments_tree(commit), run_id)
    if files is None:
        raise GitexpError(f"no run {run_id!r}; see `gitexp log`")
    return files


def run_folders(commit: pygit2.Commit | None) -> dict[str, pygit2.Oid]:
    """Each run id on the branch with the tree id of its folder."""
    experiments = experiments_tree(commit) if commit is not None else None
    if experiments is None:
        return {}
    return {str(entry.name): entry.id for entry in experiments if entry.type_str == "tree"}
