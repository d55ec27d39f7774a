"""A run's exact code, outside the user's working tree: as plain files (`checkout --code`),
or as a git worktree of its own that a replay records from, sharing the DVC cache."""

from __future__ import annotations

import fcntl
import os
import secrets
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pygit2.enums import FileMode

from gitexp import git, history, reader
from gitexp.atomic import replace_file
from gitexp.errors import GitexpError, Unreadable
from gitexp.record import CODE
from gitexp.workspace import Workspace, open_workspace

_LOCK = ".lock"  # beside each replay worktree, `<name>.lock`


def snapshot_of(record: history.Record) -> str:
    """The commit holding the run's exact code: its working tree as it ran."""
    run_id = record.summary.id
    snapshot = reader.snapshot_of(run_id, record.files.get(CODE))
    if snapshot is None:
        raise Unreadable(f"run {run_id} recorded no code snapshot, so its code cannot be rebuilt")
    return snapshot


def _have(ws: Workspace, snapshot: str) -> None:
    found = git.run(
        ws.workdir, f"--git-dir={ws.git_dir}", "cat-file", "-e", f"{snapshot}^{{commit}}"
    )
    if found is None or found.returncode != 0:
        raise GitexpError(
            f"the code snapshot {snapshot[:12]} is not in this repository; `gitexp pull` or "
            "import the bundle that brought the run"
        )


def materialise(ws: Workspace, record: history.Record, target: Path) -> str:
    """The run's code as files in `target`, a new or empty folder; returns its snapshot."""
    snapshot = snapshot_of(record)
    _have(ws, snapshot)
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise GitexpError(f"{target} exists and is not an empty folder; give a new one")
    target.mkdir(parents=True, exist_ok=True)
    command = ["git", f"--git-dir={ws.git_dir}", "archive", "--format=tar", snapshot]
    # Streamed from git into the folder, member by member: memory stays flat however big.
    with (
        tempfile.TemporaryFile() as errors,  # not a pipe: git never waits on it
        subprocess.Popen(command, stdout=subprocess.PIPE, stderr=errors) as archive,
    ):
        assert archive.stdout is not None
        try:
            with tarfile.open(fileobj=archive.stdout, mode="r|") as tar:
                tar.extractall(target, filter="data")  # git's own archive; never outside
        except tarfile.TarError as e:
            archive.kill()
            raise GitexpError(f"git could not write the code of {snapshot[:12]}: {e}") from None
        archive.wait()
        errors.seek(0)
        said = errors.read().decode(errors="replace").strip()
    if archive.returncode != 0:
        raise GitexpError(f"git could not write the code of {snapshot[:12]}: {said}")
    return snapshot


@contextmanager
def worktree(ws: Workspace, snapshot: str) -> Iterator[Workspace]:
    """A git worktree at `snapshot`, under `.git/gitexp/replay/`, for as long as a replay
    runs in it: its runs are recorded on this repository's runs branch, and its DVC cache
    is this repository's. Removed after, whatever happened."""
    _have(ws, snapshot)
    root = ws.state_dir / "replay"
    root.mkdir(parents=True, exist_ok=True)
    _sweep(ws, root)
    place = root / f"{snapshot[:12]}-{secrets.token_hex(6)}"
    # Taken before the folder is made, held while it is in use: a worktree whose lock is
    # free was left behind.
    with open(place.with_name(place.name + _LOCK), "wb") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        place.mkdir()
        made = git.run(ws.workdir, f"--git-dir={ws.git_dir}", "worktree", "add", "--detach",
                       "--quiet", str(place), snapshot)  # fmt: skip
        if made is None or made.returncode != 0:
            _remove(ws, place)
            reason = git.said(made) if made is not None else "git is not installed"
            raise GitexpError(f"git could not check out the run's code: {reason}")
        try:
            there = open_workspace(place)
            _refuse_links(there)
            _share_dvc_cache(ws, place)
            yield there
        finally:
            _remove(ws, place)


def _refuse_links(there: Workspace) -> None:
    """A link the snapshot holds where DVC reads or gitexp writes (`.dvc/`, a pointer file)
    would lead either anywhere on this machine: the snapshot is refused."""
    from gitexp import data

    for entry in there.repo.index:
        path = entry.path
        if entry.mode == FileMode.LINK and (
            path == ".dvc" or path.startswith(".dvc/") or data.is_pointer_file(path)
        ):
            raise Unreadable(f"{path!r} of the run's code is a link, not a file; a replay "
                             "never follows it")  # fmt: skip


def _remove(ws: Workspace, place: Path) -> None:
    """A replay worktree and its lock gone, and git told so."""
    git.run(ws.workdir, f"--git-dir={ws.git_dir}", "worktree", "remove", "--force", str(place))
    shutil.rmtree(place, ignore_errors=True)
    git.run(ws.workdir, f"--git-dir={ws.git_dir}", "worktree", "prune")
    place.with_name(place.name + _LOCK).unlink(missing_ok=True)


def _sweep(ws: Workspace, root: Path) -> None:
    """Remove the replay worktrees a killed gitexp left behind (their lock free, and no
    process working in them: a training whose gitexp was killed trains on there). A
    restored dataset can be large; nothing of a run is kept in its worktree."""
    for place in root.iterdir():
        if not place.is_dir() or place.name.startswith("."):
            continue
        try:
            with open(place.with_name(place.name + _LOCK), "ab") as lock:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                if not _worked_in(place):
                    _remove(ws, place)
        except OSError:
            continue  # held: in use


def _worked_in(place: Path) -> bool:
    """Whether a process works in `place`: its working directory lies there, or it is a
    run's, recorded from there (GITEXP_WORKDIR, which its children inherit, wherever they
    go). Where /proc cannot say (not Linux), any might."""
    proc = Path("/proc")
    if not (proc / "self" / "cwd").exists():
        return True
    inside = str(place.resolve())
    markers = {f"GITEXP_WORKDIR={where}".encode() for where in (place, inside)}
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cwd = os.readlink(entry / "cwd")
            if cwd == inside or cwd.startswith(inside + "/"):
                return True
            if markers & set((entry / "environ").read_bytes().split(b"\0")):
                return True
        except OSError:
            continue  # gone, or another user's
    return False


def _share_dvc_cache(ws: Workspace, place: Path) -> None:
    """The worktree's DVC reads and writes this repository's cache (`.dvc/config.local`,
    which DVC keeps out of git)."""
    if not (place / ".dvc").is_dir():
        return
    from dvc.repo import Repo

    with Repo(str(ws.workdir)) as repo:
        cache = repo.cache.local.path  # …/files/md5: the cache folder is two above
    folder = Path(cache).parent.parent
    local = place / ".dvc" / "config.local"
    local.unlink(missing_ok=True)  # whatever the snapshot held there, never written through
    replace_file(local, f"[cache]\n    dir = {folder}\n".encode())
