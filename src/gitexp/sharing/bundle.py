"""`gitexp bundle`: runs, their code and the data they name, in one file for the air gap.

A bundle is an uncompressed tar. Its first member, `gitexp-bundle.yaml`, says what it holds
and the sha256 and size of every other member: `runs.bundle`, a git bundle of the runs
branch (every record, with the commits that signed it and the code snapshots that are their
second parents), and `objects/`, the DVC objects the chosen runs name, laid out as a DVC
cache is. The whole branch always travels (records are small, and a record's signature can
only be checked with the commit that made it); `--runs`, `--since` and `--where` choose
whose data does, the heavy part.

Reading a bundle is reading untrusted input. Its members stream into a folder under
`.git/gitexp/` and are checked against the manifest as they arrive; nothing else in the
archive is read, and no path from it is used. Every DVC object must hash to its own name,
git checks its bundle, and the runs new here must verify (signed by a key git trusts)
before anything is merged: a truncated, altered or unsigned bundle changes nothing.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import tarfile
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Any

import pygit2

from gitexp import data, git, limits, store, yamlio
from gitexp.errors import GitexpError, Unreadable, UsageError, VerificationFailed
from gitexp.reader import terminal_safe as safe
from gitexp.settings import valid_branch
from gitexp.sharing import remote
from gitexp.workspace import Workspace

MANIFEST = "gitexp-bundle.yaml"
RUNS = "runs.bundle"
OBJECTS = "objects"
FORMAT = 1
_OBJECT_NAME = re.compile(r"objects/[0-9a-f]{2}/[0-9a-f]{30}(\.dir)?")
_MANIFEST_LIMITS = limits.Limits(depth=8, nodes=2_000_000, file_size=64 * 1024 * 1024)
_IMPORTED = "refs/gitexp/bundle"  # where an import's runs branch waits while it is checked

Progress = Callable[[int, int], None]  # (members done, members in all)


@dataclass(frozen=True)
class Created:
    """What `bundle create` wrote."""

    runs: int  # every run on the branch
    with_data: int  # runs whose data travels
    objects: int  # DVC objects in the bundle
    missing: tuple[str, ...]  # md5s the chosen runs name that the local DVC cache lacks
    size: int  # bytes of the bundle file


@dataclass(frozen=True)
class Imported:
    """What `bundle import` brought."""

    runs: tuple[str, ...]  # runs new here
    known: int  # runs of the bundle this repository had already
    objects: int  # DVC objects new in the cache
    objects_known: int  # DVC objects the cache had already
    kept: tuple[str, ...] = ()  # runs the bundle holds otherwise: ours were kept


SUFFIX = ".gxb"  # what `push` takes for a bundle to write


def is_bundle(path: Path) -> bool:
    """Whether `path` is a file that starts as a gitexp bundle does (its first header)."""
    try:
        with tarfile.open(path, "r|") as tar:
            first = tar.next()
    except (OSError, tarfile.TarError, EOFError):
        return False
    return first is not None and first.name == MANIFEST


def choose(
    ws: Workspace, named: Sequence[str], since: str | None, wheres: Sequence[str]
) -> list[str] | None:
    """The runs whose data a bundle carries: those `named` and those the filters keep
    (`--since DATE` is `--where started>=DATE`); None, every run, when nothing is given."""
    from gitexp import history
    from gitexp.comparison import table

    conditions = [*wheres, *([f"started>={since}"] if since else [])]
    if not named and not conditions:
        return None
    if since:
        try:
            table.parse_where([f"started>={since}"])
        except UsageError:
            raise UsageError(f"--since {since!r} is not a date; write YYYY-MM-DD") from None
    chosen = {history.resolve(ws, ref).id for ref in named}
    if conditions:
        where = table.parse_where(conditions)
        chosen |= {run.id for run in table.select(ws, where, live=False, archived=True)}
    return sorted(chosen)


def create(
    ws: Workspace, path: Path, with_data: Sequence[str] | None, progress: Progress | None
) -> Created:
    """Write the bundle file `path`: the runs branch, and the data of the runs `with_data`
    (all runs when None). Written beside `path` first, then moved: never half a file."""
    tip = store.tip(ws)
    if tip is None:
        raise GitexpError("there are no runs to bundle; record one with `gitexp run -- CMD`")
    if not path.parent.is_dir():
        raise GitexpError(f"{path.parent} is not a folder; create it, or write the bundle "
                          "elsewhere")  # fmt: skip
    if path.is_dir():
        raise GitexpError(f"{path} is a folder; give the bundle a file name, e.g. runs.gxb")
    with tempfile.TemporaryDirectory(dir=_scratch(ws), prefix="bundle-") as scratch:
        folder = Path(scratch)
        # The branch as bundled (a run may have been recorded since `tip` was read).
        tip = ws.repo[_git_bundle(ws, folder / RUNS)].peel(pygit2.Commit)
        runs = sorted(store.run_folders(tip))
        chosen = runs if with_data is None else sorted(set(with_data))
        names = remote.referenced_objects(ws, tip, set(chosen))
        _, missing = data.export_objects(ws, names, folder / OBJECTS)
        members = [RUNS, *sorted(_files(folder, OBJECTS))]
        manifest = {
            "format": FORMAT,
            "created": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "branch": ws.settings.branch,
            "tip": str(tip.id),
            "runs": len(runs),
            "with_data": chosen,
            "files": {name: _describe(folder / name) for name in members},
        }
        partial = path.with_name(f".{path.name}.partial")
        try:
            with tarfile.open(partial, "w", format=tarfile.PAX_FORMAT) as tar:
                _add(tar, MANIFEST, yamlio.dump(manifest))
                for done, name in enumerate(members, 1):
                    with open(folder / name, "rb") as f:
                        _add(tar, name, f, (folder / name).stat().st_size)
                    if progress is not None:
                        progress(done, len(members))
            os.replace(partial, path)
        finally:
            partial.unlink(missing_ok=True)
    objects = len(members) - 1
    return Created(len(runs), len(chosen), objects, tuple(missing), path.stat().st_size)


def import_(
    ws: Workspace, path: Path, unverified: bool = False, progress: Progress | None = None
) -> Imported:
    """Merge the runs of the bundle file `path` into the runs branch and its data into the
    DVC cache, once every check passed. Importing a bundle twice changes nothing."""
    with (
        tempfile.TemporaryDirectory(dir=_scratch(ws), prefix="bundle-") as scratch,
        _archive(path) as tar,
    ):
        folder = Path(scratch)
        manifest = _unpack(tar, path, folder, progress)
        known = set(store.run_folders(store.tip(ws)))
        theirs = _fetch(ws, path, folder / RUNS, str(manifest["branch"]))
        try:
            if str(theirs.id) != manifest.get("tip"):
                raise Unreadable(f"{path}: its runs branch is not at the commit its manifest "
                                 "names (it was altered); nothing was imported")  # fmt: skip
            carried = set(store.run_folders(theirs))
            arriving = sorted(carried - known)
            if arriving and not unverified:
                _verify(ws, arriving, path)
            try:
                added, already = data.import_objects(ws, folder / OBJECTS)
            except Unreadable as e:
                raise Unreadable(f"{path}: {e}; nothing was imported") from None
            done = remote.merge(ws, _IMPORTED, f"gitexp bundle import {path.name}", known)
        finally:
            git.run(ws.workdir, f"--git-dir={ws.git_dir}", "update-ref", "-d", _IMPORTED)
    return Imported(tuple(done.added), len(carried & known), added, already, tuple(done.kept))


def _scratch(ws: Workspace) -> Path:
    """Where a bundle is taken apart or put together: inside the repository's git dir."""
    ws.state_dir.mkdir(parents=True, exist_ok=True)
    return ws.state_dir


