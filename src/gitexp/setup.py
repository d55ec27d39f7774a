"""`gitexp init`: make a repository ready to record runs."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from gitexp import data, store
from gitexp.settings import OUTPUTS_DIR, SETTINGS_FILE
from gitexp.workspace import Workspace

REMOTE_NAME = "gitexp"
GITIGNORE = ".gitignore"
_SETTINGS = """\
# gitexp settings: see the README for every key.
branch: {branch}
require_clean: false
"""
# In .gitignore, not .git/info/exclude: committed, it holds in every clone, so a checkpoint
# restored there is not taken for code (DESIGN.md §1).
_OUTPUTS_RULE = f"/{OUTPUTS_DIR}/"
_OUTPUTS_BLOCK = f"# gitexp: what runs write (run.dir) is never code\n{_OUTPUTS_RULE}\n"
# Lines that already ignore the outputs folder at the top, written the ways people write them.
_SAME_RULES = {
    f"{lead}{OUTPUTS_DIR}{tail}".encode() for lead in ("", "/") for tail in ("", "/", "/*", "/**")
}


@dataclass(frozen=True)
class Prepared:
    """What `gitexp init` did, for the user to review and commit."""

    created: tuple[str, ...]
    remote: str | None
    changed: tuple[str, ...] = ()  # files that were there and gained a gitexp rule


def _ignore_outputs(workdir: Path) -> bool:
    """Append the outputs rule to .gitignore unless a rule there ignores the folder already.

    Returns whether .gitignore was written.
    """
    path = workdir / GITIGNORE
    text = path.read_bytes() if path.exists() else b""
    if any(line.strip() in _SAME_RULES for line in text.splitlines()):
        return False
    lead = b"" if not text else b"\n" if text.endswith(b"\n") else b"\n\n"
    with open(path, "ab") as f:
        f.write(lead + _OUTPUTS_BLOCK.encode())
    return True


def prepare(ws: Workspace, remote: Path | None) -> Prepared:
    """Settings file, outputs rule, runs branch, DVC with a local cache, and a directory
    remote if given."""
    created: list[str] = []
    changed: list[str] = []
    settings = ws.workdir / SETTINGS_FILE
    if not settings.exists():
        settings.write_text(_SETTINGS.format(branch=ws.settings.branch))
        created.append(SETTINGS_FILE)
    existed = (ws.workdir / GITIGNORE).exists()
    if _ignore_outputs(ws.workdir):
        (changed if existed else created).append(GITIGNORE)
    store.ensure_branch(ws)
    made_by_dvc, url = data.init_dvc(ws, remote, REMOTE_NAME)
    return Prepared((*created, *made_by_dvc), url, tuple(changed))
