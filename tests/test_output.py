from __future__ import annotations

import re
from pathlib import Path

from gitexp.output import OutputLog, assemble


def _log(tmp_path: Path, chunks: list[bytes], limit: int) -> OutputLog:
    log = OutputLog(tmp_path, limit)
    for chunk in chunks:
        log.write(chunk)
    log.close()
    return log


def test_short_output_is_kept_whole(tmp_path: Path) -> None:
    log = _log(tmp_path, [b"one\n", b"two\n"], 1000)
    assert assemble(tmp_path, 1000, log.total) == b"one\ntwo\n"


def test_long_output_keeps_head_and_tail_and_says_what_is_missing(tmp_path: Path) -> None:
    lines = [f"{i:04d}\n".encode() for i in range(1000)]
    printed = b"".join(lines)  # 5,000 bytes
    log = _log(tmp_path, lines, 1000)
    kept = assemble(tmp_path, 1000, log.total)
    note = re.search(
        rb"\n\[gitexp: (\d+) bytes of output left out here; output.limit is 1000\]\n", kept
    )
    assert note is not None
    head, tail = kept[: note.start()], kept[note.end() :]
    assert head == printed[: len(head)] and head.startswith(b"0000\n")
    assert tail == printed[-len(tail) :] and tail.endswith(b"0999\n")
    assert len(head) + len(tail) <= 1000
    assert len(head) + len(tail) + int(note[1]) == len(printed)


def test_disk_use_stays_bounded_however_much_is_printed(tmp_path: Path) -> None:
    _log(tmp_path, [b"x" * 500] * 2_000, 1000)  # a megabyte printed
    assert sum(p.stat().st_size for p in tmp_path.iterdir()) <= 1000


def test_output_of_a_killed_writer_still_notes_the_gap(tmp_path: Path) -> None:
    _log(tmp_path, [b"y" * 100] * 50, 1000)
    assert b"some bytes of output left out" in assemble(tmp_path, 1000, None)


def test_output_without_newlines_reaches_the_log_as_it_streams(tmp_path: Path) -> None:
    import os
    import threading

    from gitexp.runner import _stream

    class Recorder:
        def __init__(self) -> None:
            self.writes: list[bytes] = []

        def write(self, chunk: bytes) -> None:
            self.writes.append(chunk)

    read_end, write_end = os.pipe()
    recorder = Recorder()
    with open(read_end, "rb", buffering=0) as source:
        thread = threading.Thread(target=_stream, args=(source, None, recorder))
        thread.start()
        with open(write_end, "wb", buffering=0) as sink:
            for i in range(40):  # a progress bar: 400 KB redrawn with \r, never a newline
                sink.write(b"\r" + f"{i:05d}".encode() * 2000)
        thread.join()
    assert b"".join(recorder.writes).endswith(b"00039" * 2000)
    assert len(recorder.writes) > 1  # written while streaming, not held until the end
    assert max(len(w) for w in recorder.writes) < 2 * 65536 + 10_001