def _git_bundle(ws: Workspace, target: Path) -> str:
    """Bundle the runs branch into `target`; the commit it holds."""
    git_dir = f"--git-dir={ws.git_dir}"
    made = git.run(ws.workdir, git_dir, "bundle", "create", "--quiet", str(target), ws.runs_ref)
    _check(made, "bundle")
    heads = git.run(ws.workdir, git_dir, "bundle", "list-heads", str(target), ws.runs_ref)
    _check(heads, "bundle")
    assert heads is not None
    return heads.stdout.split()[0]


def _check(done: Any, what: str) -> None:
    if done is None:
        raise GitexpError(f"`gitexp bundle` needs git on PATH to {what} the runs branch")
    if done.returncode != 0:
        raise GitexpError(f"git could not {what} the runs branch: {git.said(done)}")


def _files(folder: Path, under: str) -> Iterator[str]:
    root = folder / under
    if root.is_dir():
        for found in root.rglob("*"):
            if found.is_file():
                yield found.relative_to(folder).as_posix()


def _describe(path: Path) -> dict[str, Any]:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return {"sha256": digest.hexdigest(), "size": path.stat().st_size}


def _add(tar: tarfile.TarFile, name: str, content: bytes | IO[bytes], size: int = 0) -> None:
    info = tarfile.TarInfo(name)
    info.mode, info.mtime = 0o644, 0  # the same runs and data make the same bytes
    if isinstance(content, bytes):
        info.size = len(content)
        tar.addfile(info, io.BytesIO(content))
    else:
        info.size = size
        tar.addfile(info, content)


