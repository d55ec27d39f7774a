"""A run's output, kept bounded on disk while it streams so that a crash keeps it too."""

from __future__ import annotations

import ctypes
import ctypes.util
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import IO

from gitexp import secrets_scan
from gitexp.atomic import replace_file
from gitexp.secrets_scan import SecretRules

HEAD, TAIL = "output.head", "output.tail"
# What the command writes (its stdout and stderr), and how far gitexp has read each.
STREAMS = ("stdout.stream", "stderr.stream")
OFFSETS = "stream.offsets"
_RELEASE_EVERY = 1 << 20  # give read bytes back to the filesystem a MiB at a time
_PUNCH_HOLE = 0x02 | 0x01  # FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE
_libc: ctypes.CDLL | None = None
# Bytes a token may be made of: where output is cut, the piece of one left on either side
# goes too, so that no half of a secret too short to be recognised reaches the record.
_TOKEN_BYTES = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=_-.~%"


def release(source: IO[bytes], offset: int) -> None:
    """Free the disk space of the first `offset` bytes of a stream that has been read.

    The command appends to the file for its whole life, so the file keeps its size; only
    the blocks already read become a hole. Where the filesystem cannot, the file just grows.
    """
    global _libc
    start = offset - offset % _RELEASE_EVERY
    if start == 0 or not sys.platform.startswith("linux"):
        return
    try:
        if _libc is None:
            _libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
        _libc.fallocate(source.fileno(), _PUNCH_HOLE, ctypes.c_long(0), ctypes.c_long(start))
    except (OSError, AttributeError):
        pass


def save_offsets(folder: Path, offsets: Sequence[int]) -> None:
    """Remember how far each stream has been read, for a `recover` after gitexp dies."""
    replace_file(folder / OFFSETS, " ".join(map(str, offsets)).encode())


def _unread(folder: Path, limit: int) -> bytes:
    """What the command printed that gitexp never read (it was killed): at most `limit` bytes
    of each stream, the last ones."""
    try:
        offsets = [int(n) for n in (folder / OFFSETS).read_text().split()]
    except (OSError, ValueError):
        offsets = [0] * len(STREAMS)
    rest = b""
    for name, offset in zip(STREAMS, offsets, strict=False):
        path = folder / name
        try:
            size = path.stat().st_size
        except OSError:
            continue
        start = max(offset, size - limit)
        with open(path, "rb") as f:
            f.seek(start)
            piece = f.read(limit)
        rest += piece.lstrip(_TOKEN_BYTES) if start > offset else piece
    return rest


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


def assemble(folder: Path, limit: int, total: int | None, secrets: SecretRules) -> bytes:
    """output.log for the record: the head, a note of what was left out, the tail.

    `total` is the number of bytes the run printed, or None when the writer died before it
    could say; then a rotated tail still shows that something was left out. Secrets are
    redacted line by line, and a last line names the lines redacted and why; `secrets` are
    the repository's own rules.
    """
    head_path = folder / HEAD
    head = head_path.read_bytes() if head_path.exists() else b""
    log = _assembled(folder, head, limit, total)
    unread = _unread(folder, limit)
    if unread:  # gitexp died while the command printed on: its output is all still on disk
        log += b"\n[gitexp: printed after gitexp stopped following the output]\n" + unread
    redacted, found = secrets_scan.redact_log(log, secrets)
    return redacted + secrets_scan.log_note(found)


def _assembled(folder: Path, head: bytes, limit: int, total: int | None) -> bytes:
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
    kept = head.rstrip(_TOKEN_BYTES)
    rest = (tail[-keep:] if keep else b"").lstrip(_TOKEN_BYTES)
    if dropped is not None:
        dropped += len(head) - len(kept) + min(len(tail), keep) - len(rest)
    amount = "some bytes" if dropped is None else f"{dropped} bytes"
    note = f"\n[gitexp: {amount} of output left out here; output.limit is {limit}]\n"
    return kept + note.encode() + rest
