"""`gitexp checkout`: a run's datasets and artifacts, back in the working tree."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from gitexp import data, history, reader
from gitexp.errors import GitexpError, Unreadable
from gitexp.record import ARTIFACTS, DATA
from gitexp.workspace import Workspace


def wanted_paths(record: history.Record, with_data: bool, with_artifacts: bool) -> dict[str, str]:
    """repo path → md5 to restore; for an artifact logged many times, its last version.

    Every path is checked to stay inside the repository (reader.contained).
    """
    found: dict[str, str] = {}
    names = ([DATA] if with_data else []) + ([ARTIFACTS] if with_artifacts else [])
    for name in names:
        for pin in reader.pins(record.summary.id, name, record.files.get(name)):
            found[pin.path] = pin.md5
    return found


def _inside(ws: Workspace, paths: Sequence[str], run_id: str) -> None:
    """Refuse, before writing anything, a path whose folders or itself lead outside the
    working tree through a symbolic link."""
    root = ws.workdir.resolve()
    for path in paths:
        if not (root / path).resolve().is_relative_to(root) or (root / path).resolve() == root:
            raise Unreadable(
                f"run {run_id} would write {reader.terminal_safe(path)!r}, which a symbolic "
                "link leads outside the working tree; nothing was restored"
            )


def checkout(
    ws: Workspace,
    ref: str,
    with_data: bool,
    with_artifacts: bool,
    paths: Sequence[str],
    cwd: Path,
) -> list[data.Restored]:
    """Restore what run `ref` read and made (or only `paths` of it)."""
    record = history.load(ws, ref)
    found = wanted_paths(record, with_data, with_artifacts)
    if paths:
        chosen = {}
        root = ws.workdir.resolve()
        for given in paths:
            path = (cwd / given).resolve()
            relative = path.relative_to(root).as_posix() if path.is_relative_to(root) else given
            if relative not in found:
                raise GitexpError(
                    f"run {record.summary.id} neither read nor made {given}; "
                    f"see `gitexp show {record.summary.id}`"
                )
            chosen[relative] = found[relative]
        found = chosen
    if not found:
        what = "datasets or artifacts" if with_data and with_artifacts else (
            "datasets" if with_data else "artifacts")  # fmt: skip
        raise GitexpError(f"run {record.summary.id} recorded no {what} to restore")
    _inside(ws, list(found), record.summary.id)
    return data.restore(ws, sorted(found.items()))
