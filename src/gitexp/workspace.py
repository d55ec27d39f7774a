"""The repository gitexp works in: found from the current directory, checked once."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pygit2

from gitexp import settings as settings_mod
from gitexp.errors import GitexpError
from gitexp.settings import Settings


@dataclass(frozen=True)
class Workspace:
    """A repository with a working tree, its gitexp settings and private state folder."""

    repo: pygit2.Repository
    workdir: Path
    state_dir: Path  # <common git dir>/gitexp: shared by every worktree of the repository
    settings: Settings

    @property
    def runs_ref(self) -> str:
        return self.settings.runs_ref

    def relative_cwd(self, cwd: Path) -> str:
        """`cwd` relative to the top of the working tree, `.` at the top."""
        return Path(cwd).resolve().relative_to(self.workdir.resolve()).as_posix() or "."


def _common_dir(repo: pygit2.Repository) -> Path:
    # A linked worktree's git dir names the shared one in `commondir`; runs in progress must
    # be seen from every worktree, so state lives there.
    git_dir = Path(repo.path)
    pointer = git_dir / "commondir"
    if pointer.is_file():
        return (git_dir / pointer.read_text().strip()).resolve()
    return git_dir.resolve()


def open_workspace(start: Path | None = None) -> Workspace:
    """The repository containing `start` (the current directory by default)."""
    start = Path.cwd() if start is None else start
    found = pygit2.discover_repository(str(start))
    if found is None:
        raise GitexpError(
            f"{start} is not inside a git repository; run gitexp from your project, "
            "or `git init` one first"
        )
    repo = pygit2.Repository(found)
    if repo.is_bare or repo.workdir is None:
        raise GitexpError("this is a bare repository; run gitexp from a working tree")
    workdir = Path(repo.workdir)
    return Workspace(
        repo=repo,
        workdir=workdir,
        state_dir=_common_dir(repo) / "gitexp",
        settings=settings_mod.load(workdir),
    )
