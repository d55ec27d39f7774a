"""Checkpoints and outputs a run produced, put into the DVC cache and recorded.

Each one is hashed into the cache the moment it is logged, so a checkpoint overwritten at the
next epoch, or deleted, is still restorable byte for byte. The record gets artifacts.yaml and,
for each artifact, a `.dvc` pointer file that plain `dvc checkout` / `dvc pull` understand.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from gitexp import data, yamlio
from gitexp.errors import GitexpError
from gitexp.record import ARTIFACTS
from gitexp.workspace import Workspace

STREAM = "artifacts.jsonl"  # in the live run's folder, one line per logged artifact


@dataclass(frozen=True)
class Artifact:
    """One file or folder a run produced (an entry of artifacts.yaml)."""

    path: str  # repo-relative
    md5: str
    size: int
    nfiles: int | None
    role: str | None = None  # best, last, output, …
    step: int | None = None
    metrics: Mapping[str, float] = field(default_factory=dict)


def log(
    ws: Workspace,
    folder: Path,
    path: Path | str,
    role: str | None = None,
    step: int | None = None,
    metrics: Mapping[str, Any] | None = None,
) -> Artifact:
    """Store `path` in the DVC cache now, and note it for the run's record."""
    from gitexp.metrics import scalar

    location = Path(path).resolve()
    if not location.exists():
        raise GitexpError(f"artifact {path} does not exist; save it before logging it")
    try:
        relative = location.relative_to(ws.workdir.resolve()).as_posix()
    except ValueError:
        raise GitexpError(f"artifact {path} is outside the repository") from None
    md5, size, nfiles = data.store(ws, relative)
    values = {name: scalar(name, value) for name, value in (metrics or {}).items()}
    artifact = Artifact(relative, md5, size, nfiles, role, step, values)
    with open(folder / STREAM, "a", encoding="utf-8") as f:
        f.write(json.dumps(asdict(artifact)) + "\n")
    return artifact


def _pointer_names(logged: list[Artifact]) -> list[str]:
    """`model.pt.dvc`, or `model.pt.3.dvc` when one path was logged more than once."""
    names = [PurePosixPath(a.path).name for a in logged]
    result = []
    for i, (artifact, name) in enumerate(zip(logged, names, strict=True)):
        if names.count(name) > 1:
            name = f"{name}.{artifact.step if artifact.step is not None else i}"
        result.append(f"{name}.dvc")
    return result


def record_files(folder: Path) -> dict[str, bytes]:
    """artifacts.yaml and the pointer files, from what the run logged; empty if nothing."""
    stream = folder / STREAM
    if not stream.exists():
        return {}
    logged = []
    for line in stream.read_text(encoding="utf-8").splitlines():
        try:
            logged.append(Artifact(**json.loads(line)))
        except (ValueError, TypeError):
            continue  # a line cut short by a crash
    files: dict[str, bytes] = {}
    entries = []
    for artifact, pointer in zip(logged, _pointer_names(logged), strict=True):
        files[pointer] = data.pointer_file(artifact.path, artifact.md5, artifact.size,
                                           artifact.nfiles)  # fmt: skip
        entries.append({**asdict(artifact), "metrics": dict(artifact.metrics), "pointer": pointer})
    files[ARTIFACTS] = yamlio.dump({"artifacts": entries})
    return files
