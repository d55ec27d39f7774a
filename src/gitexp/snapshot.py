"""The exact code of a run: a snapshot commit of the working tree, as `git stash create` makes."""

from __future__ import annotations

import posixpath
import stat
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path, PurePosixPath
from urllib.parse import urlsplit, urlunsplit

import pygit2
from pygit2.enums import DeltaStatus, DiffOption, FileMode, FileStatus

from gitexp import secrets_scan, yamlio
from gitexp.errors import GitexpError
from gitexp.record import CodeState, LeftOut
from gitexp.secrets_scan import SecretRules
from gitexp.settings import OUTPUTS_DIR
from gitexp.signing import identity
from gitexp.workspace import Workspace

_REMOVED = FileStatus.WT_DELETED | FileStatus.INDEX_DELETED
# A submodule's working tree against its HEAD commit: every change a run would execute.
_SUBMODULE_DIFF = (
    DiffOption.INCLUDE_UNTRACKED
    | DiffOption.RECURSE_UNTRACKED_DIRS
    | DiffOption.SHOW_UNTRACKED_CONTENT
    | DiffOption.SHOW_BINARY
)


@dataclass(frozen=True)
class Code:
    """A run's code: what code.yaml says, and code.diff's bytes."""

    state: CodeState
    diff: bytes
    untracked: tuple[str, ...] = ()  # new files git does not ignore, as status found them


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


@dataclass(frozen=True)
class _Submodules:
    """Each submodule's checked-out commit, and the changes in those whose tree is dirty."""

    commits: dict[str, str]
    diffs: dict[str, bytes]  # path → its changes, written as `git diff --submodule=diff` does
    left_out: list[LeftOut]


def _quoted(path: bytes) -> bytes:
    """A path as git writes it in a diff header: C-quoted when it holds unusual bytes."""
    if not any(byte < 0x20 or byte >= 0x7F or byte in b'"\\' for byte in path):
        return path
    named = {0x07: b"a", 0x08: b"b", 0x09: b"t", 0x0A: b"n", 0x0B: b"v", 0x0C: b"f", 0x0D: b"r"}
    out = bytearray(b'"')
    for byte in path:
        if byte in b'"\\':
            out += b"\\" + bytes([byte])
        elif byte in named:
            out += b"\\" + named[byte]
        elif byte < 0x20 or byte >= 0x7F:
            out += b"\\%03o" % byte
        else:
            out.append(byte)
    return bytes(out + b'"')


def _under(patch: pygit2.Patch, folder: bytes) -> bytes:
    """`patch` with its paths moved under `folder/`, so that it applies from the top."""
    old = b"a/" + folder + b"/" + patch.delta.old_file.raw_path
    new = b"b/" + folder + b"/" + patch.delta.new_file.raw_path
    lines = patch.data.splitlines(keepends=True)
    for index, line in enumerate(lines):
        if line.startswith((b"@@ ", b"GIT binary patch", b"Binary files ")):
            break  # the header ends here; the content below is never rewritten
        if line.startswith(b"diff --git "):
            lines[index] = b"diff --git " + _quoted(old) + b" " + _quoted(new) + b"\n"
        elif line.startswith(b"--- ") and line.rstrip() != b"--- /dev/null":
            lines[index] = b"--- " + _quoted(old) + b"\n"
        elif line.startswith(b"+++ ") and line.rstrip() != b"+++ /dev/null":
            lines[index] = b"+++ " + _quoted(new) + b"\n"
    return b"".join(lines)


def _new_file_reason(
    path: str, location: Path | None, size: int, limit: int, secrets: SecretRules
) -> str | None:
    """Why a file no commit holds must stay out of the snapshot: a secret, or too large."""
    reason = secrets_scan.name_reason(path, secrets)
    if not reason and size > limit:
        reason = f"untracked and larger than {limit} bytes"
    return reason or secrets_scan.left_out_reason(path, location, secrets)


