"""`gitexp run`: launch a command as a tracked run and record whatever becomes of it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from types import FrameType
from typing import IO, Any

from gitexp import (
    artifacts,
    boot,
    environment,
    launch,
    observed,
    output,
    pending,
    seeds,
    system,
    yamlio,
)
from gitexp.errors import GitexpError
from gitexp.output import OutputLog
from gitexp.record import ENV, ENV_PROBE, RUN, SEEDS, Status
from gitexp.workspace import Workspace

# Signals that stop a run on purpose: the run is `interrupted`, not `crashed`.
_STOPPING = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
_CHUNK = 65536
_POLL_S = 0.05  # how often the command's output is passed on


@dataclass(frozen=True)
class RunResult:
    run_id: str
    status: Status
    exit_status: int  # what `gitexp run` exits with: the command's own
    missing_outputs: list[str] = field(default_factory=list)  # --output paths never written
    kept: str | None = None  # why the record could not be committed yet (it stays pending)


class _Follower:
    """Follows the command's output files: to our own output, unchanged, and into the log.

    The command writes to files, not pipes, so that it never dies of a broken pipe if gitexp
    is killed: it trains on and its output stays on disk for `recover`. The log gets whole
    lines, so stdout and stderr interleave line by line in output.log rather than mid-line.
    What has been read is given back to the filesystem as it goes, so the files stay small.
    """

    def __init__(self, folder: Path, log: OutputLog) -> None:
        self.folder = folder
        self.log: OutputLog | None = log
        sinks = (getattr(sys.stdout, "buffer", None), getattr(sys.stderr, "buffer", None))
        self.streams = [
            _Stream(open(folder / name, "rb"), sink)  # noqa: SIM115 - closed in close()
            for name, sink in zip(output.STREAMS, sinks, strict=True)
        ]

    def drain(self) -> None:
        """Pass on everything written since the last call."""
        moved = False
        for stream in self.streams:
            before = stream.offset
            while chunk := os.read(stream.source.fileno(), _CHUNK):
                stream.offset += len(chunk)
                self._log_lines(stream, chunk)
                stream.forward(chunk)
            if stream.offset != before:  # only new bytes can free more of the file
                moved = True
                output.release(stream.source, stream.offset)
        if moved:
            output.save_offsets(self.folder, [s.offset for s in self.streams])

    def _log_lines(self, stream: _Stream, chunk: bytes) -> None:
        complete, newline, stream.partial = (stream.partial + chunk).rpartition(b"\n")
        if newline:
            self._log(complete + newline)
        if len(stream.partial) > _CHUNK:  # a progress bar redrawn with \r never ends its line
            self._log(stream.partial)
            stream.partial = b""

    def _log(self, data: bytes) -> None:
        if self.log is None:
            return
        try:
            self.log.write(data)
        except OSError as e:  # a full disk: the command's own output still reaches us
            print(f"gitexp: output.log stopped at a write error ({e})", file=sys.stderr)
            self.log = None

    def close(self) -> None:
        for stream in self.streams:
            if stream.partial:
                self._log(stream.partial)
            stream.source.close()


@dataclass
class _Stream:
    source: IO[bytes]
    sink: IO[bytes] | None
    offset: int = 0
    partial: bytes = b""

    def forward(self, chunk: bytes) -> None:
        if self.sink is None:
            return
        try:
            self.sink.write(chunk)
            self.sink.flush()
        except (OSError, ValueError):
            self.sink = None  # our terminal went away: keep recording regardless


def _terminal_delivers(signum: int) -> bool:
    """Whether the terminal already sent `signum` to the command, which shares our group.

    Ctrl-C reaches every process in the foreground group; forwarding it again would hit the
    command twice (a second KeyboardInterrupt inside its cleanup).
    """
    if signum not in (signal.SIGINT, signal.SIGHUP):
        return False
    for stream in (sys.stdin, sys.stdout, sys.stderr):
        try:
            return os.tcgetpgrp(stream.fileno()) == os.getpgrp()
        except (OSError, ValueError, AttributeError):
            continue
    return False


class _Forwarder:
    """Passes stopping signals on to the command and remembers that one came."""

    def __init__(self, child: subprocess.Popen[bytes]) -> None:
        self.child = child
        self.received: int | None = None
        self.previous: dict[int, Callable[[int, FrameType | None], Any] | int | None] = {}

    def __enter__(self) -> _Forwarder:
        if threading.current_thread() is threading.main_thread():
            for signum in _STOPPING:
                self.previous[signum] = signal.signal(signum, self._handle)
        return self

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.received = signum
        if self.child.poll() is None and not _terminal_delivers(signum):
            self.child.send_signal(signum)

    def __exit__(self, *exc: object) -> None:
        for signum, handler in self.previous.items():
            signal.signal(signum, handler)


def _outcome(returncode: int, received: int | None) -> tuple[Status, int, str | None]:
    """Status, exit status and signal name of a finished command."""
    if returncode < 0:
        signum = -returncode
        name = signal.Signals(signum).name
        stopped = signum in _STOPPING or received is not None
        return ("interrupted" if stopped else "crashed"), 128 + signum, name
    if received is not None:
        return "interrupted", returncode, signal.Signals(received).name
    return ("succeeded" if returncode == 0 else "failed"), returncode, None


def run(ws: Workspace, request: launch.RunRequest, cwd: Path) -> RunResult:
    """Run `request.command` in `cwd` and commit its record; return how it ended."""
    launched = launch.begin(ws, request, cwd)
    live, info, started = launched.live, launched.info, launched.started
    _warn(launched.warnings)
    try:
        child_env = dict(os.environ)
        child_env.update(seeds.child_variables(request.seed))
        child_env.update(
            GITEXP_RUN_ID=info.id, GITEXP_RUN_DIR=str(live.folder), GITEXP_WORKDIR=str(ws.workdir)
        )
        # The start-up hook: each Python process of the command reports what it used.
        child_env["PYTHONPATH"] = boot.child_pythonpath(child_env)
        child_env.pop(observed.DEPTH, None)  # a run started inside another run starts afresh
        if request.allow_unpinned_data:  # gitexp.init(data=…) in the command may pin more
            child_env["GITEXP_ALLOW_UNPINNED_DATA"] = "1"
        child_env.setdefault("PYTHONUNBUFFERED", "1")  # a pipe must not delay what users see
        live.write(SEEDS, seeds.record(request.seed, child_env))
    except BaseException:
        live.release(ws)
        raise

    def capture_env() -> None:
        """What is read around the training process while it runs (GPUs, variables)."""
        try:
            around = environment.outside(child_env, ws.workdir, ws.settings.env_allow)
            found = {"captured_by": _UNDESCRIBED, **around}
        except Exception as e:  # a record without its environment beats no record
            found = {"captured_by": f"nobody: reading the environment failed ({e})"}
        try:
            live.write(ENV_PROBE, yamlio.dump(found))
        except OSError:
            pass  # a full disk: the commit fails too, and says so in one line

    env_thread = threading.Thread(target=capture_env, name="gitexp-env", daemon=True)
    env_thread.start()
    log = OutputLog(live.folder, ws.settings.output_limit)
    live.add_owner("launching", os.getpid())  # from here on the command may have run
    try:
        child = _start(request.command, cwd, child_env, live)
    except OSError as e:
        env_thread.join()
        log.close()
        live.release(ws)
        raise CommandNotStarted(request.command[0], e.strerror or str(e)) from None
    live.add_owner("command", child.pid)
    sampler = None
    if request.system_metrics:
        sampler = system.Sampler(live.folder, child.pid, started.timestamp(), _system_interval())
        sampler.start()

    with _Forwarder(child) as forwarder:
        follower = _Follower(live.folder, log)
        _follow(child, follower, live)
        if sampler is not None:
            sampler.stop()
        log.close()
        status, exit_status, signame = _outcome(child.returncode, forwarder.received)
        finished = datetime.now(timezone.utc)
        ended = info.finish(status, finished, started, exit_code=exit_status, signal=signame)
        try:
            live.write(pending.TOTAL, str(log.total).encode())
            # Written before committing: if the commit fails, `recover` keeps the true outcome.
            live.write(RUN, ended.to_yaml())
            missing = _collect_outputs(ws, live.folder, cwd, request.outputs)
            env_thread.join()
            report = observed.training(live.folder)  # read once for both
            _describe_if_unobserved(ws, request.command, child_env, live, report)
            _warn(observed.warnings(live.folder, report))
            live.commit(ws, ended, log.total)
        except pending.NotRecorded as e:
            return RunResult(info.id, status, exit_status, kept=str(e))
        except (GitexpError, OSError) as e:
            live.close()
            kept = f"{e}; run {info.id} is kept, and `gitexp recover` will record it"
            return RunResult(info.id, status, exit_status, kept=kept)
    return RunResult(info.id, status, exit_status, missing)


def _system_interval() -> float:
    """Seconds between samples of system metrics; GITEXP_SYSTEM_INTERVAL overrides them."""
    try:
        return max(0.05, float(os.environ.get("GITEXP_SYSTEM_INTERVAL", system.INTERVAL_S)))
    except ValueError:
        return system.INTERVAL_S


_UNDESCRIBED = "outside the training process: no Python process of the run described itself"


def _warn(warnings: Sequence[str]) -> None:
    for warning in warnings:
        print(f"gitexp: warning: {warning}", file=sys.stderr)


def _describe_if_unobserved(
    ws: Workspace,
    command: Sequence[str],
    env: dict[str, str],
    live: pending.PendingRun,
    report: observed.Report | None,
) -> None:
    """Ask the command's interpreter about itself when no process of the run could say (it
    is not Python, or it was killed before its end): the one case that costs a second
    interpreter, after the run rather than beside it."""
    if (live.folder / ENV).exists():
        return  # gitexp.init described it, the hook being off
    if report is not None and report.described is not None:
        return
    try:
        found = environment.capture(command, env, ws.workdir, ws.settings.env_allow)
        live.write(ENV_PROBE, yamlio.dump(found))
    except Exception:
        pass  # what was read around the run stays: a record without its interpreter


def _start(
    command: Sequence[str], cwd: Path, env: dict[str, str], live: pending.PendingRun
) -> subprocess.Popen[bytes]:
    """Start the command with its output going to files in the run's folder, holding the
    run's lock too: should gitexp die before naming it, the run still counts as alive."""
    out_path, err_path = (live.folder / name for name in output.STREAMS)
    with open(out_path, "ab") as out, open(err_path, "ab") as err:
        return subprocess.Popen(
            list(command), cwd=cwd, env=env, stdin=None, stdout=out, stderr=err,
            pass_fds=(live.lock_fd(),),
        )  # fmt: skip


