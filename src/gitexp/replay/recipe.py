"""What a replay runs, and running it: a command on a code snapshot checked out in a worktree
of its own, with files laid over it, its datasets restored and its seed variables set. The
new run is recorded like any other; `reproduce`, `rerun` and `explain` each write a recipe."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from gitexp import data, launch, runner
from gitexp.atomic import replace_file
from gitexp.errors import GitexpError, Unreadable
from gitexp.replay import code
from gitexp.workspace import Workspace


@dataclass(frozen=True)
class Recipe:
    """One replay: what to check out, change, restore and run, and whose run it follows."""

    source: str  # the run it is made from, for messages
    snapshot: str  # the commit whose tree is checked out
    cwd: str  # relative to the top of the code
    command: tuple[str, ...]
    params: tuple[str, ...] = ()  # KEY=VALUE set in the config, as `gitexp run -p`
    config_files: tuple[str, ...] = ()  # repo-relative
    tags: tuple[str, ...] = ()
    pins: tuple[tuple[str, str], ...] = ()  # (path, md5) restored before it runs
    variables: Mapping[str, str] = field(default_factory=dict)  # seed and determinism
    # Repo-relative path → content written over the snapshot (None: the file is removed).
    overlays: Mapping[str, bytes | None] = field(default_factory=dict)
    allow_unpinned_data: bool = False  # a dataset restored at a version no pointer names
    reproduces: str | None = None
    rerun_of: str | None = None
    explains: str | None = None
    variant: str | None = None


def run(ws: Workspace, recipe: Recipe) -> runner.RunResult:
    """Run `recipe` in a worktree of its snapshot, recorded on this repository's branch."""
    with code.worktree(ws, recipe.snapshot) as there:
        for path in recipe.config_files:
            _plain(there.workdir, path)  # read below: never through a link
        for path, _ in recipe.pins:  # written below: whatever the snapshot holds there goes
            _clear(_plain(there.workdir, path))
        for path, content in sorted(recipe.overlays.items()):
            _lay(there.workdir, path, content)
        if recipe.pins:
            data.restore(there, list(recipe.pins))
        cwd = there.workdir / recipe.cwd
        if not cwd.resolve().is_relative_to(there.workdir.resolve()):
            raise Unreadable(f"run {recipe.source} ran in {recipe.cwd!r}, outside its repository")
        request = launch.RunRequest(
            command=recipe.command,  # no name: a name finds one run, and the link says whose
            tags=recipe.tags,
            config_files=tuple(there.workdir / f for f in recipe.config_files),
            params=recipe.params,
            data=tuple(path for path, _ in recipe.pins) or None,
            allow_unpinned_data=recipe.allow_unpinned_data,
            reproduces=recipe.reproduces,
            rerun_of=recipe.rerun_of,
            explains=recipe.explains,
            variant=recipe.variant,
        )
        with _environment(recipe.variables):
            result = runner.run(there, request, cwd)
    if result.kept is not None:
        raise GitexpError(f"the run ran, but its record is not written yet: {result.kept}")
    return result


def _plain(root: Path, path: str) -> Path:
    """Where `path` lies in the worktree `root`. A path from a record or a snapshot is
    untrusted: it must name a place inside the worktree, reached through no link, or it is
    Unreadable."""
    parts = PurePosixPath(path).parts
    if not parts or path.startswith("/") or any(p in ("..", ".git", "") for p in parts):
        raise Unreadable(f"{path!r} is not a path inside the repository")
    place = root
    for part in parts:
        place = place / part
        if place.is_symlink():
            raise Unreadable(f"{path!r} leads through the link {place.relative_to(root)}, "
                             "which a replay never follows")  # fmt: skip
    return place


def _clear(place: Path) -> None:
    """Nothing at `place`, where a dataset is restored: the snapshot's own files there (a
    link inside a folder, say) are no data, and a restore must not write through them."""
    if place.is_dir():
        shutil.rmtree(place)  # links inside are removed, never followed
    else:
        place.unlink(missing_ok=True)


def _lay(root: Path, path: str, content: bytes | None) -> None:
    """Write (or remove) one file of the worktree."""
    target = _plain(root, path)
    if target.is_dir():
        raise Unreadable(f"{path!r} is a folder in the code, not a file")
    target.unlink(missing_ok=True)
    if content is None:
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    replace_file(target, content)


@contextmanager
def _environment(variables: Mapping[str, str]) -> Iterator[None]:
    """The variables set for the command, and this process's own put back after."""
    before = {name: os.environ.get(name) for name in variables}
    os.environ.update(variables)
    try:
        yield
    finally:
        for name, value in before.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