def _submodule_diff(
    sub: pygit2.Repository, path: str, limit: int, secrets: SecretRules
) -> tuple[bytes, list[LeftOut]]:
    """A submodule's working tree against its HEAD commit, under the superproject's policy
    for new files: credentials, large files and nested repositories are left out, listed."""
    changes = sub.head.peel(pygit2.Commit).tree.diff_to_workdir(_SUBMODULE_DIFF)
    modified: list[bytes] = []
    untracked: list[bytes] = []
    left_out: list[LeftOut] = []
    for index, delta in enumerate(changes.deltas):  # deltas first: no file is read yet
        name = delta.new_file.path
        new = delta.status == DeltaStatus.UNTRACKED and name not in sub.index
        reason = None
        if new and name.endswith("/"):
            reason = "a nested git repository"
        elif new:
            location = Path(sub.workdir) / name if sub.workdir else None
            reason = _new_file_reason(name, location, delta.new_file.size, limit, secrets)
        if reason:
            left_out.append(LeftOut(f"{path}/{name}", reason))
            continue
        patch = changes[index]
        if patch is not None:
            (untracked if new else modified).append(_under(patch, path.encode()))
    header = b"".join(
        f"Submodule {path} contains {kind} content\n".encode()
        for kind, found in (("untracked", untracked), ("modified", modified))
        if found
    )
    return (header + b"".join(modified + untracked) if header else b""), left_out


def _submodules(ws: Workspace) -> _Submodules:
    """Each submodule's checked-out commit, as its own repository says, and its changes."""
    found = _Submodules({}, {}, [])
    for path in ws.repo.listall_submodules():
        location = ws.workdir / path
        if (location / ".git").exists():
            sub = pygit2.Repository(str(location))
            if not sub.head_is_unborn:
                found.commits[path] = str(sub.head.target)
                diff, left_out = _submodule_diff(
                    sub, path, ws.settings.max_file_size, ws.settings.secrets
                )
                found.left_out.extend(left_out)
                if diff:
                    found.diffs[path] = diff
    return found


_DVC_FILES = ("dvc.yaml", "dvc.lock")
_DVC_WRITES = ("outs", "metrics", "plots")  # what a stage or a .dvc file says DVC writes


def _dvc_paths(pointer: PurePosixPath, content: object) -> Iterator[str]:
    """The repo-relative paths a `.dvc`, dvc.yaml or dvc.lock file says DVC writes."""
    if not isinstance(content, dict):
        return
    # A .dvc file names its outputs itself; dvc.yaml and dvc.lock name each stage's.
    bodies: list[object] = [content]
    if pointer.suffix != ".dvc":
        stages = content.get("stages")
        bodies = list(stages.values()) if isinstance(stages, dict) else []
    for body in bodies:
        if not isinstance(body, dict):
            continue
        base = pointer.parent / str(body.get("wdir") or ".")
        for key in _DVC_WRITES:
            entries = body.get(key)
            for entry in entries if isinstance(entries, list) else []:
                # dvc.yaml writes `- path` or `- path: {cache: false}`; the others `- path: p`
                if isinstance(entry, dict):
                    entry = entry.get("path") if "path" in entry else next(iter(entry), None)
                if isinstance(entry, str) and "${" not in entry:  # templates: dvc.lock has them
                    path = posixpath.normpath((base / entry).as_posix())
                    if path != "." and not path.startswith(("../", "/")):
                        yield path


def _dvc_outputs(ws: Workspace, new_files: Iterable[str]) -> dict[str, str]:
    """Every path DVC writes, by the files that say so, committed or new."""
    names = {entry.path for entry in ws.repo.index}
    names.update(new_files)
    found: dict[str, str] = {}
    for name in sorted(names):
        pointer = PurePosixPath(name)
        if pointer.suffix != ".dvc" and pointer.name not in _DVC_FILES:
            continue
        try:
            content = yamlio.load((ws.workdir / name).read_bytes(), name)
        except (OSError, GitexpError):
            continue  # a missing or broken DVC file names no output; DVC itself says so
        for path in _dvc_paths(pointer, content):
            found.setdefault(path, f"a DVC output ({name})")
    return found


