"""The datasets a run reads, pinned by DVC's md5 (data.yaml), and refused when unpinned.

Pointers are read straight from `.dvc` files and `dvc.lock` (a millisecond, where a
`dvc status` costs half a second). The content is hashed by DVC's own hashing layer with its
state cache; before that, gitexp's own record of each path's file stats skips DVC entirely
when nothing changed since the last run, so unchanged data costs a few `stat` calls.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from pygit2.enums import FileStatus

from gitexp import git, yamlio
from gitexp.atomic import replace_file
from gitexp.errors import GitexpError, Refused, Unreadable
from gitexp.workspace import Workspace

LOCK_FILE = "dvc.lock"
_STATE_FILE = "data-state.json"


@dataclass(frozen=True)
class Pointer:
    """What a `.dvc` file or a `dvc.lock` stage says one tracked path holds."""

    path: str  # repo-relative, posix
    md5: str
    size: int | None
    nfiles: int | None
    source: str  # the pointer file, e.g. data/train.csv.dvc or dvc.lock:prepare
    algorithm: str  # "md5", or "md5-dos2unix" for pointers written before DVC 3


@dataclass(frozen=True)
class DataPin:
    """One dataset as a run read it (an entry of data.yaml)."""

    path: str
    md5: str
    size: int | None
    nfiles: int | None
    pointer: str | None  # None: not tracked by DVC, hashed into the cache for this run
    matches_pointer: bool  # False: changed since its pointer, allowed and hashed anew
    made_by: str | None = None  # the run whose artifact this is (lineage)


def _outs(data: Any) -> list[dict[str, Any]]:
    outs = data.get("outs") if isinstance(data, dict) else None
    return [out for out in outs or [] if isinstance(out, dict) and out.get("path")]


def _pointer(base: PurePosixPath, out: dict[str, Any], source: str) -> Pointer | None:
    md5 = out.get("md5")
    if not md5:
        return None
    path = (base / str(out["path"])).as_posix()
    algorithm = "md5" if out.get("hash") == "md5" else "md5-dos2unix"
    return Pointer(path, str(md5), out.get("size"), out.get("nfiles"), source, algorithm)


def _untracked(ws: Workspace) -> list[str]:
    status = ws.repo.status(untracked_files="all")
    return [path for path, flags in status.items() if flags & FileStatus.WT_NEW]


def _pointer_files(ws: Workspace, untracked: Iterable[str] | None) -> list[str]:
    """`.dvc` files and `dvc.lock` files, committed or not (ignored ones excluded).

    `untracked` is the working tree's new files when the caller has them already: a
    `git status` costs as much as the rest of a launch on a large repository.
    """
    names = set(_tracked_pointer_files(ws))
    names.update(_untracked(ws) if untracked is None else untracked)
    return sorted(n for n in names if is_pointer_file(n))


def is_pointer_file(path: str) -> bool:
    return path.endswith(".dvc") or path == LOCK_FILE or path.endswith(f"/{LOCK_FILE}")


# Index entries past which git finds the pointer files sooner than a walk in Python: a walk
# costs about 5 µs an entry, a `git ls-files` process about 3 ms.
_WALKED_ENTRIES = 1000


def _tracked_pointer_files(ws: Workspace) -> list[str]:
    """The index's `.dvc` and `dvc.lock` files. In a large index git matches them, in C:
    walking 100,000 entries in Python costs a launch half a second."""
    index = ws.repo.index
    if len(index) > _WALKED_ENTRIES:
        pattern = ("*.dvc", LOCK_FILE, f"*/{LOCK_FILE}")
        done = git.run(ws.workdir, "ls-files", "-z", "--", *pattern)
        if done is not None and done.returncode == 0:
            return [name for name in done.stdout.split("\0") if name]
    return [path for entry in index if is_pointer_file(path := entry.path)]


def pointers(ws: Workspace, untracked: Iterable[str] | None = None) -> dict[str, Pointer]:
    """Every DVC-tracked path in the working tree, by repo-relative path."""
    found: dict[str, Pointer] = {}
    for name in _pointer_files(ws, untracked):
        location = ws.workdir / name
        if not location.is_file():
            continue
        data = yamlio.load(location.read_bytes(), name)
        base = PurePosixPath(name).parent
        if name.endswith(".dvc"):
            for out in _outs(data):
                pointer = _pointer(base, out, name)
                if pointer:
                    found[pointer.path] = pointer
        else:
            stages = data.get("stages", {}) if isinstance(data, dict) else {}
            for stage, body in sorted(stages.items()):
                for out in _outs(body):
                    pointer = _pointer(base, out, f"{name}:{stage}")
                    if pointer:
                        found[pointer.path] = pointer
    return found


def _stats(location: Path) -> list[list[Any]]:
    """Inode, mtime and size of a file or of every file under a folder."""
    if location.is_file():
        info = location.stat()
        return [[".", info.st_ino, info.st_mtime_ns, info.st_size]]
    found = []
    for folder, _, files in os.walk(location):
        for name in files:
            info = os.stat(os.path.join(folder, name))
            found.append([os.path.relpath(os.path.join(folder, name), location),
                          info.st_ino, info.st_mtime_ns, info.st_size])  # fmt: skip
    return sorted(found)


class _Hasher:
    """DVC's hashing, opened only when a path's stats say its content may have changed."""

    def __init__(self, ws: Workspace) -> None:
        self.ws = ws
        self.state_path = ws.state_dir / _STATE_FILE
        try:
            self.known: dict[str, Any] = json.loads(self.state_path.read_text())
        except (OSError, ValueError):
            self.known = {}
        self._repo: Any = None
        self._changed = False

    def _dvc(self) -> Any:
        if self._repo is None:
            from dvc.repo import Repo  # slow to import: only when something must be hashed

            if not (self.ws.workdir / ".dvc").is_dir():
                raise GitexpError("this repository has no DVC set-up; run `gitexp init` first")
            self._repo = Repo(str(self.ws.workdir))
        return self._repo

    def digest(self, path: str, algorithm: str, into_cache: bool) -> tuple[str, int, int | None]:
        """md5, size and file count of `path` now; stored in the DVC cache if asked."""
        location = self.ws.workdir / path
        stats = _stats(location)
        key = f"{algorithm}:{path}"
        seen = self.known.get(key)
        if seen and seen["stats"] == stats and (not into_cache or seen.get("cached")):
            return seen["md5"], seen["size"], seen["nfiles"]
        from dvc_data.hashfile.build import build
        from dvc_data.hashfile.transfer import transfer

        repo = self._dvc()
        odb = repo.cache.local
        staging, meta, obj = build(odb, str(location), repo.fs, algorithm, state=repo.state)
        if into_cache:
            transfer(staging, odb, {obj.hash_info}, hardlink=False, shallow=False)
        md5 = str(obj.hash_info.value)
        size = int(meta.size) if meta.size is not None else sum(s[3] for s in stats)
        nfiles = meta.nfiles if location.is_dir() else None
        self._changed = True
        self.known[key] = {"stats": stats, "md5": md5, "size": size, "nfiles": nfiles,
                           "cached": into_cache or bool(seen and seen.get("cached"))}  # fmt: skip
        return md5, size, nfiles

    def close(self) -> None:
        if self._repo is not None:
            self._repo.close()
        if not self._changed:
            return
        # Runs starting together each replace the whole file and the last one wins: a lost
        # entry only means one more hash next time.
        self.state_path.parent.mkdir(parents=True, exist_ok=True)
        replace_file(self.state_path, json.dumps(self.known).encode())


def _relative(ws: Workspace, cwd: Path, given: str) -> str:
    location = (cwd / given).resolve()
    try:
        return location.relative_to(ws.workdir.resolve()).as_posix()
    except ValueError:
        raise GitexpError(f"--data {given} is outside the repository") from None


def pin(
    ws: Workspace,
    cwd: Path,
    requested: Sequence[str] | None,
    allow_unpinned: bool,
    artifacts: Callable[[], Mapping[str, str]] | None = None,
    untracked: Iterable[str] | None = None,
) -> list[DataPin]:
    """Pin the datasets a run reads: those requested, else every DVC-tracked path.

    A path whose content no longer matches its pointer, or that DVC does not track, is
    refused unless `allow_unpinned`; then it is hashed into the DVC cache and recorded with
    its new md5, so the run can still be reproduced. A path holding another run's artifact
    (same md5; `artifacts` gives md5 → run id, asked only if a dataset is pinned) is pinned
    already: the cache holds it, and the run that made it becomes an input of this one.
    """
    makers: Mapping[str, str] | None = None

    def made_by(md5: str) -> str | None:
        nonlocal makers
        if makers is None:
            makers = artifacts() if artifacts is not None else {}
        return makers.get(md5)

    known = pointers(ws, untracked)
    wanted: Iterable[str] = (
        [_relative(ws, cwd, p) for p in requested] if requested is not None else sorted(known)
    )
    hasher = _Hasher(ws)
    pins = []
    try:
        for path in wanted:
            pointer = known.get(path)
            if not (ws.workdir / path).exists():
                if pointer is None:
                    raise GitexpError(f"--data {path}: no such file or folder")
                if not allow_unpinned:
                    raise Refused(_missing(path, pointer))
                pins.append(DataPin(path, pointer.md5, pointer.size, pointer.nfiles,
                                    pointer.source, False))  # fmt: skip
                continue
            algorithm = pointer.algorithm if pointer else "md5"
            md5, size, nfiles = hasher.digest(path, algorithm, into_cache=False)
            maker = made_by(md5)
            if pointer is not None and md5 == pointer.md5:
                pins.append(DataPin(path, md5, size, nfiles, pointer.source, True, maker))
                continue
            if pointer is None and maker is not None:
                pins.append(DataPin(path, md5, size, nfiles, f"run {maker}", True, maker))
                continue
            if not allow_unpinned:
                raise Refused(_unpinned(path, pointer, md5))
            md5, size, nfiles = hasher.digest(path, algorithm, into_cache=True)
            source = pointer.source if pointer else None
            pins.append(DataPin(path, md5, size, nfiles, source, False))
    finally:
        hasher.close()
    return pins


def _missing(path: str, pointer: Pointer) -> str:
    return (
        f"{path} is missing, though {pointer.source} pins it; restore it with "
        "`dvc checkout` or `dvc pull`, or pass --allow-unpinned-data"
    )


def _unpinned(path: str, pointer: Pointer | None, md5: str) -> str:
    if pointer is None:
        return (
            f"{path} is not tracked by DVC, so this run could not be reproduced; "
            f"`dvc add {path}`, or pass --allow-unpinned-data to pin it for this run"
        )
    return (
        f"{path} has changed since {pointer.source} pinned it (md5 {pointer.md5[:8]} → "
        f"{md5[:8]}); `dvc add {path}` and commit the pointer, or pass --allow-unpinned-data "
        "to record the new version"
    )


def store(ws: Workspace, path: str) -> tuple[str, int, int | None]:
    """Put a file or folder into the DVC cache, as `dvc add` would: md5, size, file count."""
    hasher = _Hasher(ws)
    try:
        return hasher.digest(path, "md5", into_cache=True)
    finally:
        hasher.close()


def pointer_file(path: str, md5: str, size: int, nfiles: int | None) -> bytes:
    """A `.dvc` file for `path`, so that plain `dvc pull`/`dvc checkout` can restore it."""
    out: dict[str, Any] = {"md5": md5, "size": size}
    if nfiles is not None:
        out["nfiles"] = nfiles
    out.update(hash="md5", path=PurePosixPath(path).name)
    return yamlio.dump({"outs": [out]})


def init_dvc(
    ws: Workspace, remote: Path | None, remote_name: str
) -> tuple[tuple[str, ...], str | None]:
    """DVC with a local cache, and `remote` as its default directory remote if given.

    Returns the paths it created and the remote's URL.
    """
    from dvc.exceptions import DvcException
    from dvc.repo import Repo  # slow to import: only `gitexp init` needs it here

    created: list[str] = []
    try:
        if not (ws.workdir / ".dvc").is_dir():
            Repo.init(str(ws.workdir)).close()
            created += [".dvc/", ".dvcignore"]
        url = None
        if remote is not None:
            url = str(remote.resolve())
            remote.mkdir(parents=True, exist_ok=True)
            with Repo(str(ws.workdir)) as dvc, dvc.config.edit() as config:
                config["remote"][remote_name] = {"url": url}
                config["core"]["remote"] = remote_name
    except DvcException as e:
        raise GitexpError(f"DVC could not be set up: {e}") from None
    return tuple(created), url


@dataclass(frozen=True)
class Moved:
    """What a transfer between the DVC cache and the default remote did."""

    objects: int  # objects copied
    missing: tuple[str, ...] = ()  # md5s wanted here that neither side holds
    remote: str = ""  # where the remote is, for messages


def transfer(ws: Workspace, md5s: Iterable[str], upload: bool) -> Moved | None:
    """Copy objects between the DVC cache and the default remote; None when no DVC remote is
    configured (the runs still travel; their data stays)."""
    from dvc.config import NoRemoteError
    from dvc.exceptions import DvcException, NotDvcRepoError
    from dvc.repo import Repo
    from dvc_data.hashfile.hash_info import HashInfo
    from dvc_data.hashfile.transfer import transfer as copy_objects

    wanted = {HashInfo("md5", md5) for md5 in md5s}
    if not wanted:
        return Moved(0)
    try:
        with Repo(str(ws.workdir)) as repo:
            cache, remote = repo.cache.local, repo.cloud.get_remote_odb()
            source, target = (cache, remote) if upload else (remote, cache)
            present = {h for h in wanted if source.exists(h.value)}
            result = copy_objects(source, target, present, hardlink=False, shallow=False)
            # Fetching: what the records name and neither side has is data lost to this clone.
            lacking = [] if upload else [h for h in wanted - present if not _present(cache, h)]
    except (NoRemoteError, NotDvcRepoError):  # a clone that never set DVC up has no remote
        return None
    except DvcException as e:
        raise GitexpError(f"DVC could not move the runs' data: {e}") from None
    missing = tuple(sorted(str(h.value) for h in lacking))
    return Moved(len(result.transferred), missing, str(remote.path))


def export_objects(ws: Workspace, md5s: Iterable[str], folder: Path) -> tuple[int, list[str]]:
    """Copy the DVC objects `md5s` name (a folder's listing with its files) from the DVC cache
    into `folder`, laid out as a DVC cache is: (objects copied, md5s the cache lacks)."""
    from dvc.exceptions import DvcException, NotDvcRepoError
    from dvc.repo import Repo
    from dvc_data.hashfile.hash_info import HashInfo
    from dvc_data.hashfile.transfer import transfer

    wanted = sorted(set(md5s))
    if not wanted:
        return 0, []
    try:
        with Repo(str(ws.workdir)) as repo:
            cache = repo.cache.local
            present = [md5 for md5 in wanted if _present(cache, HashInfo("md5", md5))]
            target = _object_folder(folder)
            found = {HashInfo("md5", md5) for md5 in present}
            moved = transfer(cache, target, found, hardlink=False, shallow=False).transferred
    except NotDvcRepoError:
        return 0, wanted
    except DvcException as e:
        raise GitexpError(f"DVC could not copy the runs' data: {e}") from None
    return len(moved), [md5 for md5 in wanted if md5 not in present]


def import_objects(ws: Workspace, folder: Path) -> tuple[int, int]:
    """Every DVC object in `folder` (laid out as a DVC cache is: a bundle's) into the DVC
    cache, each first checked to hash to its own name: (objects added, already there).

    An object whose content is not its md5 is Unreadable, and nothing is added.
    """
    from dvc.exceptions import DvcException, NotDvcRepoError
    from dvc.repo import Repo
    from dvc_data.hashfile.hash_info import HashInfo
    from dvc_data.hashfile.transfer import transfer

    found = sorted(p for p in folder.rglob("*") if p.is_file()) if folder.is_dir() else []
    if not found:
        return 0, 0
    oids = []
    for path in found:
        oid = path.parent.name + path.name
        digest = hashlib.md5(usedforsecurity=False)
        with open(path, "rb") as f:
            while chunk := f.read(1 << 20):
                digest.update(chunk)
        if digest.hexdigest() != oid.removesuffix(".dir"):
            raise Unreadable(f"data object {oid} does not hash to its name (it was altered)")
        oids.append(oid)
    try:
        with Repo(str(ws.workdir)) as repo:
            cache = repo.cache.local
            already = sum(1 for oid in oids if cache.exists(oid))
            wanted = {HashInfo("md5", oid) for oid in oids}
            transfer(_object_folder(folder), cache, wanted, hardlink=False, shallow=True)
    except NotDvcRepoError:
        raise GitexpError(
            f"this repository has no DVC cache for the {len(oids)} data objects the runs "
            "name: run `gitexp init`, then import again"
        ) from None
    except DvcException as e:
        raise GitexpError(f"DVC could not store the runs' data: {e}") from None
    return len(oids) - already, already


def _object_folder(folder: Path) -> Any:
    """A folder laid out as a DVC cache, as DVC's object store."""
    from dvc_data.hashfile.db.local import LocalHashFileDB
    from dvc_objects.fs.local import LocalFileSystem

    return LocalHashFileDB(LocalFileSystem(), str(folder))  # type: ignore[no-untyped-call]


def to_yaml(pins: Sequence[DataPin]) -> bytes:
    """data.yaml: every dataset the run read."""
    return yamlio.dump({"datasets": [asdict(p) for p in sorted(pins, key=lambda p: p.path)]})


@dataclass(frozen=True)
class Restored:
    """One path `gitexp checkout` wrote, and where its former content went."""

    path: str
    md5: str
    previous_md5: str | None  # what the path held before, kept in the DVC cache


def _present(cache: Any, hash_info: Any) -> bool:
    """Whether the cache holds an object, and for a folder every file in it."""
    from dvc_data.hashfile import load

    if not cache.exists(hash_info.value):
        return False
    if not hash_info.isdir:
        return True
    tree: Any = load(cache, hash_info)  # a Tree: iterates (key, meta, hash_info)
    return all(cache.exists(entry_hash.value) for _, _, entry_hash in tree)


def restore(ws: Workspace, wanted: Sequence[tuple[str, str]]) -> list[Restored]:
    """Put each (path, md5) back in the working tree, byte for byte.

    Objects missing from the local DVC cache are fetched from the default DVC remote. What
    a path held before is first stored in the cache, so a checkout never loses data.
    """
    from dvc.exceptions import DvcException
    from dvc_data.hashfile import load
    from dvc_data.hashfile.checkout import checkout
    from dvc_data.hashfile.hash_info import HashInfo
    from dvc_data.hashfile.transfer import transfer

    hasher = _Hasher(ws)
    try:
        repo = hasher._dvc()
        cache = repo.cache.local
        absent = [(path, HashInfo("md5", md5)) for path, md5 in wanted]
        absent = [(path, h) for path, h in absent if not _present(cache, h)]
        remote_url = "any DVC remote (none is configured)"
        if absent:
            try:
                remote = repo.cloud.get_remote_odb()
                remote_url = f"the DVC remote at {remote.path}"
                transfer(remote, cache, {h for _, h in absent}, hardlink=False, shallow=False)
            except DvcException:
                pass
        for path, hash_info in absent:
            if not _present(cache, hash_info):
                raise GitexpError(
                    f"{path} (md5 {hash_info.value}) is in neither the DVC cache "
                    f"({cache.path}) nor {remote_url}; push it from the machine that made "
                    "the run (`gitexp push`), or copy its cache here"
                )
        restored = []
        for path, md5 in wanted:
            location = ws.workdir / path
            previous = None
            if location.exists():
                previous, _, _ = hasher.digest(path, "md5", into_cache=True)
                if previous == md5:
                    continue
            obj = load(cache, HashInfo("md5", md5))
            location.parent.mkdir(parents=True, exist_ok=True)
            checkout(str(location), repo.fs, obj, cache, force=True, quiet=True)
            hasher.known.pop(f"md5:{path}", None)
            restored.append(Restored(path, md5, previous))
        return restored
    finally:
        hasher.close()
