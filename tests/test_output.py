from __future__ import annotations

import re
from pathlib import Path

from gitexp.output import OutputLog, assemble
from gitexp.secrets_scan import NO_RULES


def _log(tmp_path: Path, chunks: list[bytes], limit: int) -> OutputLog:
    log = OutputLog(tmp_path, limit)
    for chunk in chunks:
        log.write(chunk)
    log.close()
    return log


def test_short_output_is_kept_whole(tmp_path: Path) -> None:
    log = _log(tmp_path, [b"one\n", b"two\n"], 1000)
    assert assemble(tmp_path, 1000, log.total, NO_RULES) == b"one\ntwo\n"


def test_long_output_keeps_head_and_tail_and_says_what_is_missing(tmp_path: Path) -> None:
    lines = [f"{i:04d}\n".encode() for i in range(1000)]
    printed = b"".join(lines)  # 5,000 bytes
    log = _log(tmp_path, lines, 1000)
    kept = assemble(tmp_path, 1000, log.total, NO_RULES)
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
    assert b"some bytes of output left out" in assemble(tmp_path, 1000, None, NO_RULES)


def test_output_without_newlines_reaches_the_log_as_it_streams(tmp_path: Path) -> None:
    from gitexp.output import STREAMS, OutputLog
    from gitexp.runner import _Follower

    for name in STREAMS:
        (tmp_path / name).touch()
    log = OutputLog(tmp_path, 1_000_000)
    follower = _Follower(tmp_path, log)
    follower.streams[0].sink = None  # keep the test's own stdout clean
    sizes = []
    with open(tmp_path / STREAMS[0], "ab", buffering=0) as command_output:
        for i in range(40):  # a progress bar: 400 KB redrawn with \r, never a newline
            command_output.write(b"\r" + f"{i:05d}".encode() * 2000)
            follower.drain()
            sizes.append(log.total)
    follower.close()
    log.close()
    assert assemble(tmp_path, 1_000_000, log.total, NO_RULES).endswith(b"00039" * 2000)
    assert 0 < sizes[10] < sizes[-1]  # written while streaming, not held until the end


def test_output_printed_after_gitexp_died_reaches_the_record(tmp_path: Path) -> None:
    from gitexp.output import STREAMS, OutputLog
    from gitexp.runner import _Follower

    for name in STREAMS:
        (tmp_path / name).touch()
    log = OutputLog(tmp_path, 1_000_000)
    follower = _Follower(tmp_path, log)
    follower.streams[0].sink = None
    with open(tmp_path / STREAMS[0], "ab", buffering=0) as command_output:
        command_output.write(b"seen by gitexp\n")
        follower.drain()
        # gitexp is killed here; the command prints on into its file.
        command_output.write(b"printed later\n")
    record = assemble(tmp_path, 1_000_000, None, NO_RULES)
    assert record == (
        b"seen by gitexp\n\n[gitexp: printed after gitexp stopped following the output]\n"
        b"printed later\n"
    )
