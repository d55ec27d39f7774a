"""The runs branch: one commit per run, written with pygit2, never touching the working tree."""

from __future__ import annotations

import fcntl
import os
import random
import re
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

import pygit2
from pygit2.enums import FileMode

from gitexp import guide, reader, signing
from gitexp.errors import GitexpError, Unreadable
from gitexp.record import EXPERIMENTS, METRICS
from gitexp.workspace import Workspace, checked_out_at

_RETRIES = 50
# Above this many loose objects, gitexp has `git gc --auto` pack them, unless `gc.auto` says
# otherwise. git's own default (6,700) lets a runs branch of 10,000 runs pile up hundreds of
# megabytes first: each record commit writes the whole experiments/ listing anew, loose.
_LOOSE_OBJECT_LIMIT = 1024
_ZERO = "0" * 40
# How long a writer waits for another gitexp process's branch lock before giving up (the
# run then stays pending); GITEXP_LOCK_TIMEOUT overrides it.
_LOCK_TIMEOUT_S = 60.0
# A git ref lock (`runs.lock`) this old, while we hold the branch lock, was left by a killed
# process: git's own writers (pack-refs, gc, update-ref) hold one for milliseconds.
_STALE_GIT_LOCK_S = 5.0
_GIT_LOCK = re.compile(r"Unable to create '([^']+\.lock)': File exists")


class BranchBusy(GitexpError):
    """The runs branch stayed locked by someone else for longer than we wait."""


def _commit_message(summary: str, body: str) -> str:
    return f"{summary}\n\n{body}".rstrip() + "\n"


def _lock_timeout() -> float:
    try:
        return max(0.0, float(os.environ.get("GITEXP_LOCK_TIMEOUT", _LOCK_TIMEOUT_S)))
    except ValueError:
        return _LOCK_TIMEOUT_S


@contextmanager
def _branch_lock(ws: Workspace) -> Iterator[None]:
    """Writers on one machine queue here instead of racing each other.

    An flock dies with its holder, so a killed writer never leaves it stuck. The holder writes
    who it is into the file, for the message a waiter gives up with. The compare-and-swap ref
    update stays the guarantee (a shared filesystem may not honour flock).
    """
    ws.state_dir.mkdir(parents=True, exist_ok=True)
    path = ws.state_dir / "branch.lock"
    with open(path, "a+") as lock:
        deadline = time.monotonic() + _lock_timeout()
        pause = 0.002
        while True:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    lock.seek(0)
                    holder = lock.read().strip() or "another process"
                    raise BranchBusy(
                        f"the runs branch stayed locked by {holder} for {_lock_timeout():.0f} s "
                        f"({path})"
                    ) from None
                time.sleep(random.uniform(0, pause))
                pause = min(pause * 2, 0.05)
        try:
            lock.seek(0)
            lock.truncate()
            lock.write(f"gitexp pid {os.getpid()} on {socket.gethostname()} since "
                       f"{time.strftime('%H:%M:%S')}\n")  # fmt: skip
            lock.flush()
            yield
        finally:
            lock.truncate(0)
            fcntl.flock(lock, fcntl.LOCK_UN)


def check_writable(ws: Workspace) -> None:
    """Refuse, as git does, to move a branch that a worktree has checked out, and refuse a
    branch that is not a runs branch (a code branch named in .gitexp.yaml)."""
    head = tip(ws)
    if head is not None:
        _check_runs_branch(ws, head)
    where = checked_out_at(ws, ws.runs_ref)
    if where is not None:
        raise GitexpError(
            f"the runs branch {ws.settings.branch} is checked out in {where}; gitexp will not "
            "move a checked-out branch: switch that worktree to another branch"
        )


def _target(ws: Workspace, name: str) -> pygit2.Oid | None:
    # git packs refs (`pack-refs`, `gc`) by writing packed-refs and then deleting the loose
    # file; a reader between the two can miss the ref for an instant, so look twice.
    for _ in range(2):
        try:
            return ws.repo.references[name].resolve().target  # type: ignore[return-value]
        except (KeyError, pygit2.GitError):
            continue
    return None