@contextmanager
def _archive(path: Path) -> Iterator[tarfile.TarFile]:
    """The bundle, streamed member by member: nothing seeks back, nothing is read twice."""
    damaged = f"{path} is not a whole gitexp bundle"
    try:
        tar = tarfile.open(path, "r|")  # noqa: SIM115 - closed by the with below
    except FileNotFoundError:
        raise GitexpError(f"{path} does not exist; give the path of a gitexp bundle") from None
    except IsADirectoryError:
        raise GitexpError(f"{path} is a folder; give the path of a gitexp bundle") from None
    except (tarfile.TarError, EOFError) as e:
        raise Unreadable(f"{damaged} ({e}); nothing was imported") from None
    with tar:
        try:
            yield tar
        except (tarfile.TarError, EOFError) as e:  # cut short, or not a tar past its start
            raise Unreadable(f"{damaged} ({e}); nothing was imported") from None


def _unpack(tar: tarfile.TarFile, path: Path, folder: Path, progress: Progress | None) -> Any:
    """Every member into `folder`, each checked against the manifest as it streams."""
    first = tar.next()
    if first is None or first.name != MANIFEST or not first.isfile():
        raise Unreadable(f"{path} is not a gitexp bundle: it does not start with {MANIFEST}")
    manifest = _manifest(tar, first, path)
    files: dict[str, Any] = manifest["files"]
    seen: set[str] = set()
    while (member := tar.next()) is not None:
        name = member.name
        if name not in files or name in seen or not member.isfile():
            what = "twice" if name in seen else "as something other than a plain file" if (
                name in files) else "though its manifest does not list it"  # fmt: skip
            raise Unreadable(f"{path} holds {name!r} {what}; nothing was imported")
        if member.size != files[name]["size"]:
            raise Unreadable(f"{path}: {name} is not the size its manifest says; nothing was "
                             "imported")  # fmt: skip
        target = folder / name  # checked: RUNS, or objects/xx/<30 hex>
        target.parent.mkdir(parents=True, exist_ok=True)
        source = tar.extractfile(member)
        assert source is not None
        digest = hashlib.sha256()
        with open(target, "wb") as out:
            while chunk := source.read(1 << 20):
                digest.update(chunk)
                out.write(chunk)
        if digest.hexdigest() != files[name]["sha256"]:
            raise Unreadable(f"{path}: {name} does not match its checksum (the file was "
                             "damaged or altered); nothing was imported")  # fmt: skip
        seen.add(name)
        if progress is not None:
            progress(len(seen), len(files))
    absent = sorted(set(files) - seen)
    if absent:
        raise Unreadable(f"{path} lacks {len(absent)} of the files its manifest lists (it was "
                         f"cut short?): {absent[0]}…; nothing was imported")  # fmt: skip
    return manifest


def _manifest(tar: tarfile.TarFile, member: tarfile.TarInfo, path: Path) -> Any:
    if member.size > _MANIFEST_LIMITS.file_size:
        raise Unreadable(f"{path}: its manifest is too large to be one gitexp wrote")
    source = tar.extractfile(member)
    assert source is not None
    where = f"{path}: {MANIFEST}"
    found = yamlio.load_bounded(source.read(), where, _MANIFEST_LIMITS, Unreadable,
                                aliases=False, malformed=Unreadable)  # fmt: skip
    if not isinstance(found, dict) or found.get("format") != FORMAT:
        raise Unreadable(f"{where} is not a bundle format this gitexp reads (format {FORMAT})")
    files = found.get("files")
    if not isinstance(files, dict):
        raise Unreadable(f"{where} does not list its files as gitexp writes them")
    good = RUNS in files and isinstance(found.get("runs"), int)
    good = good and isinstance(found.get("branch"), str) and valid_branch(found["branch"])
    if good:
        good = all(
            (name == RUNS or _OBJECT_NAME.fullmatch(name))
            and isinstance(entry, dict)
            and isinstance(entry.get("sha256"), str)
            and isinstance(entry.get("size"), int)
            for name, entry in files.items()
        )
    if not good:
        raise Unreadable(f"{where} does not list its files as gitexp writes them")
    return found


def _fetch(ws: Workspace, path: Path, runs: Path, branch: str) -> Any:
    verified = git.run(ws.workdir, f"--git-dir={ws.git_dir}", "bundle", "verify", "--quiet",
                       str(runs))  # fmt: skip
    _check(verified, "read")
    try:
        return remote.fetch(ws, str(runs), _IMPORTED, f"refs/heads/{branch}")
    except GitexpError as e:
        raise Unreadable(f"{path}: its runs branch cannot be read ({e})") from None


def _verify(ws: Workspace, arriving: list[str], path: Path) -> None:
    from gitexp import verify

    report = verify.verify(ws, arriving, rev=_IMPORTED)
    failed = report.failed
    if failed:
        first = failed[0]
        more = f" and {len(failed) - 1} more" if len(failed) > 1 else ""
        raise VerificationFailed(
            f"{path}: run {first.run_id} does not verify ({first.status}: {safe(first.detail)})"
            f"{more}; "
            "nothing was imported. Trust its signer (git's gpg.ssh.allowedSignersFile), or "
            "import with --unverified to take the runs as they are"
        )
