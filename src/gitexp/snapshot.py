"""The exact code of a run: a snapshot commit of the working tree, as `git stash create` makes."""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pygit2
from pygit2.enums import DiffOption, FileMode, FileStatus

from gitexp.errors import GitexpError
from gitexp.record import CodeState, LeftOut
from gitexp.signing import identity
from gitexp.workspace import Workspace

# Files that look like credentials never enter a snapshot unless git already tracks them.
_SECRET = re.compile(
    r"^(\.env(\..*)?|.*\.(pem|key|p12|pfx)|id_[A-Za-z0-9_-]+(\.pub)?|\.netrc|\.pypirc|"
    r"credentials(\.json)?)$"
)
_REMOVED = FileStatus.WT_DELETED | FileStatus.INDEX_DELETED


@dataclass(frozen=True)
class Code:
    """A run's code: what code.yaml says, and code.diff's bytes."""

    state: CodeState
    diff: bytes
    untracked: tuple[str, ...] = ()  # new files git does not ignore, as status found them


def looks_secret(path: str) -> bool:
    """Whether a file's name says it holds credentials (`.env`, `*.pem`, `id_ed25519`)."""
    return _SECRET.match(os.path.basename(path)) is not None


def strip_credentials(url: str) -> str:
    """`https://user:token@host/x.git` → `https://host/x.git`; other URLs unchanged."""
    parts = urlsplit(url)
    if parts.scheme and "@" in parts.netloc:
        return urlunsplit(parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]))
    return url


def _mode(path: Path) -> FileMode:
    info = path.lstat()
    if stat.S_ISLNK(info.st_mode):
        return FileMode.LINK
    return FileMode.BLOB_EXECUTABLE if info.st_mode & stat.S_IXUSR else FileMode.BLOB


def _submodules(ws: Workspace) -> dict[str, str]:
    """Each submodule's checked-out commit, as its own repository says."""
    found: dict[str, str] = {}
    for path in ws.repo.listall_submodules():
        location = ws.workdir / path
        if (location / ".git").exists():
            sub = pygit2.Repository(str(location))
            if not sub.head_is_unborn:
                found[path] = str(sub.head.target)
    return found


def _head(repo: pygit2.Repository) -> pygit2.Commit:
    if repo.head_is_unborn:
        raise GitexpError(
            "this repository has no commits yet; commit your code once so that runs have a "
            "commit to record (`git add -A && git commit -m start`)"
        )
    return repo.head.peel(pygit2.Commit)


def capture(ws: Workspace, run_id: str, config_files: Iterable[str] = ()) -> Code:
    """Snapshot the working tree without touching it, the index, HEAD or the stash."""
    repo = ws.repo
    head = _head(repo)
    submodules = _submodules(ws)
    status = repo.status(untracked_files="all", ignored=False)
    tree = pygit2.Index()  # in memory: the user's .git/index is never written
    tree.read_tree(head.tree)
    left_out: list[LeftOut] = []
    limit = ws.settings.max_file_size
    for path, flags in sorted(status.items()):
        if flags & FileStatus.IGNORED or path.rstrip("/") in submodules:
            continue
        if path.endswith("/"):
            left_out.append(LeftOut(path, "a nested git repository"))
            continue
        location = ws.workdir / path
        if not location.exists() and not location.is_symlink():
            if flags & _REMOVED or path in tree:
                tree.remove(path)
            continue
        untracked = flags == FileStatus.WT_NEW
        if untracked and looks_secret(path):
            left_out.append(LeftOut(path, "looks like a secret"))
            continue
        if untracked and location.lstat().st_size > limit:
            left_out.append(LeftOut(path, f"untracked and larger than {limit} bytes"))
            continue
        try:
            blob = repo.create_blob_fromworkdir(path)
        except (OSError, pygit2.GitError) as e:
            left_out.append(LeftOut(path, f"unreadable: {e}"))
            continue
        tree.add(pygit2.IndexEntry(path, blob, _mode(location)))
    for path, commit in submodules.items():
        tree.add(pygit2.IndexEntry(path, pygit2.Oid(hex=commit), FileMode.COMMIT))

    tree_id = tree.write_tree(repo)
    dirty = bool(status) or tree_id != head.tree.id
    if tree_id == head.tree.id:
        snapshot, diff = head.id, b""
    else:
        who = identity(repo)
        message = f"gitexp snapshot for run {run_id}\n\nThe working tree the run started from.\n"
        snapshot = repo.create_commit(None, who, who, message, tree_id, [head.id])
        changes = head.tree.diff_to_tree(
            repo[tree_id].peel(pygit2.Tree), flags=DiffOption.SHOW_BINARY
        )
        changes.find_similar()
        diff = b"".join(patch.data for patch in changes if patch is not None)

    branch = None if repo.head_is_detached else repo.head.shorthand
    remotes = {str(remote.name): strip_credentials(remote.url or "") for remote in repo.remotes}
    state = CodeState(
        commit=str(head.id),
        branch=branch,
        snapshot=str(snapshot),
        dirty=dirty,
        remotes=remotes,
        submodules=submodules,
        config_files=tuple(sorted(config_files)),
        left_out=tuple(left_out),
        shallow=repo.is_shallow,
    )
    new_files = tuple(path for path, flags in status.items() if flags & FileStatus.WT_NEW)
    return Code(state, diff, new_files)
