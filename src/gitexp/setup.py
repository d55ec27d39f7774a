"""`gitexp init`: make a repository ready to record runs."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from gitexp import data, store
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
    created = []
    settings = ws.workdir / SETTINGS_FILE
    if not settings.exists():
        settings.write_text(_SETTINGS.format(branch=ws.settings.branch))
        created.append(SETTINGS_FILE)
    store.ensure_branch(ws)
    made_by_dvc, url = data.init_dvc(ws, remote, REMOTE_NAME)
    return Prepared((*created, *made_by_dvc), url)
