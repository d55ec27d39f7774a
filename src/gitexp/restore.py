"""`gitexp checkout`: a run's datasets and artifacts, back in the working tree."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from gitexp import data, history, yamlio
from gitexp.errors import GitexpError
from gitexp.record import ARTIFACTS, DATA
from gitexp.workspace import Workspace


def wanted_paths(record: history.Record, with_data: bool, with_artifacts: bool) -> dict[str, str]:
    """repo path → md5 to restore; for an artifact logged many times, its last version."""
    found: dict[str, str] = {}
    sources = [(DATA, "datasets")] if with_data else []
    sources += [(ARTIFACTS, "artifacts")] if with_artifacts else []
    for name, key in sources:
        if name in record.files:
            for entry in (yamlio.load(record.files[name], name) or {}).get(key, []):
                found[str(entry["path"])] = str(entry["md5"])
    return found


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
        raise GitexpError(f"run {record.summary.id} recorded no datasets or artifacts to restore")
    return data.restore(ws, sorted(found.items()))
