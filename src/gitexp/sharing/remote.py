"""`gitexp push` and `gitexp pull`: runs branches and the DVC objects they name, shared.

The branch travels with the user's own `git` (their credential helpers, ssh agent and
config); runs branches from several machines merge as a union, since records never
collide; the data and artifacts the records name travel to and from the DVC remote.
"""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from dataclasses import dataclass

import pygit2
from pygit2.enums import FileMode

from gitexp import data, reader, signing, store
from gitexp.errors import GitexpError, Unreadable, UsageError
from gitexp.record import ANNOTATIONS, ARTIFACTS, DATA, EXPERIMENTS, Annotations
from gitexp.workspace import Workspace


@dataclass(frozen=True)
class Shared:
    """What a push or pull moved."""

    runs: int  # runs new on the receiving side
    objects: data.Moved | None  # DVC objects (files and folder listings); None: no remote
    kept: tuple[str, ...] = ()  # runs the other side holds otherwise: ours were kept


def _git(ws: Workspace, command: str, *options: str, words: Sequence[str]) -> None:
    """Run git, with the user's words (remote, refspec) after an end-of-options marker, so
    that none of them is ever taken for an option (`--upload-pack=CMD` runs CMD)."""
    args = [command, *options, "--end-of-options", *words]
    done = subprocess.run(
        ["git", *args], cwd=ws.workdir, capture_output=True, text=True, errors="replace"
    )
    if done.returncode == 0:
        return
    raise GitexpError(_failure(ws, command, words[0], done.stderr))


def _failure(ws: Workspace, command: str, remote: str, stderr: str) -> str:
    """git's failure as one sentence saying what to do: git's own reason where it has no
    better one (its first, not the advice it prints after)."""
    said = [line.strip() for line in stderr.splitlines() if line.strip()]
    text = " ".join(said)
    if command == "push" and "rejected" in text:
        return (
            f"{remote} has runs that this repository lacks; run `gitexp pull {remote}` first, "
            "then push again"
        )
    if "does not appear to be a git repository" in text or "not a git repository" in text:
        return (
            f"{remote} is not a git repository: give a remote's name (`git remote -v`), a URL, "
            "the path of a repository (`git init --bare PATH` makes one) or a bundle file"
        )
    if "couldn't find remote ref" in text or "Couldn't find remote ref" in text:
        return f"{remote} has no runs branch ({ws.settings.branch}) yet: there is nothing to pull"
    if "Could not read from remote repository" in text:
        return (
            f"{remote} cannot be reached: check the URL, the network and your access rights "
            f"(`git ls-remote {remote}` shows git's view)"
        )
    reasons = [line for line in said if line.startswith(("fatal:", "error:"))] or said
    reason = reasons[0].removeprefix("fatal: ").removeprefix("error: ") if reasons else ""
    return f"`git {command}` with {remote} failed: {reason or 'git gave no reason'}"


def _check_remote(remote: str) -> None:
    if not remote or remote.startswith("-") or any(c in remote for c in "\n\r\0"):
        raise UsageError(
            f"{remote!r} is not a git remote: give a remote's name (see `git remote -v`), "
            "a URL or a path"
        )


def referenced_objects(
    ws: Workspace, commit: pygit2.Commit | None, runs: set[str] | None = None
) -> set[str]:
    """md5 of every dataset and artifact the records in `commit` name (those of `runs` only,
    when given)."""
    found: set[str] = set()
    experiments = store.experiments_tree(commit) if commit is not None else None
    for entry in experiments or []:
        if entry.filemode != FileMode.TREE or not reader.is_run_id(str(entry.name)):
            continue
        if runs is not None and str(entry.name) not in runs:
            continue
        run_id, folder = str(entry.name), ws.repo[entry.id].peel(pygit2.Tree)
        for name in (DATA, ARTIFACTS):
            try:
                found.update(
                    p.md5
                    for p in reader.pins(
                        run_id, name, store.record_file(ws.repo, folder, run_id, name)
                    )
                )
            except Unreadable:
                continue  # nothing it names is moved; `gitexp log` names the record
    return found


def push(ws: Workspace, remote: str) -> Shared:
    """Send the runs branch to a git remote, and the objects it names to the DVC remote."""
    tip = store.tip(ws)
    if tip is None:
        raise GitexpError("there are no runs to push; record one with `gitexp run -- CMD`")
    _check_remote(remote)
    objects = data.transfer(ws, referenced_objects(ws, tip), upload=True)
    _git(ws, "push", "--quiet", words=[remote, f"{ws.runs_ref}:{ws.runs_ref}"])
    return Shared(len(store.run_folders(tip)), objects)


def _is_record(entry: pygit2.Object) -> bool:
    return entry.filemode == FileMode.TREE and reader.is_run_id(str(entry.name))


def _only_records(commit: pygit2.Commit) -> bool:
    """Whether everything under the commit's experiments/ is a record folder."""
    return all(_is_record(entry) for entry in store.experiments_tree(commit) or [])