def tip(ws: Workspace) -> pygit2.Commit | None:
    """The newest commit of the runs branch, or None before the first run. A fresh clone's
    runs branch starts where its remote's is (see _adopt_remote)."""
    target = _target(ws, ws.runs_ref)
    if target is None and _adopt_remote(ws):
        target = _target(ws, ws.runs_ref)
    if target is None:
        return None
    try:
        return ws.repo[target].peel(pygit2.Commit)
    except (KeyError, ValueError, pygit2.GitError) as e:
        raise Unreadable(
            f"the runs branch cannot be read: object {target}, its tip, is missing or damaged "
            f"({e}); restore it from another clone (`git fsck` lists what is missing)"
        ) from None


def _adopt_remote(ws: Workspace) -> bool:
    """Start the runs branch at a remote's, as `git clone` leaves it (`origin/gitexp/runs`),
    the way `git checkout BRANCH` starts a branch from its remote: origin's, else the one
    remote's that has it. Nothing when several others do (`gitexp pull REMOTE` picks one)."""
    suffix = "/" + ws.settings.branch
    found = {
        name.removeprefix("refs/remotes/").removesuffix(suffix): name
        for name in ws.repo.references
        if name.startswith("refs/remotes/") and name.endswith(suffix)
        and name.count("/") == 2 + ws.settings.branch.count("/") + 1
    }  # fmt: skip
    chosen = found.get("origin") or (next(iter(found.values())) if len(found) == 1 else None)
    target = _target(ws, chosen) if chosen else None
    if target is None:
        return False
    try:
        _git_update(ws, [f"create {ws.runs_ref} {target}"], f"gitexp: runs from {chosen}")
    except _Moved:
        pass  # made meanwhile, by another gitexp
    return True


class _Moved(Exception):
    """The ref was no longer where we read it: another writer got there first."""


def _git_update(ws: Workspace, lines: list[str], message: str) -> None:
    """Apply ref updates in one git transaction, honouring git's lock protocol.

    libgit2's ref writes race git's own `pack-refs` (a committed record can be lost);
    `git update-ref` with old values is the compare-and-swap git itself uses. Raises _Moved
    when a ref is not at its expected old value.
    """
    command = ["git", f"--git-dir={ws.state_dir.parent}", "update-ref", "-m", message, "--stdin"]
    deadline = time.monotonic() + _lock_timeout()
    for attempt in range(1000):
        try:
            done = subprocess.run(
                command, input="".join(f"{line}\n" for line in lines), capture_output=True,
                text=True, errors="replace", check=False,
            )  # fmt: skip
        except FileNotFoundError:
            _libgit2_update(ws, lines, message)  # no git here: then nothing packs refs either
            return
        if done.returncode == 0:
            return
        error = done.stderr.strip()
        if "but expected" in error or "already exists" in error or "reference already" in error:
            raise _Moved(error)
        held = _GIT_LOCK.search(error)
        if held is not None:
            _break_if_stale(Path(held.group(1)))
        if time.monotonic() >= deadline:
            reason = error.splitlines()[0] if error else f"git exited {done.returncode}"
            raise BranchBusy(f"git could not move the runs branch ({reason})")
        time.sleep(random.uniform(0, min(0.002 * 2 ** min(attempt, 5), 0.1)))
    raise BranchBusy("git could not move the runs branch")  # pragma: no cover


def _break_if_stale(lock: Path) -> None:
    """Remove a git ref lock that a killed process left: nothing holds one for seconds.

    Only ref locks are broken (we hold the branch lock, so no gitexp writer owns them);
    packed-refs.lock belongs to git's maintenance and is only waited for.
    """
    if lock.name == "packed-refs.lock":
        return
    try:
        age = time.time() - lock.stat().st_mtime
    except OSError:
        return
    if age < _STALE_GIT_LOCK_S:
        return
    try:
        lock.unlink()
    except OSError:
        return
    print(f"gitexp: removed a stale lock {lock} left by a killed process ({age:.0f} s old)",
          file=sys.stderr)  # fmt: skip


def _libgit2_update(ws: Workspace, lines: list[str], message: str) -> None:
    repo = ws.repo
    for line in lines:
        verb, name, *values = line.split()
        if verb == "delete":
            try:
                repo.references.delete(name)
            except KeyError:
                pass
            continue
        new, old = pygit2.Oid(hex=values[0]), values[1] if len(values) > 1 else None
        if old is None:  # whatever it was
            repo.references.create(name, new, force=True)
            continue
        if old == _ZERO:
            try:
                repo.references.create(name, new)
            except pygit2.AlreadyExistsError as e:
                raise _Moved(str(e)) from None
            continue
        ref = repo.references[name]
        if str(ref.target) != old:
            raise _Moved(f"{name} moved")
        try:
            ref.set_target(new, message)
        except pygit2.GitError as e:
            raise _Moved(str(e)) from None


