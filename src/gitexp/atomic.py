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


def write_output(path: Path, data: bytes) -> None:
    """Write a file the user named (a report, say) at once, as `replace_file` does; refuse
    a path that is not a new or regular file. Replacing would put a file where a link,
    FIFO or device was, and writing through one would not be at once."""
    import stat

    from gitexp.errors import GitexpError

    if not path.name or path.name in (".", ".."):
        raise GitexpError(f"cannot write {str(path)!r}: name a file")
    try:
        found = os.lstat(path)
    except FileNotFoundError:
        found = None
    except OSError as e:
        raise GitexpError(f"cannot write {path}: {e.strerror or e}") from None
    if found is not None and not stat.S_ISREG(found.st_mode):
        raise GitexpError(f"cannot write {path}: it is not a regular file (a link, folder, "
                          "FIFO or device); name a new file")  # fmt: skip
    try:
        replace_file(path, data)
    except OSError as e:
        raise GitexpError(f"cannot write {path}: {e.strerror or e}") from None
