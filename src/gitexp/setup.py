"""`gitexp init`: make a repository ready to record runs."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from gitexp import store
from gitexp.errors import GitexpError
from gitexp.settings import SETTINGS_FILE
from gitexp.workspace import Workspace

REMOTE_NAME = "gitexp"
_SETTINGS = """\
# gitexp settings: see the README for every key.
branch: {branch}
require_clean: false
"""


@dataclass(frozen=True)
class Prepared:
    """What `gitexp init` did, for the user to review and commit."""

    created: tuple[str, ...]
    remote: str | None


def prepare(ws: Workspace, remote: Path | None) -> Prepared:
    """Settings file, runs branch, DVC with a local cache, and a directory remote if given."""
    from dvc.exceptions import DvcException
    from dvc.repo import Repo  # slow to import: only this command needs it here

    created = []
    settings = ws.workdir / SETTINGS_FILE
    if not settings.exists():
        settings.write_text(_SETTINGS.format(branch=ws.settings.branch))
        created.append(SETTINGS_FILE)
    store.ensure_branch(ws)
    try:
        if not (ws.workdir / ".dvc").is_dir():
            Repo.init(str(ws.workdir)).close()
            created += [".dvc/", ".dvcignore"]
        url = None
        if remote is not None:
            url = str(remote.resolve())
            remote.mkdir(parents=True, exist_ok=True)
            with Repo(str(ws.workdir)) as dvc, dvc.config.edit() as config:
                config["remote"][REMOTE_NAME] = {"url": url}
                config["core"]["remote"] = REMOTE_NAME
    except DvcException as e:
        raise GitexpError(f"DVC could not be set up: {e}") from None
    return Prepared(tuple(created), url)
