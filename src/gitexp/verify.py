"""`gitexp verify`: every record was created by a commit signed by a trusted key, no file of it
but annotations.yaml has changed since, its annotations were made by a commit signed by a
trusted key, and every object it names is there, undamaged (DESIGN.md §3).

Signatures are checked by `git verify-commit`, so git's own trust configuration decides
(`gpg.ssh.allowedSignersFile`, the gpg keyring, `gpg.minTrustLevel`): gitexp adds no trust
rules of its own.

Objects are read as stored, never as git's object substitution shows them. libgit2 ignores
replace refs but applies `info/grafts` and `shallow` to a commit's parents (measured with
libgit2 1.9), so parents are read from the commit object itself whenever either file exists;
every git verify runs has replace refs and grafts turned off; each object read is checked
against its hash. A replace ref or graft that names an object of the runs branch or of a
record is reported, since every other git command would show the substitute.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import re
import sqlite3
import subprocess
from collections.abc import Callable, Iterable, Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from pathlib import Path

import pygit2

from gitexp import catalog, pending, reader, store
from gitexp.errors import GitexpError, VerificationFailed
from gitexp.ids import ID_PATTERN
from gitexp.record import ANNOTATIONS, CODE, EXPERIMENTS
from gitexp.workspace import Workspace

OK, UNSIGNED, UNTRUSTED, BAD, MODIFIED, MISSING = (
    "ok",
    "unsigned",
    "untrusted key",
    "bad signature",
    "modified after signing",
    "missing",
)
DAMAGED, SUBSTITUTED, WRONG_SNAPSHOT = "damaged object", "substituted object", "wrong snapshot"
UNSIGNED_ANNOTATION, FORGED_ANNOTATION = "unsigned annotation", "forged annotation"
# When a run has several problems, the status shown is the first of these it has.
_PRECEDENCE = (
    MISSING,
    DAMAGED,
    SUBSTITUTED,
    BAD,
    UNTRUSTED,
    UNSIGNED,
    MODIFIED,
    WRONG_SNAPSHOT,
    FORGED_ANNOTATION,
    UNSIGNED_ANNOTATION,
)
# A signature's verdict, said of the commit that made a run's annotations as they are now.
_OF_ANNOTATIONS = {
    UNSIGNED: UNSIGNED_ANNOTATION,
    UNTRUSTED: FORGED_ANNOTATION,
    BAD: FORGED_ANNOTATION,
}
_SNAPSHOT = re.compile(rb"^snapshot: ([0-9a-f]{40,64})$", re.M)
# What `git verify-commit` says when a signature is sound but its key is not trusted.
_UNTRUSTED_SIGNS = ("No principal matched", "allowedSignersFile", "NO_PUBKEY", "GOODSIG")
# Blobs up to this size are read whole, which checks their bytes against their hash; a larger
# one (a checkpoint committed with the code) is only opened, so that memory stays bounded.
_HASHED_BLOB_LIMIT = 64 * 1024 * 1024
_GITLINK = 0o160000  # a submodule's commit in a tree: an object of another repository
_TREE = 0o040000


@dataclass(frozen=True)
class Check:
    """The verdict on one run."""

    run_id: str
    status: str
    detail: str = ""
    commit: str | None = None  # the commit that created the run's folder
    signer: str = ""  # what git says of the signature
    problems: tuple[str, ...] = ()  # every status found, `status` the first of them


@dataclass(frozen=True)
class Report:
    checks: tuple[Check, ...]
    rewritten: tuple[str, ...] = ()  # former tips the branch's history no longer holds
    broken: tuple[str, ...] = ()  # problems of the branch itself, in words
    published: tuple[Check, ...] = ()  # copies published in the work tree (`gitexp publish`)

    @property
    def failed(self) -> list[Check]:
        return [check for check in (*self.checks, *self.published) if check.status != OK]

    @property
    def ok(self) -> bool:
        return not self.failed and not self.rewritten and not self.broken


@dataclass(frozen=True)
class _Signature:
    status: str
    said: str  # git's own words


def _short(oid: pygit2.Oid | str) -> str:
    return str(oid)[:12]


# Without this, every git given GIT_GRAFT_FILE says that grafts are deprecated.
_GIT_OPTIONS = ("-c", "advice.graftFileDeprecated=false")


def _git_env() -> dict[str, str]:
    """git as verification needs it: the objects as stored, whatever replace refs and grafts
    say (GIT_GRAFT_FILE pointing at an empty file is git's own way to ignore info/grafts)."""
    return {**os.environ, "GIT_NO_REPLACE_OBJECTS": "1", "GIT_GRAFT_FILE": os.devnull}


# --- objects as stored -----------------------------------------------------------------------


class _Unreadable(Exception):
    """An object verification needs is missing, damaged, or not of the kind expected."""

    def __init__(self, oid: pygit2.Oid, reason: str, wrong_kind: bool = False) -> None:
        super().__init__(f"object {oid} is {reason}")
        self.oid, self.reason, self.wrong_kind = oid, reason, wrong_kind


def _damage(error: Exception) -> str:
    """What libgit2's error says of an object, in words."""
    if isinstance(error, KeyError):
        return "missing from the repository"
    text = str(error)
    if "hash mismatch" in text:
        return "damaged: its bytes do not match its hash"
    return f"damaged ({text.split(': ', 1)[-1]})"


def _graft_ids(paths: Iterable[Path]) -> dict[pygit2.Oid, Path]:
    """The commits that graft files (info/grafts, shallow) give other parents."""
    found: dict[pygit2.Oid, Path] = {}
    for path in paths:
        try:
            lines = path.read_text(errors="replace").splitlines()
        except OSError:
            continue
        for line in lines:
            words = line.split()
            try:
                found.setdefault(pygit2.Oid(hex=words[0]), path)
            except (IndexError, ValueError):
                continue
    return found


def _replace_refs(repo: pygit2.Repository) -> dict[pygit2.Oid, tuple[str, str]]:
    """Objects that git's replace refs substitute: id → (the ref, the substitute's id)."""
    base = os.environ.get("GIT_REPLACE_REF_BASE", "refs/replace/").rstrip("/") + "/"
    found: dict[pygit2.Oid, tuple[str, str]] = {}
    for name in repo.references:
        if not name.startswith(base):
            continue
        try:
            replaced = pygit2.Oid(hex=name[len(base) :])
            target = repo.references[name].target
        except (KeyError, ValueError, pygit2.GitError):
            continue
        found[replaced] = (name, str(target))
    return found


@dataclass
class _Listing:
    """A commit's experiments/ folder, as libgit2 parsed it and as its bytes are stored."""

    id: pygit2.Oid | None
    tree: pygit2.Tree | None = None
    raw: bytes = b""
    _names: dict[str, pygit2.Oid] | None = None

    def names(self) -> dict[str, pygit2.Oid]:
        if self._names is None:
            self._names = {str(e.name): e.id for e in self.tree} if self.tree is not None else {}
        return self._names

    def folder(self, name: str) -> pygit2.Oid | None:
        """The id of the run folder `name`, None when absent or not a folder."""
        if self.tree is None or name not in self.tree:
            return None
        entry = self.tree[name]
        return entry.id if entry.filemode == _TREE else None


class _Objects:
    """The repository's objects as stored: each read checked against its hash (libgit2's
    strict hash verification), commits' parents as the commits name them."""

    def __init__(self, repo: pygit2.Repository, git_dir: Path) -> None:
        self.repo = repo
        libgit2_grafts = [git_dir / "info" / "grafts", git_dir / "shallow"]
        # libgit2 applies these to Commit.parents; then parents are read from the object.
        self.grafted_parents = any(path.exists() for path in libgit2_grafts)
        self.shallow = _graft_ids([git_dir / "shallow"])
        given = os.environ.get("GIT_GRAFT_FILE")
        self.grafts = _graft_ids([git_dir / "info" / "grafts", *([Path(given)] if given else [])])
        self.replaced = _replace_refs(repo)
        self._folders: dict[pygit2.Oid, dict[str, pygit2.Oid]] = {}
        self._entries: dict[pygit2.Oid, list[tuple[str, pygit2.Oid, int]]] = {}
        self._whole: set[pygit2.Oid] = set()  # read, with everything they hold, undamaged

    def _read(self, oid: pygit2.Oid) -> pygit2.Object:
        """An object, or _Unreadable saying how it is missing or damaged."""
        try:
            return self.repo[oid]
        except (KeyError, ValueError, pygit2.GitError) as e:
            raise _Unreadable(oid, _damage(e)) from None

    def commit(self, oid: pygit2.Oid) -> pygit2.Commit:
        found = self._read(oid)
        if found.type != pygit2.enums.ObjectType.COMMIT:
            raise _Unreadable(oid, f"a {found.type_str}, not a commit", wrong_kind=True)
        return found.peel(pygit2.Commit)

    def parents(self, commit: pygit2.Commit) -> list[pygit2.Oid]:
        """The parents `commit` names, whatever grafts and shallow say."""
        if not self.grafted_parents:
            return list(commit.parent_ids)
        header = self.repo.odb.read(commit.id)[1].split(b"\n\n", 1)[0]
        return [
            pygit2.Oid(hex=line[7:].decode())
            for line in header.split(b"\n")
            if line.startswith(b"parent ")
        ]

    def listing(self, commit: pygit2.Commit) -> _Listing:
        """`experiments/` of a runs-branch commit."""
        root = self._read(commit.tree_id).peel(pygit2.Tree)
        if EXPERIMENTS not in root:
            return _Listing(None)
        oid = root[EXPERIMENTS].id
        try:
            tree = self.repo[oid].peel(pygit2.Tree)
            raw = self.repo.odb.read(oid)[1]
        except (KeyError, ValueError, pygit2.GitError) as e:
            raise _Unreadable(oid, _damage(e)) from None
        return _Listing(oid, tree, raw)

    def folder(self, oid: pygit2.Oid) -> dict[str, pygit2.Oid]:
        """A run folder's files: name → blob id."""
        if oid not in self._folders:
            self._folders[oid] = {name: child for name, child, _ in self._tree_entries(oid)}
        return self._folders[oid]

    def _tree_entries(self, oid: pygit2.Oid) -> list[tuple[str, pygit2.Oid, int]]:
        if oid not in self._entries:
            tree = self._read(oid)
            if tree.type != pygit2.enums.ObjectType.TREE:
                raise _Unreadable(oid, f"a {tree.type_str}, not a folder", wrong_kind=True)
            self._entries[oid] = [(str(e.name), e.id, e.filemode) for e in tree.peel(pygit2.Tree)]
        return self._entries[oid]

    def blob(self, oid: pygit2.Oid) -> bytes:
        try:
            return self.repo[oid].peel(pygit2.Blob).data
        except (KeyError, ValueError, pygit2.GitError) as e:
            raise _Unreadable(oid, _damage(e)) from None

    def substitute(self, oid: pygit2.Oid) -> str | None:
        """How git's object substitution shows `oid` otherwise, in words; None when it does not."""
        if oid in self.replaced:
            ref, target = self.replaced[oid]
            return f"the replace ref {ref} makes git show {_short(target)} in its place"
        if oid in self.grafts:
            return f"{self.grafts[oid]} gives it other parents"
        return None

    def problems(self, root: pygit2.Oid) -> list[tuple[str, str, pygit2.Oid, str]]:
        """Objects under the tree `root` that are missing, damaged or substituted:
        (status, path, object, what is wrong). What was read whole once is not read again."""
        found: list[tuple[str, str, pygit2.Oid, str]] = []
        todo: list[tuple[pygit2.Oid, str, bool]] = [(root, "", False)]
        while todo:
            oid, path, done = todo.pop()
            if oid in self._whole:
                continue
            if done:  # a tree whose entries have all been looked at
                if all(child in self._whole for _, child, _ in self._entries[oid]):
                    self._whole.add(oid)
                continue
            substitute = self.substitute(oid)
            if substitute is not None:
                found.append((SUBSTITUTED, path, oid, substitute))
            try:
                kind, size = self.repo.odb.read_header(oid)
                if kind == pygit2.enums.ObjectType.TREE:
                    entries = self._tree_entries(oid)
                elif size <= _HASHED_BLOB_LIMIT:
                    self.repo.odb.read(oid)
                    entries = []
                else:
                    entries = []
            except _Unreadable as e:
                found.append((DAMAGED, path, oid, e.reason))
                continue
            except (KeyError, ValueError, pygit2.GitError) as e:
                found.append((DAMAGED, path, oid, _damage(e)))
                continue
            if kind != pygit2.enums.ObjectType.TREE:
                if substitute is None:
                    self._whole.add(oid)
                continue
            if substitute is None:
                todo.append((oid, path, True))
            for name, child, mode in entries:
                if mode != _GITLINK:
                    todo.append((child, f"{path}/{name}" if path else name, False))
        return found


# --- the branch's history --------------------------------------------------------------------


Change = tuple[pygit2.Oid | None, pygit2.Oid | None]  # a run folder's id here, and in a parent


@dataclass(slots=True)
class _Step:
    """One commit of the runs branch: its parents on the branch, and per parent the run
    folders that differ from it (worked out, or remembered and decoded on first use)."""

    parents: list[pygit2.Oid] = field(default_factory=list)
    worked_out: list[dict[str, Change]] | None = field(default_factory=list)
    remembered: str = ""

    @property
    def changes(self) -> list[dict[str, Change]]:
        if self.worked_out is None:
            self.worked_out = [
                {name: _change(ids) for name, ids in changes.items()}
                for changes in json.loads(self.remembered)
            ]
        return self.worked_out

    def touches(self, names: AbstractSet[str]) -> bool:
        """Whether any of these runs' folders differs from a parent's. A remembered step is
        asked about a few runs without decoding it: a name absent from its JSON, as JSON
        writes names, is no key of it."""
        if self.worked_out is None and len(names) <= _FEW:
            return any(json.dumps(name) in self.remembered for name in names)
        return any(name in names for changes in self.changes for name in changes)


_FEW = 8  # up to this many runs looked for, a remembered step is searched rather than decoded


def _change(ids: Sequence[str | None]) -> Change:
    now, then = (None if oid is None else pygit2.Oid(hex=oid) for oid in ids)
    return now, then


@dataclass
class _History:
    """The runs branch as its commits built it."""

    steps: dict[pygit2.Oid, _Step] = field(default_factory=dict)  # every commit reached
    # run → each commit that created its folder, with that folder's id there
    created: dict[str, list[tuple[pygit2.Oid, pygit2.Oid]]] = field(default_factory=dict)
    broken: list[str] = field(default_factory=list)  # what the walk could not read, in words
    trees: set[pygit2.Oid] = field(default_factory=set)  # root and experiments/ trees
    remembered_trees: set[str] = field(default_factory=set)  # theirs, of remembered steps

    @property
    def commits(self) -> Mapping[pygit2.Oid, _Step]:
        return self.steps


# The run a gitexp commit names in its summary: a hint that saves comparing big listings.
_NAMED_RUN = re.compile(r"^gitexp: (?:annotate )?run (\S+)")


def _named_run(commit: pygit2.Commit) -> str | None:
    match = _NAMED_RUN.match(commit.raw_message.decode(errors="replace"))
    return match.group(1) if match and ID_PATTERN.fullmatch(match.group(1)) else None


def _entry_bytes(entry: pygit2.Object) -> bytes:
    """A tree entry as git stores it: octal mode, space, name, NUL, binary id."""
    return b"%o %s\0%s" % (entry.filemode, entry.raw_name, entry.id.raw)


def _only_change(here: _Listing, there: _Listing, name: str) -> Change | None:
    """The change of `name`'s entry, when the two listings are byte for byte the same but for
    that one entry (added, or given another id); None when that is not so.

    The entry's bytes are found once and only once in `here`, so they are where libgit2
    parsed them: the bytes before and after it are whole entries, shared with `there`.
    """
    if here.tree is None or name not in here.tree:
        return None
    mine = here.tree[name]
    entry = _entry_bytes(mine)
    at = here.raw.find(entry)
    if at < 0 or here.raw.find(entry, at + 1) >= 0:
        return None
    new, old = here.raw, there.raw
    if there.tree is not None and name in there.tree:
        theirs = there.tree[name]
        end = at + len(entry)
        same = old[at:end] == _entry_bytes(theirs) and len(new) == len(old)
        if same and new[:at] == old[:at] and new[end:] == old[end:]:
            return mine.id, theirs.id
        return None
    if (
        len(new) == len(old) + len(entry)
        and new[:at] == old[:at]
        and new[at + len(entry) :] == old[at:]
    ):
        return mine.id, None
    return None


def _changes(here: _Listing, there: _Listing, hint: str | None) -> dict[str, Change]:
    """The run folders that differ between a commit's listing and a parent's.

    A gitexp commit names the one run it adds or annotates; when the listings' bytes prove
    that, thousands of entries need no comparing. Otherwise every entry is compared.
    """
    if here.id == there.id:
        return {}
    if hint is not None:
        found = _only_change(here, there, hint)
        if found is not None:
            return {hint: found}
    now, before = here.names(), there.names()
    return {
        name: (now.get(name), before.get(name))
        for name in now.keys() | before.keys()
        if now.get(name) != before.get(name)
    }


def _snapshot_in(objects: _Objects, folder: pygit2.Oid | None) -> str | None:
    """The snapshot commit a run folder's code.yaml names (read without parsing the YAML)."""
    if folder is None:
        return None
    try:
        code = objects.folder(folder).get(CODE)
        data = objects.blob(code) if code is not None else b""
    except _Unreadable:
        return None  # reported with the run's objects
    match = _SNAPSHOT.search(data)
    return match.group(1).decode() if match else None


def _history(
    objects: _Objects, tip: pygit2.Commit, remembered: Mapping[str, catalog.Walked]
) -> tuple[_History, dict[str, catalog.Walked]]:
    """Walk every parent of the branch, as `pull` merges histories, but not into the code
    snapshots that run commits name as their second parent, nor into code commits.

    A commit's step found in `remembered` (worked out by an earlier verify) is taken as is:
    only new commits are read. Returns the history and the steps newly worked out."""
    history = _History()
    learned: dict[str, catalog.Walked] = {}
    # Commits to be worked out, each read once, with its listing, by the child that reached it.
    loaded: dict[pygit2.Oid, tuple[pygit2.Commit, _Listing]] = {tip.id: (tip, objects.listing(tip))}

    def load(oid: pygit2.Oid, child: pygit2.Oid) -> tuple[pygit2.Commit, _Listing] | None:
        if oid in loaded:
            return loaded[oid]
        try:
            parent = objects.commit(oid)
            listing = objects.listing(parent)
        except _Unreadable as e:
            history.broken.append(
                f"commit {_short(oid)}, a parent of {_short(child)} on the runs branch: "
                f"object {_short(e.oid)} is {e.reason}"
            )
            return None
        if oid not in history.steps:
            loaded[oid] = (parent, listing)
        return parent, listing

    todo = [tip.id]
    child_of: dict[pygit2.Oid, pygit2.Oid] = {}  # who reached a commit, for what the walk says
    while todo:
        oid = todo.pop()
        if oid in history.steps:
            continue
        known = remembered.get(str(oid)) if oid not in objects.shallow else None
        if known is not None:
            loaded.pop(oid, None)
            for parent in _recall(history, oid, known):
                child_of.setdefault(parent, oid)
                todo.append(parent)
            continue
        found = load(oid, child_of.get(oid, oid))
        if found is None:
            continue
        del loaded[oid]
        commit, here = found
        step = history.steps[oid] = _Step()
        trees = [tree for tree in (commit.tree_id, here.id) if tree is not None]
        history.trees.update(trees)
        parent_ids = objects.parents(commit)
        whole = commit.id not in objects.shallow  # the edge of a shallow clone is not kept
        if not whole:
            parent_ids = [p for p in parent_ids if p in objects.repo.odb]
        first = load(parent_ids[0], oid) if parent_ids else None
        if not parent_ids:
            added = set(here.names())
        elif first is None:
            added, whole = set(), False  # the history is broken here: who created what is unknown
        else:
            changes = _changes(here, first[1], _named_run(commit))
            step.parents.append(first[0].id)
            step.changes.append(changes)
            added = {n for n, (now, then) in changes.items() if then is None and now is not None}
            snapshots = {_snapshot_in(objects, changes[name][0]) for name in added}
            for other_id in parent_ids[1:]:
                if str(other_id) in snapshots:
                    continue
                other = load(other_id, oid)
                if other is None:
                    whole = False
                    continue
                if other[1].id is None:
                    continue  # a code commit: no runs come from there
                more = _changes(here, other[1], None)
                step.parents.append(other_id)
                step.changes.append(more)
                added &= {n for n, (now, then) in more.items() if then is None and now is not None}
        for parent in step.parents:
            child_of.setdefault(parent, oid)
            todo.append(parent)
        # Only folders named by run ids are runs: `pull` leaves anything else behind.
        made: dict[str, pygit2.Oid] = {}
        for run_id in sorted(added):
            folder = here.folder(run_id)
            if folder is not None and reader.is_run_id(run_id):
                made[run_id] = folder
        for run_id, folder in made.items():
            history.created.setdefault(run_id, []).append((oid, folder))
        if whole:
            learned[str(oid)] = _encode_step(step, trees, made)
    return history, learned


def _encode_step(
    step: _Step, trees: list[pygit2.Oid], made: Mapping[str, pygit2.Oid]
) -> catalog.Walked:
    def hexes(change: Change) -> list[str | None]:
        return [None if oid is None else str(oid) for oid in change]

    changes = [{name: hexes(c) for name, c in each.items()} for each in step.changes]
    return (
        " ".join(map(str, step.parents)),
        " ".join(map(str, trees)),
        " ".join(f"{run_id} {folder}" for run_id, folder in made.items()),
        json.dumps(changes, separators=(",", ":")),
    )


def _recall(history: _History, oid: pygit2.Oid, known: catalog.Walked) -> list[pygit2.Oid]:
    """Put a remembered step into the history; return its parents on the branch."""
    parents, trees, created, changes = known
    step = _Step([pygit2.Oid(hex=p) for p in parents.split()], None, changes)
    history.steps[oid] = step
    history.remembered_trees.update(trees.split())
    words = created.split()
    for run_id, folder in zip(words[::2], words[1::2], strict=True):
        history.created.setdefault(run_id, []).append((oid, pygit2.Oid(hex=folder)))
    return step.parents


def _introducers(
    objects: _Objects, history: _History, tip: pygit2.Oid, wanted: Mapping[str, object]
) -> dict[str, set[pygit2.Oid]]:
    """For each run, the commits that made its annotations.yaml what it is at the tip
    (`wanted`: the file's blob id, None when absent), as git blame finds who made a line:
    from the tip down every parent that still has the same file, to the commits none of
    whose parents do. Children before parents, so each commit is passed the runs once."""
    children: dict[pygit2.Oid, int] = {}
    for step in history.steps.values():
        for parent in step.parents:
            children[parent] = children.get(parent, 0) + 1
    pending: dict[pygit2.Oid, set[str]] = {tip: set(wanted)}
    ready = [tip]
    found: dict[str, set[pygit2.Oid]] = {}

    def annotations(folder: pygit2.Oid | None) -> object:
        if folder is None:
            return _Unreadable  # no folder: nothing equals it
        try:
            return objects.folder(folder).get(ANNOTATIONS)
        except _Unreadable:
            return _Unreadable

    while ready:
        commit = ready.pop()
        here = pending.pop(commit, set())
        step = history.steps[commit]
        blocked = (
            [
                {r for r in changes if r in here and annotations(changes[r][1]) != wanted[r]}
                for changes in step.changes
            ]
            if here and step.touches(here)
            else [set() for _ in step.parents]
        )  # most commits: nothing to look for
        made = set.intersection(*blocked) if blocked else here
        for run_id in made:
            found.setdefault(run_id, set()).add(commit)
        passes = [here - others for others in blocked[1:]]
        if blocked:
            here -= blocked[0]
        for parent, passed in zip(step.parents, [here, *passes], strict=False):
            if parent in pending:
                pending[parent] |= passed
            else:
                pending[parent] = passed
            children[parent] -= 1
            if children[parent] == 0:
                ready.append(parent)
    return found


# --- signatures ------------------------------------------------------------------------------


def _signature(ws: Workspace, commit: pygit2.Commit) -> _Signature:
    signature, _ = commit.gpg_signature
    if not signature:
        return _Signature(UNSIGNED, "the commit has no signature")
    try:
        done = subprocess.run(
            ["git", *_GIT_OPTIONS, "verify-commit", "--raw", str(commit.id)],
            cwd=ws.workdir,
            capture_output=True,
            text=True,
            errors="replace",
            check=False,
            env=_git_env(),
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


_MEMORY_VERSION = b"1"  # raise when what gitexp makes of git's verdict changes
_SSH_SIGNATURE = b"-----BEGIN SSH SIGNATURE-----"
# gpg's and gpgsm's keyrings and trust lists, in the folder gpg reads them from.
_KEYRINGS = ("pubring.kbx", "pubring.gpg", "trustdb.gpg", "trustlist.txt")


def _file_digest(path: Path) -> bytes:
    try:
        return hashlib.sha256(path.read_bytes()).digest()
    except OSError as e:
        return f"unreadable: {e.strerror}".encode()


def _trust(ws: Workspace) -> str:
    """A digest of everything git's verdict on a signature depends on: git's gpg.* settings,
    the allowed-signers and revocation files they name, and gpg's keyrings. Any change to
    them gives a new digest, so that no verdict given before it is reused."""
    try:
        done = subprocess.run(
            ["git", *_GIT_OPTIONS, "config", "-z", "--get-regexp", r"^gpg\."],
            cwd=ws.workdir, capture_output=True, check=False, env=_git_env(),
        )  # fmt: skip
    except OSError as e:
        raise GitexpError(f"cannot run git to check signatures ({e}); install git") from None
    digest = hashlib.sha256(_MEMORY_VERSION + b"\0" + done.stdout)
    for entry in done.stdout.split(b"\0"):
        key, _, value = entry.partition(b"\n")
        if key.lower() in (b"gpg.ssh.allowedsignersfile", b"gpg.ssh.revocationfile"):
            named = Path(os.path.expanduser(os.fsdecode(value)))
            digest.update(_file_digest(ws.workdir / named))
    home = Path(os.environ.get("GNUPGHOME") or Path.home() / ".gnupg")
    digest.update(os.fsencode(home))
    for name in _KEYRINGS:
        try:
            found = (home / name).stat()
            digest.update(f"{name} {found.st_size} {found.st_mtime_ns}".encode())
        except OSError:
            continue
    return digest.hexdigest()


class _Memory:
    """What earlier verifies worked out, by commit id (kept in the index), and what this one
    adds: the steps of the branch's history, and git's verdicts on signatures.

    An ssh signature's verdict depends only on the commit and the trust configuration (git
    checks the key as of the commit's date); a gpg verdict also on the day, since keys expire.
    """

    def __init__(self, ws: Workspace) -> None:
        self.ws = ws
        self.steps = catalog.walked(ws)
        self.learned_steps: dict[str, catalog.Walked] = {}
        self.learned: dict[catalog.Signed, catalog.Verdict] = {}
        self._trust: str | None = None

    def trusts(self) -> tuple[str, str]:
        """The trust keys of ssh signatures, and of gpg signatures today."""
        if self._trust is None:
            self._trust = _trust(self.ws)
        return self._trust, f"{self._trust} {datetime.date.today().isoformat()}"

    def key(self, commit: pygit2.Commit) -> catalog.Signed:
        ssh, gpg = self.trusts()
        signature, _ = commit.gpg_signature
        return str(commit.id), ssh if signature.startswith(_SSH_SIGNATURE) else gpg

    def save(self) -> None:
        catalog.remember_verified(
            self.ws, self.learned_steps, self.learned, self.trusts() if self.learned else ()
        )


def _verdicts(memory: _Memory, commits: Iterable[pygit2.Commit]) -> dict[pygit2.Oid, _Signature]:
    """git's verdict on each commit's signature: remembered, or asked of git and remembered."""
    unique = {commit.id: commit for commit in commits}
    signed = {oid: memory.key(c) for oid, c in unique.items() if c.gpg_signature[0]}
    known = catalog.signatures(memory.ws, list(signed.values())) if signed else {}
    found = {oid: _Signature(*known[signed[oid]]) for oid in signed if signed[oid] in known}
    todo = [commit for oid, commit in unique.items() if oid not in found]
    if not todo:
        return found
    from concurrent.futures import ThreadPoolExecutor  # only when git has signatures to check

    workers = min(8, (os.cpu_count() or 1) * 2)  # each check waits on a gpg or ssh process
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for commit, verdict in zip(
            todo, pool.map(lambda c: _signature(memory.ws, c), todo), strict=True
        ):
            found[commit.id] = verdict
            # "bad" may be git failing to check (no ssh-keygen, a gpg error): asked again.
            if commit.id in signed and verdict.status in (OK, UNTRUSTED):
                memory.learned[signed[commit.id]] = (verdict.status, verdict.said)
    return found


# --- verify ----------------------------------------------------------------------------------


def _changed(before: Mapping[str, pygit2.Oid], after: Mapping[str, pygit2.Oid]) -> list[str]:
    names = (before.keys() | after.keys()) - {ANNOTATIONS}
    return sorted(name for name in names if before.get(name) != after.get(name))


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
            except (KeyError, ValueError, pygit2.GitError):
                continue  # pruned by gc: nothing left to compare with
            return found
    return found


def _commit_of(ws: Workspace, rev: str) -> pygit2.Commit:
    try:
        return ws.repo.revparse_single(rev).peel(pygit2.Commit)
    except (KeyError, ValueError, pygit2.GitError):
        raise GitexpError(f"{rev!r} names no commit in this repository") from None


def _run_folders(commit: pygit2.Commit) -> dict[str, pygit2.Oid]:
    try:
        return store.run_folders(commit)
    except (KeyError, ValueError, pygit2.GitError, GitexpError):
        return {}  # damaged: the walk of the history says what is wrong


Problems = dict[str, list[tuple[str, str]]]  # run id → (status, detail) for each problem
Choose = Callable[[list[str]], list[str]]  # every run id known → the ones to verify


def verify(
    ws: Workspace, refs: Sequence[str] = (), rev: str | None = None, base: str | None = None
) -> Report:
    """Verify the runs `refs` name (all runs when none), on the runs branch or on `rev`.

    `base` is a commit the branch must have grown from, keeping its runs unchanged (for CI:
    the branch a pull request is to be merged into); without it, the branch's own reflog
    tells which tips it had, and the runs this repository has seen on the branch (its
    index's list) must all still be there.
    """
    pending.recover(ws)
    return _verify(ws, lambda known: _select(ws, refs, known, on_branch=rev is None), rev, base)


def trusted_annotations(ws: Workspace, run_ids: Sequence[str]) -> set[str]:
    """The runs among `run_ids` (exact ids) whose tags and notes can be trusted: `verify`
    finds them ok, so run.yaml and annotations.yaml were both made by commits signed by a
    trusted key and are unchanged since."""
    if not run_ids:
        return set()
    report = _verify(ws, lambda known: [r for r in dict.fromkeys(run_ids) if r in known])
    return {check.run_id for check in report.checks if check.status == OK}


def _verify(
    ws: Workspace, choose: Choose, rev: str | None = None, base: str | None = None
) -> Report:
    objects = _Objects(ws.repo, ws.state_dir.parent)
    memory = _Memory(ws)
    try:
        tip = _commit_of(ws, rev) if rev is not None else store.tip(ws)
        history = None
        if tip is not None:
            history, memory.learned_steps = _history(objects, tip, memory.steps)
    except (KeyError, ValueError, pygit2.GitError, _Unreadable) as e:
        what = f"{rev!r}" if rev is not None else "the runs branch"
        reason = str(e) if isinstance(e, _Unreadable) else f"object {e} is {_damage(e)}"
        raise VerificationFailed(
            f"{what} cannot be read: {reason}; restore it from another clone (`git fsck` "
            "lists what is missing or damaged)"
        ) from None
    if tip is None or history is None:
        raise GitexpError("there are no runs yet; record one with `gitexp run -- CMD`")
    at_tip = _run_folders(tip)
    seen = _seen(ws, tip, at_tip) if rev is None else {}
    former = {old: _run_folders(old) for old in _former_tips(ws, history, base, rev is None)}
    known = [*at_tip, *history.created, *(r for runs in former.values() for r in runs), *seen]
    every = list(dict.fromkeys(known))
    chosen = choose(every)
    on_record = set(every)
    problems: Problems = {run_id: [] for run_id in chosen if run_id in on_record}
    for old, runs in former.items():
        _compare_with_former(objects, old, runs, at_tip, problems)
    for run_id, listed in problems.items():
        if run_id in seen and run_id not in at_tip:
            then = seen[run_id]
            listed.append(
                (MISSING, f"seen in this repository on {then.when}, gone from the branch (it "
                 f"was in commit {_short(then.commit)})")
            )  # fmt: skip
    signers, named = _check_runs(memory, objects, history, tip, at_tip, problems)
    memory.save()
    checks = []
    for run_id in chosen:
        found = problems.get(run_id)
        commits = history.created.get(run_id, [])
        commit = str(commits[0][0]) if commits else None
        if found is None:
            checks.append(Check(run_id, MISSING, "no run with this id was ever on the branch"))
        elif not found:
            checks.append(Check(run_id, OK, "", commit, signers.get(run_id, "")))
        else:
            statuses = tuple(sorted({s for s, _ in found}, key=_PRECEDENCE.index))
            detail = "; ".join(dict.fromkeys(d for _, d in found))
            checks.append(Check(run_id, statuses[0], detail, commit, signers.get(run_id, ""),
                                statuses))  # fmt: skip
    broken = [*history.broken, *_substituted_branch(objects, history, named)]
    return Report(tuple(checks), tuple(str(c.id) for c in former), tuple(broken))


def _seen(
    ws: Workspace, tip: pygit2.Commit, at_tip: Mapping[str, pygit2.Oid]
) -> dict[str, catalog.Seen]:
    """The runs this repository has seen on the branch; none where the index cannot be
    written (a read-only checkout in CI): the list is extra evidence, not the branch."""
    try:
        return catalog.seen_runs(ws, str(tip.id), list(at_tip))
    except (OSError, sqlite3.Error):
        return {}


def _compare_with_former(
    objects: _Objects,
    old: pygit2.Commit,
    runs: Mapping[str, pygit2.Oid],
    at_tip: Mapping[str, pygit2.Oid],
    problems: Problems,
) -> None:
    """Runs a former tip held must still be there, unchanged."""
    where = f"the branch's former tip {_short(old.id)}"
    for run_id, then in runs.items():
        if run_id not in problems:
            continue
        now = at_tip.get(run_id)
        if now is None:
            problems[run_id].append((MISSING, f"it was on {where}"))
            continue
        try:
            names = _changed(objects.folder(then), objects.folder(now))
        except _Unreadable:
            continue  # the objects check names what is damaged
        if names:
            problems[run_id].append((MODIFIED, f"{', '.join(names)} changed since {where}"))


def _check_runs(
    memory: _Memory,
    objects: _Objects,
    history: _History,
    tip: pygit2.Commit,
    at_tip: Mapping[str, pygit2.Oid],
    problems: Problems,
) -> tuple[dict[str, str], set[pygit2.Oid]]:
    """Check each chosen run: its creating commits signed by a trusted key and the files they
    wrote still there byte for byte; the commits that made its annotations signed by a trusted
    key; its objects and its snapshot's all there, undamaged and not substituted. Returns what
    git said of each good signature, and the substituted commits named for a run."""
    wanted: dict[str, object] = {}
    for run_id in problems:
        if run_id in at_tip:
            try:
                wanted[run_id] = objects.folder(at_tip[run_id]).get(ANNOTATIONS)
            except _Unreadable:
                pass  # the objects check names what is damaged
    made = _introducers(objects, history, tip.id, wanted)
    annotators = {oid: objects.commit(oid) for oids in made.values() for oid in oids}
    creators = {
        oid: objects.commit(oid)
        for run_id in problems
        for oid, _ in history.created.get(run_id, [])
    }
    verdicts = _verdicts(memory, [*creators.values(), *annotators.values()])
    signers: dict[str, str] = {}
    named: set[pygit2.Oid] = set()
    for run_id, listed in problems.items():
        commits = history.created.get(run_id, [])
        now = at_tip.get(run_id)
        if now is None:
            if commits:
                by = _short(commits[0][0])
                listed.append((MISSING, f"its folder, added by {by}, is gone from the branch"))
            continue
        if not commits:
            broken = f" (the history is broken: {history.broken[0]})" if history.broken else ""
            listed.append((MISSING, f"no commit in the branch's history creates it{broken}"))
        for oid, folder in commits:
            commit = creators[oid]
            verdict, short = verdicts[oid], _short(oid)
            if verdict.status == OK:
                signers[run_id] = verdict.said
            else:
                listed.append((verdict.status, f"commit {short}: {verdict.said}"))
            try:
                names = _changed(objects.folder(folder), objects.folder(now))
            except _Unreadable:
                names = []  # the objects check below names what is damaged
            if names:
                listed.append((MODIFIED, f"{', '.join(names)} changed after commit {short}"))
            _check_snapshot(objects, commit, folder, listed)
        creating = {oid for oid, _ in commits}
        for oid in sorted(made.get(run_id, set()) - creating, key=str):
            verdict = verdicts[oid]
            if verdict.status != OK:
                listed.append(
                    (_OF_ANNOTATIONS[verdict.status], f"{ANNOTATIONS} as it is now was made by "
                     f"commit {_short(oid)}: {verdict.said}")
                )  # fmt: skip
        for oid in sorted({*creating, *made.get(run_id, set())}, key=str):
            substitute = objects.substitute(oid)
            if substitute is not None:
                named.add(oid)
                listed.append((SUBSTITUTED, f"commit {_short(oid)}: {substitute}"))
        for status, path, oid, what in objects.problems(now):
            words = f" is {what}" if status == DAMAGED else f": {what}"
            listed.append((status, f"{path or 'its folder'} (object {_short(oid)}){words}"))
    return signers, named


def _check_snapshot(
    objects: _Objects, commit: pygit2.Commit, folder: pygit2.Oid, listed: list[tuple[str, str]]
) -> None:
    """The snapshot the signed code.yaml names: there, a commit, the run commit's second
    parent, and every object of its tree there, undamaged and not substituted."""
    try:
        code = objects.folder(folder).get(CODE)
        data = objects.blob(code) if code is not None else b""
    except _Unreadable as e:
        listed.append((DAMAGED, f"{CODE} as commit {_short(commit.id)} wrote it: object "
                       f"{_short(e.oid)} is {e.reason}"))  # fmt: skip
        return
    match = _SNAPSHOT.search(data)
    if match is None:
        return
    named = match.group(1).decode()
    where = f"snapshot {named[:12]}"
    parents = objects.parents(commit)
    if len(parents) > 1 and str(parents[1]) != named:
        listed.append((WRONG_SNAPSHOT, f"{CODE} names {where} but the second parent of commit "
                       f"{_short(commit.id)} is {_short(parents[1])}"))  # fmt: skip
    try:
        snapshot = objects.commit(pygit2.Oid(hex=named))
    except ValueError:
        listed.append((WRONG_SNAPSHOT, f"{CODE} names {where}, which is no object id here"))
        return
    except _Unreadable as e:
        status = WRONG_SNAPSHOT if e.wrong_kind else DAMAGED
        listed.append((status, f"the {where} is {e.reason}"))
        return
    substitute = objects.substitute(snapshot.id)
    if substitute is not None:
        listed.append((SUBSTITUTED, f"the {where}: {substitute}"))
    for status, path, oid, what in objects.problems(snapshot.tree_id):
        words = f" is {what}" if status == DAMAGED else f": {what}"
        listed.append((status, f"{where}: {path or 'its tree'} (object {_short(oid)}){words}"))


def _substituted_branch(objects: _Objects, history: _History, named: set[pygit2.Oid]) -> list[str]:
    """Replace refs and grafts that change how git shows the runs branch's own commits and
    trees, other than those already named for a run."""
    lines = []
    for oid in sorted({*objects.replaced, *objects.grafts} - named, key=str):
        if oid in history.steps or oid in history.trees or str(oid) in history.remembered_trees:
            what = "commit" if oid in history.steps else "tree"
            lines.append(f"{what} {_short(oid)} of the runs branch: {objects.substitute(oid)}")
    return lines


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
