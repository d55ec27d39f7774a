"""The repository gitexp works in: found from the current directory, checked once.

Found by git itself (`git rev-parse`), which honours every convention of discovery (linked
worktrees, `GIT_DIR`, ceilings, safe.directory). libgit2 is opened on first use of
`Workspace.repo`: its import alone costs more than listing 10,000 runs from a warm index,
which never needs it.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from gitexp import git
from gitexp import settings as settings_mod
from gitexp.errors import GitexpError
from gitexp.settings import Settings

if TYPE_CHECKING:
    import pygit2


@dataclass(frozen=True)
class Workspace:
    """A repository with a working tree, its gitexp settings and private state folder."""

    git_dir: Path
    workdir: Path
    state_dir: Path  # <common git dir>/gitexp: shared by every worktree of the repository
    settings: Settings
    # A reader that must change nothing (`gitexp ui`): runs left behind are not committed.
    read_only: bool = False

    @cached_property
    def repo(self) -> pygit2.Repository:
        import pygit2

        try:
            return pygit2.Repository(str(self.git_dir))
        except pygit2.GitError as e:  # git opened it; libgit2 may not (sha256, ownership)
            raise GitexpError(
                f"libgit2 cannot open the repository at {self.git_dir}: {e}"
            ) from None

    @property
    def runs_ref(self) -> str:
        return self.settings.runs_ref

    def relative_cwd(self, cwd: Path) -> str:
        """`cwd` relative to the top of the working tree, `.` at the top."""
        here, top = Path(cwd).resolve(), self.workdir.resolve()
        if not here.is_relative_to(top):  # GIT_DIR and GIT_WORK_TREE name a tree elsewhere
            raise GitexpError(f"{here} is outside the working tree {top}; run gitexp inside it")
        return here.relative_to(top).as_posix() or "."

    def ref_target(self, ref: str) -> str | None:
        """The object id the full ref name `ref` points at, read without opening any object
        (git's own abbreviation rules are not applied); None if there is no such ref.

        Asked again in one process, git is asked again only if the files that hold refs
        changed since: one `diff` opens the index nine times."""
        key = (self.git_dir, ref)
        files = _ref_files(self.state_dir.parent, ref)  # before reading: a move after it shows
        known = _REFS_READ.get(key)
        if files is not None and known is not None and known[0] == files:
            return known[1]
        found = git.run(self.workdir, f"--git-dir={self.git_dir}", "show-ref", "--verify",
                        "--hash", ref)  # fmt: skip
        if found is None:  # no git here
            target = self.repo.references.get(ref)
            return None if target is None else str(target.resolve().target)
        result = found.stdout.strip() if found.returncode == 0 else None
        if files is not None:
            _REFS_READ[key] = (files, result)
        return result


# What each ref read pointed at, and the state of the files that hold it then.
_REFS_READ: dict[tuple[Path, str], tuple[tuple[object, ...], str | None]] = {}


def _ref_files(common: Path, ref: str) -> tuple[object, ...] | None:
    """The identity of the files git keeps `ref` in (its loose file and packed-refs): git
    replaces them whenever a ref moves. None for refs other than branches (a worktree keeps
    some of its own) and where refs are kept otherwise (reftable)."""
    if not ref.startswith("refs/heads/") or (common / "reftable").exists():
        return None
    state: list[object] = []
    for path in (common / ref, common / "packed-refs"):
        try:
            found = path.stat()
        except OSError:
            state.append(None)
            continue
        state.append((found.st_ino, found.st_mtime_ns, found.st_size))
    return tuple(state)


def checked_out_at(ws: Workspace, ref: str) -> Path | None:
    """The working tree that has the branch `ref` (a full ref name) checked out, if any:
    git refuses to move such a branch under it, and so does gitexp."""
    common = ws.state_dir.parent
    heads = [(common / "HEAD", ws.workdir if ws.git_dir == common else common.parent)]
    worktrees = common / "worktrees"
    if worktrees.is_dir():
        for entry in worktrees.iterdir():
            gitdir = entry / "gitdir"
            try:
                where = Path(gitdir.read_text().strip()).parent
            except OSError:
                where = entry
            heads.append((entry / "HEAD", where))
    for head, where in heads:
        try:
            if head.read_text().strip() == f"ref: {ref}":
                return where
        except OSError:
            continue
    return None


def _not_a_repository(start: Path) -> GitexpError:
    return GitexpError(
        f"{start} is not inside a git repository; run gitexp from your project, "
        "or `git init` one first"
    )


def _bare() -> GitexpError:
    return GitexpError("this is a bare repository; run gitexp from a working tree")


def _discover(start: Path) -> tuple[Path, Path, Path]:
    """(git dir, common git dir, top of the working tree) of the repository around `start`."""
    found = git.run(
        start, "rev-parse", "--is-bare-repository", "--is-inside-git-dir",
        "--path-format=absolute", "--git-dir", "--git-common-dir", "--show-toplevel",
    )  # fmt: skip
    if found is None:
        return _discover_without_git(start)
    # One line per question, in order: where git stops (no working tree), those before stay.
    lines = found.stdout.split("\n")[:-1]
    if lines[:1] == ["true"]:
        raise _bare()
    if lines[1:2] == ["true"]:
        raise GitexpError(f"{start} is inside the .git folder; run gitexp from the working tree")
    if found.returncode == 0:
        if len(lines) == 5:
            git_dir, common_dir, top = (Path(line) for line in lines[2:])
            return git_dir, common_dir, top
        return _discover_without_git(start)  # a path with a newline in it, an older git
    if "not a git repository" in found.stderr:
        raise _not_a_repository(start)
    raise GitexpError(f"git cannot open the repository at {start}: {git.said(found)}")


def _discover_without_git(start: Path) -> tuple[Path, Path, Path]:
    import pygit2

    found = pygit2.discover_repository(str(start))
    if found is None:
        raise _not_a_repository(start)
    try:
        repo = pygit2.Repository(found)
    except pygit2.GitError as e:  # not owned by this user, an object format it cannot read
        raise GitexpError(f"the repository at {found} cannot be opened: {e}") from None
    if repo.is_bare or repo.workdir is None:
        raise _bare()
    git_dir = Path(repo.path)
    # A linked worktree's git dir names the shared one in `commondir`.
    pointer = git_dir / "commondir"
    common = git_dir / pointer.read_text().strip() if pointer.is_file() else git_dir
    return git_dir, common, Path(repo.workdir)


def open_workspace(start: Path | None = None, read_only: bool = False) -> Workspace:
    """The repository containing `start` (the current directory by default); `read_only`
    for a reader that must commit nothing, not even the runs a crash left behind."""
    start = Path.cwd() if start is None else start
    git_dir, common_dir, top = _discover(start)
    return Workspace(
        git_dir=git_dir,
        workdir=top,
        # Runs in progress must be seen from every worktree: state lives in the shared git dir.
        state_dir=common_dir.resolve() / "gitexp",
        settings=settings_mod.load(top),
        read_only=read_only,
    )
