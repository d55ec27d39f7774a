"""Timing helpers shared by the benchmark scripts: every figure is a list of samples (median,
min and max are reported), things compared are timed in turn, and every process runs in a
sealed environment with the peers' telemetry off."""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

GITEXP = str(Path(sys.executable).parent / "gitexp")  # the one installed beside this Python

# No network, no telemetry, no prompts, for gitexp and its peers alike.
QUIET = {
    "WANDB_MODE": "offline",
    "WANDB_SILENT": "true",
    "WANDB_ERROR_REPORTING": "false",
    "DO_NOT_TRACK": "1",
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "MLFLOW_ALLOW_FILE_STORE": "true",  # MLflow 3 keeps its file store only on request
    "DVC_NO_ANALYTICS": "1",
    "GIT_TERMINAL_PROMPT": "0",
    "NO_COLOR": "1",
}


def seal(home: Path) -> None:
    """Run everything from here on with a scratch HOME (so no one's own git, W&B or DVC
    settings count, and nothing is written into theirs) and telemetry off."""
    home.mkdir(parents=True, exist_ok=True)
    (home / ".gitconfig").write_text(
        "[user]\n\tname = bench\n\temail = bench@example.com\n[init]\n\tdefaultBranch = main\n"
    )
    os.environ.update(QUIET, HOME=str(home), GIT_CONFIG_NOSYSTEM="1")
    # Installed packages come with their bytecode; let the source checkout's be cached too,
    # as it is on any machine that does not forbid it.
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)


class Failed(Exception):
    """A measured command failed; its message is the line of its output that says why."""


def why(stderr: str | bytes | None) -> str:
    """The line of a failed process's output that says what went wrong (a traceback's last)."""
    text = stderr.decode(errors="replace") if isinstance(stderr, bytes) else stderr or ""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1][:160] if lines else "no output"


def run(command: Sequence[str], cwd: Path | None = None, timeout: float | None = None) -> str:
    """Run a command to completion; its stdout, or Failed with its reason."""
    try:
        done = subprocess.run(
            command, cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired:
        raise Failed(f"stopped after {timeout:.0f} s") from None
    if done.returncode != 0:
        raise Failed(f"exit {done.returncode}: {why(done.stderr)}")
    return done.stdout


def python(code: str, cwd: Path, timeout: float | None = None) -> str:
    """A fresh Python process running `code`; its stdout."""
    return run([sys.executable, "-c", code], cwd, timeout)


def process(
    command: Sequence[str], cwd: Path | None = None, timeout: float | None = None
) -> Callable[[], None]:
    """An action for `interleaved`: the whole process, timed from outside."""

    def action() -> None:
        run(command, cwd, timeout)

    return action


@dataclass
class Figure:
    """Samples of one measurement, in `unit`."""

    samples: list[float]
    unit: str

    @property
    def median(self) -> float:
        return statistics.median(self.samples)

    def minus(self, amount: float) -> Figure:
        return Figure([s - amount for s in self.samples], self.unit)

    def __str__(self) -> str:
        gap = "" if self.unit in ("x", "%") else " "  # 3.4x, -0.2%, but 12 ms
        middle = f"{number(self.median)}{gap}{self.unit}".rstrip()
        if len(self.samples) == 1:
            return middle
        return f"{middle} ({number(min(self.samples))}\u2013{number(max(self.samples))})"


def number(value: float) -> str:
    """Three significant figures or so, with thousands separated; counts as they are."""
    if abs(value) >= 100 or value == int(value):
        return f"{value:,.0f}"
    return f"{value:.1f}" if abs(value) >= 10 else f"{value:.2f}"


Outcome = Figure | str  # a figure, or why there is none


Action = Callable[[], float | None] | str  # or why there is nothing to time


def interleaved(
    actions: Mapping[str, Action], repeats: int, unit: str = "ms", warm: bool = True
) -> dict[str, Outcome]:
    """Time each action `repeats` times, in turn (A B C A B C …), so that the machine's drift
    (page cache, another process, a growing repository) weighs on all alike. An action
    returns its own figure (µs per call measured inside a process) or None, to be timed
    here in milliseconds; one given as words (why it cannot be timed) is passed through.
    One that fails is dropped, and says why. `warm`: one untimed round first."""
    samples: dict[str, list[float]] = {name: [] for name in actions}
    failed = {name: action for name, action in actions.items() if isinstance(action, str)}
    for round_ in range(repeats + warm):
        for name, action in actions.items():
            if name in failed or isinstance(action, str):
                continue
            start = time.perf_counter()
            try:
                value = action()
            except Exception as e:  # a peer's failure must not stop the others
                failed[name] = str(e).splitlines()[0] if str(e) else type(e).__name__
                continue
            spent = (time.perf_counter() - start) * 1000
            if round_ >= warm:  # the first round warms the page cache and lazy state
                samples[name].append(spent if value is None else value)
    return {name: failed.get(name) or Figure(samples[name], unit) for name in actions}