def protect(ws: Workspace, run_id: str, snapshot: str) -> None:
    """Keep a live run's snapshot commit reachable, so that `git gc` cannot prune it."""
    _git_update(ws, [f"update {pending_ref(run_id)} {snapshot}"], f"gitexp: run {run_id}")


def pending_ref(run_id: str) -> str:
    return f"refs/gitexp/pending/{run_id}"


def release(ws: Workspace, run_id: str) -> None:
    """Drop a run's pending ref once its record is committed (or it never ran)."""
    try:
        _git_update(ws, [f"delete {pending_ref(run_id)}"], f"gitexp: run {run_id}")
    except GitexpError:
        pass  # a stale pending ref only keeps one snapshot alive; the record is safe


def _root(ws: Workspace) -> pygit2.Commit:
    """A new root commit for the runs branch, holding the README for reviewers."""
    repo = ws.repo
    builder = repo.TreeBuilder()
    readme = guide.RUNS_README.format(branch=ws.settings.branch)
    builder.insert(guide.README, repo.create_blob(readme.encode()), FileMode.BLOB)
    builder.insert(guide.ATTRIBUTES, repo.create_blob(guide.RUNS_ATTRIBUTES), FileMode.BLOB)
    message = _commit_message(
        "gitexp: start the runs branch", "Each following commit records one experiment run."
    )
    sign_with = signing.required_signer(repo, ws.settings.require_signed)
    oid = signing.commit(repo, message, builder.write(), [], sign_with)
    return repo[oid].peel(pygit2.Commit)


