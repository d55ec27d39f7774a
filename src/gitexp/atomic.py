"""Files that a reader, or a crash, never sees half-written."""

from __future__ import annotations

import os
from pathlib import Path


def replace_file(path: Path, data: bytes) -> None:
    """Write `data` to `path` at once: a reader sees the old bytes or the new, never part.

    The partial file is named for this process, so writers in several processes (runs
    starting together, a wrapper and its training script) never share one.
    """
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    try:
        partial.write_bytes(data)
        os.replace(partial, path)
    except OSError:
        partial.unlink(missing_ok=True)  # a full disk: leave no half-written file behind
        raise