# Hydra writes each job's outputs into a folder of its own, marked by `.hydra/hydra.yaml`,
# and a multirun's jobs into a sweep folder marked by `multirun.yaml` (outputs/… and
# multirun/… by default, anywhere by configuration).
_HYDRA_MARKS = {".hydra/hydra.yaml": "a Hydra job's output (beside .hydra/)",
                "multirun.yaml": "a Hydra sweep's output (beside multirun.yaml)"}  # fmt: skip


def _hydra_outputs(new_files: Iterable[str]) -> dict[str, str]:
    """The folders Hydra made for its jobs and sweeps, among files no commit holds; never
    the top of the repository (a job run with `hydra.run.dir=.`)."""
    found: dict[str, str] = {}
    for name in new_files:
        for mark, reason in _HYDRA_MARKS.items():
            if name.endswith(f"/{mark}"):
                found.setdefault(name[: -len(mark) - 1], reason)
    return found


class _Outputs:
    """What runs and DVC write into the working tree: never code (DESIGN.md §1).

    Read on the first question, and only files no commit holds are asked about: a tree
    without new files never opens the index of runs nor a DVC file.
    """

    def __init__(self, ws: Workspace, new_files: Iterable[str]) -> None:
        self.ws = ws
        self.new_files = tuple(new_files)

    @cached_property
    def _known(self) -> dict[str, str]:
        from gitexp import catalog  # SQLite: only when the tree has new files

        made = catalog.artifact_paths(self.ws)
        recorded = {path: "a run's output (an artifact a run recorded)" for path in made}
        return {**_hydra_outputs(self.new_files), **_dvc_outputs(self.ws, self.new_files),
                **recorded}  # fmt: skip

    def reason(self, path: str) -> str | None:
        """Why `path` is an output, or None when it is code."""
        if path.startswith(f"{OUTPUTS_DIR}/"):
            return f"a run's output (in {OUTPUTS_DIR}/)"
        parts = path.split("/")
        for end in range(len(parts), 0, -1):  # the file, then each folder holding it
            reason = self._known.get("/".join(parts[:end]))
            if reason:
                return reason
        return None


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
    subs = _submodules(ws)
    submodules = subs.commits
    status = repo.status(untracked_files="all", ignored=False)
    new_files = tuple(path for path, flags in status.items() if flags & FileStatus.WT_NEW)
    outputs = _Outputs(ws, new_files)
    kept_out: set[str] = set()  # outputs left out: they do not make the tree dirty
    tree = pygit2.Index()  # in memory: the user's .git/index is never written
    tree.read_tree(head.tree)
    left_out: list[LeftOut] = list(subs.left_out)
    limit = ws.settings.max_file_size
    secrets = ws.settings.secrets
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
        # A file no commit holds yet (untracked, or only staged) would reach the runs branch
        # and its remote first through this snapshot: it stays out if it looks secret. A
        # committed file is kept as it is: git has it already. So is a committed file that a
        # run also logged as an artifact: leaving it out would hide edits to code.
        reason = None
        if untracked or path not in head.tree:
            reason = outputs.reason(path)
            if reason:
                kept_out.add(path)
            else:
                size = location.lstat().st_size if untracked else 0  # staged: any size is kept
                reason = _new_file_reason(path, location, size, limit, secrets)
        if reason:
            left_out.append(LeftOut(path, reason))
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
    changed = any(path not in kept_out for path in status)
    dirty = changed or tree_id != head.tree.id or bool(subs.diffs)
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
    # A submodule's own changes are not in the snapshot's tree (it holds the submodule's
    # commit): code.diff carries them, as `git diff --submodule=diff` writes them.
    diff += b"".join(subs.diffs[path] for path in sorted(subs.diffs))

    branch = None if repo.head_is_detached else repo.head.shorthand
    remotes = {str(remote.name): strip_credentials(remote.url or "") for remote in repo.remotes}
    state = CodeState(
        commit=str(head.id),
        branch=branch,
        snapshot=str(snapshot),
        dirty=dirty,
        remotes=remotes,
        submodules=submodules,
        dirty_submodules={path: str(pygit2.hash(diff)) for path, diff in subs.diffs.items()},
        config_files=tuple(sorted(config_files)),
        left_out=tuple(left_out),
        shallow=repo.is_shallow,
    )
    return Code(state, diff, new_files)