def ensure_branch(ws: Workspace) -> pygit2.Commit:
    """The runs branch's tip, creating the branch with its README root commit if missing."""
    existing = tip(ws)
    if existing is not None:
        return existing
    advance(ws, lambda parent: _root(ws).id if parent is None else None, "gitexp: start")
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
    if guide.ATTRIBUTES not in root:  # a branch started before gitexp wrote one: once, now
        top.insert(guide.ATTRIBUTES, repo.create_blob(guide.RUNS_ATTRIBUTES), FileMode.BLOB)
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
    already on the branch is left alone and its existing commit returned. The run's pending
    ref goes in the same transaction as the branch moves.
    """

    def new_folder(current: Mapping[str, bytes] | None) -> Mapping[str, bytes] | None:
        return files if current is None else None

    def commit(parent: pygit2.Commit | None) -> pygit2.Oid | None:
        return _folder_commit(ws, parent, run_id, new_folder, message, snapshot)

    done = advance(ws, commit, message[0], release=[pending_ref(run_id)])
    assert done is not None  # the branch holds at least this run now
    note_seen(ws, [run_id], str(done))
    return done


SEEN_LOG = "seen.log"


def note_seen(ws: Workspace, run_ids: Sequence[str], tip: str) -> None:
    """Remember that these runs were on the runs branch at `tip`, the moment it happened.

    One appended line each (`ref id time tip`), cheap enough for every record: the index
    folds them into its list of runs seen, so that `verify` can name a run a later rewrite
    dropped even if no other command ran in between.
    """
    when = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    lines = "".join(f"{ws.runs_ref}\t{run_id}\t{when}\t{tip}\n" for run_id in run_ids)
    try:
        ws.state_dir.mkdir(parents=True, exist_ok=True)
        with open(ws.state_dir / SEEN_LOG, "a") as log:
            log.write(lines)
    except OSError:
        pass  # extra evidence only: the record itself is safe on the branch


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

    def commit(parent: pygit2.Commit | None) -> pygit2.Oid | None:
        return _folder_commit(ws, parent, run_id, changed, message, None)

    done = advance(ws, commit, message[0])
    assert done is not None  # the run was found on the branch
    return done


def _folder_commit(
    ws: Workspace,
    parent: pygit2.Commit | None,
    run_id: str,
    make: Callable[[Mapping[str, bytes] | None], Mapping[str, bytes] | None],
    message: tuple[str, str],
    snapshot: str | None,
) -> pygit2.Oid | None:
    """A commit on `parent` whose folder for `run_id` is `make(current folder)`.

    With no branch yet, the commit goes on a new root: the branch is born holding the run.
    """
    repo = ws.repo
    parent = parent if parent is not None else _root(ws)
    experiments = experiments_tree(parent)
    files = make(_folder_files(repo, experiments, run_id))
    if files is None:
        return None
    tree = _with_folder(repo, parent.tree, experiments, run_id, files)
    parents = [parent.id] + ([pygit2.Oid(hex=snapshot)] if snapshot else [])
    sign_with = signing.required_signer(repo, ws.settings.require_signed)
    return signing.commit(repo, _commit_message(*message), tree, parents, sign_with)


_RUNS_BRANCH_FILES = (EXPERIMENTS, guide.README, guide.ATTRIBUTES)


def _check_runs_branch(ws: Workspace, head: pygit2.Commit) -> None:
    """Refuse to write records onto a branch that holds anything else (a code branch)."""
    foreign = sorted(str(e.name) for e in head.tree if e.name not in _RUNS_BRANCH_FILES)
    if foreign:
        raise GitexpError(
            f"the branch {ws.settings.branch} holds {foreign[0]!r}, so it is not a runs branch; "
            "gitexp writes runs only to a branch of its own: set another `branch:` in "
            ".gitexp.yaml"
        )


def advance(
    ws: Workspace,
    make: Callable[[pygit2.Commit | None], pygit2.Oid | None],
    reason: str,
    release: Sequence[str] = (),
) -> pygit2.Oid | None:
    """Move the runs branch from its tip to `make(tip)`: the one way the branch ever moves.

    Under gitexp's branch lock, as a compare-and-swap through git's own ref transaction, so
    that neither another gitexp nor git's maintenance (`pack-refs`, `gc`) running beside it
    can lose a commit; retried whenever someone else moved the branch first. `make` gets the
    tip (None before the branch exists) and returns a commit that descends from it, or None
    when there is nothing to do. `release` names refs (pending runs) deleted in the same
    transaction. Returns the branch's tip afterwards.
    """
    check_writable(ws)
    with _branch_lock(ws):
        for attempt in range(_RETRIES):
            parent = tip(ws)
            try:
                oid = make(parent)
            except (pygit2.GitError, OSError) as e:
                # `git gc` beside us may remove an object folder as we write into it.
                if attempt == _RETRIES - 1:
                    raise GitexpError(f"could not write the record's objects ({e})") from None
                time.sleep(random.uniform(0, 0.01 * (attempt + 1)))
                continue
            if oid is None:
                return parent.id if parent is not None else None
            old = parent.id if parent is not None else _ZERO
            lines = [f"update {ws.runs_ref} {oid} {old}", *(f"delete {r}" for r in release)]
            try:
                _git_update(ws, lines, reason)
            except _Moved:
                time.sleep(random.uniform(0, 0.01 * (attempt + 1)))
                continue
            _pack_if_needed(ws)
            return oid
    raise BranchBusy(f"could not update {ws.settings.branch} after {_RETRIES} attempts")


def _folder_files(
    repo: pygit2.Repository, experiments: pygit2.Tree | None, run_id: str
) -> dict[str, bytes] | None:
    if experiments is None or run_id not in experiments:
        return None
    where = f"{EXPERIMENTS}/{run_id}"
    try:
        folder = experiments[run_id].peel(pygit2.Tree)
    except (KeyError, ValueError, pygit2.GitError) as e:
        raise Unreadable(f"{where}: its folder is missing, damaged or not a folder ({e})") from None
    check_folder_size(repo, folder, where)
    return {
        str(entry.name): folder_file(repo, folder, str(entry.name), where=f"{where}/{entry.name}")
        or b""
        for entry in folder
    }


# A record holds a dozen files and a pointer per artifact; far more is not a record gitexp
# wrote, and reading it whole would take unbounded memory.
_FOLDER_FILES = 10_000
_FOLDER_BYTES = 512 * 1024 * 1024


def check_folder_size(repo: pygit2.Repository, folder: pygit2.Tree, where: str) -> None:
    """Refuse, before reading it, a record folder of too many files or bytes in all."""
    if len(folder) > _FOLDER_FILES:
        raise Unreadable(f"{where} holds {len(folder):,} files, more than a record has")
    total = 0
    for entry in folder:
        if entry.name == METRICS:
            continue  # streamed, never read whole
        try:
            total += repo.odb.read_header(entry.id)[1]
        except (KeyError, ValueError, pygit2.GitError):
            continue  # a missing object is named when the file is read
    if total > _FOLDER_BYTES:
        raise Unreadable(f"{where} holds {total:,} bytes, more than a record may")


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
            ["git", "-c", f"gc.auto={limit}", "gc", "--auto", "--quiet"],
            cwd=ws.workdir,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            check=False,
        )
    except OSError:
        pass  # no git on PATH: the records are safe, merely unpacked


def folder_file(
    repo: pygit2.Repository,
    folder: pygit2.Tree,
    path: str,
    limit: int | None = None,
    where: str | None = None,
) -> bytes | None:
    """The bytes of `path` inside a record folder (or `experiments/`) as stored, or None.

    With `limit`, a file larger than that is refused before it is read; a file that is not
    a plain file, or whose object is missing or damaged, is Unreadable.
    """
    try:
        entry = folder[path]
    except KeyError:
        return None
    where = where or path
    if entry.filemode not in (FileMode.BLOB, FileMode.BLOB_EXECUTABLE):
        raise Unreadable(f"{where} is not a plain file")
    try:
        if limit is not None and repo.odb.read_header(entry.id)[1] > limit:
            raise Unreadable(f"{where} is larger than the {limit:,} bytes a record file may hold")
        return repo[entry.id].peel(pygit2.Blob).data
    except (KeyError, ValueError, pygit2.GitError) as e:
        raise Unreadable(f"{where}: its object {entry.id} is missing or damaged ({e})") from None


def record_file(
    repo: pygit2.Repository, folder: pygit2.Tree, run_id: str, name: str
) -> bytes | None:
    """One file of a record folder, None when absent; within the reader's size limit for it,
    read whole. metrics.tsv is never read this way: see `stream_file`."""
    return folder_file(repo, folder, name, reader.size_limit(name), reader.file_where(run_id, name))


def stream_file(ws: Workspace, folder: pygit2.Tree, path: str, where: str) -> Iterator[bytes]:
    """A large record file line by line, as `git cat-file` streams it: memory stays flat."""
    if path not in folder:
        return
    entry = folder[path]
    if entry.filemode not in (FileMode.BLOB, FileMode.BLOB_EXECUTABLE):
        raise Unreadable(f"{where} is not a plain file")
    env = {**os.environ, "GIT_NO_REPLACE_OBJECTS": "1"}
    command = ["git", f"--git-dir={ws.repo.path}", "cat-file", "blob", str(entry.id)]
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env
    ) as git:
        assert git.stdout is not None
        try:
            yield from git.stdout
        finally:
            git.kill()  # a reader that stops early leaves no git behind
    if git.returncode not in (0, -9):
        raise Unreadable(f"{where}: its object {entry.id} is missing or damaged")


def former_tips(ws: Workspace) -> list[tuple[pygit2.Oid, pygit2.Oid]]:
    """Each move of the runs branch its reflog remembers, newest first: (old, new)."""
    try:
        return [(e.oid_old, e.oid_new) for e in ws.repo.references[ws.runs_ref].log()]
    except (KeyError, pygit2.GitError):
        return []


def run_folder(ws: Workspace, commit: pygit2.Commit, run_id: str) -> pygit2.Tree:
    """The folder of one record in `commit`."""
    experiments = experiments_tree(commit)
    if experiments is None or run_id not in experiments:
        raise GitexpError(f"no run {run_id!r}; see `gitexp log`")
    entry = experiments[run_id]
    if entry.filemode != FileMode.TREE:
        raise Unreadable(f"experiments/{run_id} is not a folder")
    try:
        return ws.repo[entry.id].peel(pygit2.Tree)
    except (KeyError, ValueError, pygit2.GitError):
        raise Unreadable(f"experiments/{run_id}: its object {entry.id} is missing") from None


def run_folders(commit: pygit2.Commit | None) -> dict[str, pygit2.Oid]:
    """Each run id on the branch with the tree id of its folder."""
    experiments = experiments_tree(commit) if commit is not None else None
    if experiments is None:
        return {}
    return {str(entry.name): entry.id for entry in experiments if entry.type_str == "tree"}