def _union(
    ws: Workspace, ours: pygit2.Commit | None, theirs: pygit2.Commit, kept: list[str]
) -> pygit2.Oid:
    """A merge commit whose records are those of both sides (or theirs, cleaned, if we have
    none yet). A run both sides hold that differs beyond its tags and notes keeps our
    record, and is added to `kept`: a record is immutable, whoever edited it.

    Only folders that are records come across: a run id holding files. Anything else under
    their experiments/ (a symlink, a file, a name that is no run id) stays behind.
    """
    repo = ws.repo
    mine = store.experiments_tree(ours) if ours is not None else None
    listing = repo.TreeBuilder(mine) if mine is not None else repo.TreeBuilder()
    for entry in store.experiments_tree(theirs) or []:
        name = str(entry.name)
        if not _is_record(entry):
            continue
        if mine is None or name not in mine:
            listing.insert(name, entry.id, FileMode.TREE)
        elif mine[name].id != entry.id and mine[name].filemode == FileMode.TREE:
            merged = _merged_annotations(
                repo, name, mine[name].peel(pygit2.Tree), entry.peel(pygit2.Tree)
            )
            if merged is not None:
                listing.insert(name, merged, FileMode.TREE)
            else:
                kept.append(name)  # theirs differs beyond tags and notes: ours stays
    top = repo.TreeBuilder((ours or theirs).tree)
    top.insert(EXPERIMENTS, listing.write(), FileMode.TREE)
    message = "gitexp: merge runs recorded elsewhere\n"
    sign_with = signing.required_signer(repo, ws.settings.require_signed)
    parents = [ours.id, theirs.id] if ours is not None else [theirs.id]
    return signing.commit(repo, message, top.write(), parents, sign_with)


def _merged_annotations(
    repo: pygit2.Repository, run_id: str, ours: pygit2.Tree, theirs: pygit2.Tree
) -> pygit2.Oid | None:
    """One run annotated on both sides: its folder with the tags and notes of both.

    None (keep ours) when the sides differ in more than annotations.yaml, or either side's
    annotations cannot be read: a record is immutable, and `gitexp verify` reports whichever
    side was changed.
    """
    rest = {e.name: e.id for e in ours if e.name != ANNOTATIONS}
    if rest != {e.name: e.id for e in theirs if e.name != ANNOTATIONS}:
        return None
    try:
        sides = [
            reader.annotated(run_id, store.record_file(repo, t, run_id, ANNOTATIONS))
            for t in (ours, theirs)
        ]
    except Unreadable:
        return None
    both = Annotations(
        tuple(dict.fromkeys([*sides[0].tags, *sides[1].tags])),
        tuple(dict.fromkeys([*sides[0].notes, *sides[1].notes])),
        sides[0].archived or sides[1].archived,  # as tags are: a union
    )
    folder = repo.TreeBuilder(ours)
    folder.insert(ANNOTATIONS, repo.create_blob(both.to_yaml()), FileMode.BLOB)
    return folder.write()


def pull(ws: Workspace, remote: str) -> Shared:
    """Fetch a remote's runs branch, merge it into ours, and fetch the objects it names."""
    _check_remote(remote)
    named = remote in ws.repo.remotes.names()
    # A named remote's branch is kept where git keeps it; a URL's only for this pull.
    tracking = f"refs/remotes/{remote}/{ws.settings.branch}" if named else "refs/gitexp/pulled"
    # Read before the fetch: a fresh clone's runs branch starts where the remote's was when
    # cloned (store.tip), so that the runs this pull brings count as new.
    before = set(store.run_folders(store.tip(ws)))
    fetch(ws, remote, tracking)
    done = merge(ws, tracking, f"gitexp pull {remote}", before)
    objects = data.transfer(ws, referenced_objects(ws, store.tip(ws)), upload=False)
    return Shared(len(done.added), objects, tuple(done.kept))


def fetch(ws: Workspace, source: str, tracking: str, theirs: str | None = None) -> pygit2.Commit:
    """The runs branch of `source` (a remote, a URL, a path, a git bundle file), fetched to
    the ref `tracking`; `theirs` names it there when its settings name another branch."""
    # --no-tags: only the runs branch comes, never the tags git would follow along with it.
    _git(ws, "fetch", "--quiet", "--no-tags", "--no-write-fetch-head", words=[source,
         f"+{theirs or ws.runs_ref}:{tracking}"])  # fmt: skip
    return ws.repo.references[tracking].peel(pygit2.Commit)


@dataclass(frozen=True)
class Merged:
    added: list[str]  # runs new here
    kept: list[str]  # runs whose record differs on the other side: ours was kept


def merge(ws: Workspace, tracking: str, message: str, before: set[str]) -> Merged:
    """Merge the runs branch fetched to `tracking` into ours (see _union); the runs new here,
    that is, not among those `before` it."""
    repo = ws.repo
    theirs = repo.references[tracking].peel(pygit2.Commit)
    clean = _only_records(theirs)
    kept: list[str] = []

    def merged(ours: pygit2.Commit | None) -> pygit2.Oid | None:
        kept.clear()  # advance may call again, against a newer tip
        if ours is not None and (ours.id == theirs.id or repo.descendant_of(ours.id, theirs.id)):
            return None  # we have all of theirs already
        if clean and (
            ours is None
            or (repo.descendant_of(theirs.id, ours.id) and _records_kept(repo, ours, theirs))
        ):
            return theirs.id  # nothing of ours that they lack or changed: theirs as it is
        return _union(ws, ours, theirs, kept)

    store.advance(ws, merged, message)
    tip = store.tip(ws)
    added = sorted(set(store.run_folders(tip)) - before)
    if tip is not None:
        store.note_seen(ws, added, str(tip.id))
    return Merged(added, sorted(kept))


def _records_kept(repo: pygit2.Repository, ours: pygit2.Commit, theirs: pygit2.Commit) -> bool:
    """Whether `theirs`, which grew from `ours`, holds each of our records as we do, but for
    tags and notes: a descendant may add runs and annotate them, never edit one."""
    mine, their = store.run_folders(ours), store.run_folders(theirs)
    for run_id, tree in mine.items():
        other = their.get(run_id)
        if other is None:
            return False
        if other != tree:
            ours_tree, theirs_tree = repo[tree].peel(pygit2.Tree), repo[other].peel(pygit2.Tree)
            rest = {e.name: e.id for e in ours_tree if e.name != ANNOTATIONS}
            if rest != {e.name: e.id for e in theirs_tree if e.name != ANNOTATIONS}:
                return False
    return True