def _follow(child: subprocess.Popen[bytes], follower: _Follower, live: pending.PendingRun) -> None:
    """Pass the command's output on until it exits, saying all the while that the run lives."""
    ended = threading.Event()

    def wait() -> None:
        child.wait()
        ended.set()  # wakes the loop at once: no polling delay at the command's end

    threading.Thread(target=wait, name="gitexp-wait", daemon=True).start()
    beat = time.monotonic()
    while not ended.wait(_POLL_S):
        follower.drain()
        if time.monotonic() - beat >= pending.HEARTBEAT_S:
            beat = time.monotonic()
            try:
                live.beat()
            except OSError:
                pass  # a full disk: the run's end is still seen
    follower.drain()
    follower.close()


def _collect_outputs(ws: Workspace, folder: Path, cwd: Path, outputs: Sequence[str]) -> list[str]:
    """Store each `--output` path the command left behind; return those it did not make."""
    missing = []
    for path in outputs:
        if (cwd / path).exists():
            artifacts.log(ws, folder, cwd / path, role="output")
        else:
            missing.append(path)
    return missing


class CommandNotStarted(GitexpError):
    """The command could not be executed at all; no run took place."""

    exit_code = 127  # what a shell answers for a command it cannot run

    def __init__(self, program: str, reason: str) -> None:
        super().__init__(f"cannot start {program!r}: {reason}; check the command after `--`")
