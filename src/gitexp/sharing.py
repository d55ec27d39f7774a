"""`gitexp push` and `gitexp pull`: runs branches and the DVC objects they name, shared.

The branch travels with the user's own `git` (their credential helpers, ssh agent and
config); runs branches from several machines merge as a union, since records never
collide; the data and artifacts the records name travel to and from the DVC remote.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterable
from dataclasses import dataclass

import pygit2
from pygit2.enums import FileMode

from gitexp import signing, store, yamlio
from gitexp.annotation import Annotations
from gitexp.errors import GitexpError
from gitexp.record import ANNOTATIONS, ARTIFACTS, DATA, EXPERIMENTS
from gitexp.workspace import Workspace


@dataclass(frozen=True)
class Shared:
    """What a push or pull moved."""

    runs: int  # runs new on the receiving side
    objects: int  # DVC objects (files and folder listings) copied


def _git(ws: Workspace, *args: str) -> None:
    done = subprocess.run(["git", *args], cwd=ws.workdir, capture_output=True, text=True)
    if done.returncode != 0:
        reason = (done.stderr.strip().splitlines() or ["git failed"])[-1]
        raise GitexpError(f"`git {' '.join(args)}` failed: {reason}")


def referenced_objects(ws: Workspace, commit: pygit2.Commit | None) -> set[str]:
    """md5 of every dataset and artifact the records in `commit` name."""
    found: set[str] = set()
    experiments = store.experiments_tree(commit) if commit is not None else None
    for entry in experiments or []:
        folder = ws.repo[entry.id].peel(pygit2.Tree)
        for name, key in ((DATA, "datasets"), (ARTIFACTS, "artifacts")):
            if name in folder:
                text = ws.repo[folder[name].id].peel(pygit2.Blob).data
                for item in (yamlio.load(text, name) or {}).get(key, []):
                    found.add(str(item["md5"]))
    return found


def _transfer(ws: Workspace, md5s: Iterable[str], upload: bool) -> int:
    """Copy objects between the DVC cache and the default remote; return how many moved."""
    from gitexp import data

    return data.transfer(ws, md5s, upload)


def push(ws: Workspace, remote: str) -> Shared:
    """Send the runs branch to a git remote, and the objects it names to the DVC remote."""
    tip = store.tip(ws)
    if tip is None:
        raise GitexpError("there are no runs to push; record one with `gitexp run -- CMD`")
    objects = _transfer(ws, referenced_objects(ws, tip), upload=True)
    _git(ws, "push", "--quiet", remote, f"{ws.runs_ref}:{ws.runs_ref}")
    return Shared(len(store.run_folders(tip)), objects)


def _union(ws: Workspace, ours: pygit2.Commit, theirs: pygit2.Commit) -> pygit2.Oid:
    """A merge commit whose records are those of both sides."""
    repo = ws.repo
    mine = store.experiments_tree(ours)
    listing = repo.TreeBuilder(mine) if mine is not None else repo.TreeBuilder()
    for entry in store.experiments_tree(theirs) or []:
        name = str(entry.name)
        if mine is None or name not in mine:
            listing.insert(name, entry.id, FileMode.TREE)
        elif mine[name].id != entry.id:
            merged = _merged_annotations(
                repo, mine[name].peel(pygit2.Tree), entry.peel(pygit2.Tree)
            )
            if merged is not None:
                listing.insert(name, merged, FileMode.TREE)
    top = repo.TreeBuilder(ours.tree)
    top.insert(EXPERIMENTS, listing.write(), FileMode.TREE)
    message = "gitexp: merge runs recorded elsewhere\n"
    sign_with = signing.required_signer(repo, ws.settings.require_signed)
    return signing.commit(repo, message, top.write(), [ours.id, theirs.id], sign_with)


def _merged_annotations(
    repo: pygit2.Repository, ours: pygit2.Tree, theirs: pygit2.Tree
) -> pygit2.Oid | None:
    """One run annotated on both sides: its folder with the tags and notes of both.

    None (keep ours) when the sides differ in more than annotations.yaml: a record is
    immutable, and `gitexp verify` reports whichever side was changed.
    """
    rest = {e.name: e.id for e in ours if e.name != ANNOTATIONS}
    if rest != {e.name: e.id for e in theirs if e.name != ANNOTATIONS}:
        return None
    sides = [
        Annotations.parse(repo[t[ANNOTATIONS].id].peel(pygit2.Blob).data, ANNOTATIONS)
        if ANNOTATIONS in t
        else Annotations()
        for t in (ours, theirs)
    ]
    both = Annotations(
        tuple(dict.fromkeys([*sides[0].tags, *sides[1].tags])),
        tuple(dict.fromkeys([*sides[0].notes, *sides[1].notes])),
    )
    folder = repo.TreeBuilder(ours)
    folder.insert(ANNOTATIONS, repo.create_blob(both.to_yaml()), FileMode.BLOB)
    return folder.write()


def pull(ws: Workspace, remote: str) -> Shared:
    """Fetch a remote's runs branch, merge it into ours, and fetch the objects it names."""
    tracking = f"refs/remotes/{remote}/{ws.settings.branch}"
    _git(ws, "fetch", "--quiet", remote, f"+{ws.runs_ref}:{tracking}")
    repo = ws.repo
    theirs = repo.references[tracking].peel(pygit2.Commit)
    ours = store.tip(ws)
    before = set(store.run_folders(ours))
    if ours is None:
        repo.references.create(ws.runs_ref, theirs.id)
    elif ours.id != theirs.id and not repo.descendant_of(ours.id, theirs.id):
        store.check_writable(ws)
        fast_forward = repo.descendant_of(theirs.id, ours.id)
        new = theirs.id if fast_forward else _union(ws, ours, theirs)
        ref = repo.references[ws.runs_ref]
        if ref.target != ours.id:
            raise GitexpError("the runs branch moved during the pull; run `gitexp pull` again")
        ref.set_target(new, f"gitexp pull {remote}")
    tip = store.tip(ws)
    added = set(store.run_folders(tip)) - before
    objects = _transfer(ws, referenced_objects(ws, tip), upload=False)
    return Shared(len(added), objects)
