"""A run's output, kept bounded on disk while it streams so that a crash keeps it too."""

from __future__ import annotations

import threading
from pathlib import Path

HEAD, TAIL = "output.head", "output.tail"


class OutputLog:
    """Keeps the first quarter of `limit` bytes and roughly the last three quarters.

    The tail rotates between two segment files, so disk use stays under `limit` however much
    a run prints, and what was written survives the writer being killed.
    """

    def __init__(self, folder: Path, limit: int) -> None:
        self.folder = folder
        self.head_limit = limit // 4
        self.segment_limit = max(1, (limit - self.head_limit) // 2)
        self._lock = threading.Lock()
        self._head = open(folder / HEAD, "ab")  # noqa: SIM115 - closed in close()
        self._head_size = self._head.tell()
        self._segment = 0
        self._tail = open(folder / f"{TAIL}.0", "ab")  # noqa: SIM115
        self.total = 0

    def write(self, chunk: bytes) -> None:
        with self._lock:
            self.total += len(chunk)
            room = self.head_limit - self._head_size
            if room > 0:
                self._head.write(chunk[:room])
                self._head.flush()
                self._head_size += min(room, len(chunk))
                chunk = chunk[room:]
            if not chunk:
                return
            chunk = chunk[-self.segment_limit :]  # more would be rotated away at once
            if self._tail.tell() + len(chunk) > self.segment_limit:
                self._tail.close()
                self._segment ^= 1
                self._tail = open(self.folder / f"{TAIL}.{self._segment}", "wb")  # noqa: SIM115
            self._tail.write(chunk)
            self._tail.flush()

    def close(self) -> None:
        with self._lock:
            self._head.close()
            self._tail.close()


def assemble(folder: Path, limit: int, total: int | None) -> bytes:
    """output.log for the record: the head, a note of what was left out, the tail.

    `total` is the number of bytes the run printed, or None when the writer died before it
    could say; then a rotated tail still shows that something was left out.
    """
    head_path = folder / HEAD
    head = head_path.read_bytes() if head_path.exists() else b""
    segments = sorted(
        (p for p in folder.glob(f"{TAIL}.*") if p.stat().st_size),
        key=lambda p: p.stat().st_mtime_ns,
    )
    tail = b"".join(p.read_bytes() for p in segments)
    keep = max(0, limit - len(head))
    rotated = (folder / f"{TAIL}.1").exists()
    if total is None:
        dropped: int | None = None if rotated or len(tail) > keep else 0
    else:
        dropped = max(0, total - len(head) - min(len(tail), keep))
    if dropped == 0:
        return head + tail
    amount = "some bytes" if dropped is None else f"{dropped} bytes"
    note = f"\n[gitexp: {amount} of output left out here; output.limit is {limit}]\n"
    return head + note.encode() + (tail[-keep:] if keep else b"")
