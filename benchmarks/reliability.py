"""How reliably runs reach the runs branch under stress (DESIGN.md §2, §9), over many trials.

    make bench      # or: .venv/bin/python benchmarks/reliability.py [--trials N] [--seed S]

Each trial uses a new scratch repository under a temporary directory, with a sealed git
configuration (a temporary HOME, GIT_CONFIG_NOSYSTEM=1, gc.autoDetach=false):
- maintenance: 12 `gitexp run` finishing together while `git pack-refs --all`,
  `git gc --auto` (made to act every time) and `git gc` loop beside them;
- kill gitexp run: 6 `gitexp run` started together, each SIGKILLed at a random moment, then
  one `gitexp recover` SIGKILLed too, then `gitexp recover` until nothing is pending;
- kill training: 6 training scripts recording through gitexp.init, SIGKILLed at random
  moments, then `gitexp recover` until nothing is pending.
A run is expected when its command started (it marks so itself). Prints a Markdown table;
exits 1 if a run was lost or git fsck failed, since nothing may ever be lost.
"""

from __future__ import annotations

import argparse
import itertools
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

GITEXP = [sys.executable, "-m", "gitexp"]
LATEST_S = 2.5  # kills are drawn in 0…LATEST_S s after the start: some runs end first
TOGETHER = """\
import os, sys, time
folder, runs = sys.argv[1], int(sys.argv[2])
open(os.path.join(folder, os.environ["GITEXP_RUN_ID"]), "w").close()
deadline = time.monotonic() + 120
while len(os.listdir(folder)) < runs:
    if time.monotonic() > deadline:
        sys.exit("not every run started")
    time.sleep(0.01)
"""
MARK = "import os, sys; open(os.path.join(sys.argv[1], os.environ['GITEXP_RUN_ID']), 'w').close()"
TRAIN = """\
import os, sys, time, gitexp
with gitexp.init(config={"steps": 200}) as run:
    open(os.path.join(sys.argv[1], run.id), "w").close()
    for step in range(200):
        run.log({"loss": 1.0 / (step + 1)}, step=step)
        time.sleep(0.002)
"""
MAINTENANCE = (
    ("pack-refs", "--all"),
    ("-c", "gc.auto=1", "-c", "gc.autoPackLimit=1", "gc", "--auto", "--quiet"),
    ("gc", "--quiet"),
)


@dataclass
class Tally:
    """What the trials of one scenario found."""

    trials: int = 0
    expected: int = 0
    found: int = 0
    lost: int = 0
    phantoms: int = 0  # recorded without their command having started
    nonzero: int = 0  # exits other than the command's own 0, of processes not killed
    kills: int = 0
    unsound: int = 0  # fsck failures, or a branch move that did not go forward
    left: int = 0  # pending folders that `gitexp recover` never cleared
    seconds: list[float] = field(default_factory=list)


class Scratch:
    """A sealed git configuration and a new repository per trial, all under one folder."""

    def __init__(self, top: Path) -> None:
        self.top = top
        home = top / "home"
        home.mkdir()
        (home / ".gitconfig").write_text(
            "[user]\n\tname = Bench\n\temail = bench@example.com\n"
            "[init]\n\tdefaultBranch = main\n[gc]\n\tautoDetach = false\n"
        )
        drop = ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "PYTHONHASHSEED", "GITEXP_SEED")
        self.env = {k: v for k, v in os.environ.items() if k not in drop}
        self.env.update(
            HOME=str(home), GIT_CONFIG_NOSYSTEM="1", NO_COLOR="1", PYTHONUNBUFFERED="1",
            DVC_NO_ANALYTICS="1",
        )  # fmt: skip
        self.count = 0

    def repository(self) -> tuple[Path, Path]:
        """A new project with one commit, and an empty folder for its runs' marks."""
        self.count += 1
        trial = self.top / f"trial{self.count}"
        root, marks = trial / "project", trial / "ran"
        root.mkdir(parents=True)
        marks.mkdir()
        (root / "train.py").write_text("print('training')\n")
        for args in (["init", "-q"], ["add", "-A"], ["commit", "-q", "-m", "initial"]):
            self.git(root, *args)
        return root, marks

    def git(self, root: Path, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["git", *args], cwd=root, env=self.env, capture_output=True, text=True, check=False
        )

    def start(self, args: list[str], root: Path) -> subprocess.Popen[str]:
        return subprocess.Popen(
            args, cwd=root, env=self.env, text=True,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip


def _recorded(scratch: Scratch, root: Path) -> set[str]:
    listed = scratch.git(root, "ls-tree", "--name-only", "gitexp/runs:experiments")
    return set(listed.stdout.split()) if listed.returncode == 0 else set()


def _sound(scratch: Scratch, root: Path) -> bool:
    """fsck is clean, and each move of the branch in its reflog went forward."""
    if scratch.git(root, "fsck", "--strict", "--no-dangling").returncode != 0:
        return False
    moves = scratch.git(root, "reflog", "show", "--format=%H", "refs/heads/gitexp/runs")
    tips = moves.stdout.split()
    return all(
        scratch.git(root, "merge-base", "--is-ancestor", older, newer).returncode == 0
        for newer, older in itertools.pairwise(tips)
    )


def _kill_at(processes: list[subprocess.Popen[str]], delays: list[float]) -> int:
    """SIGKILL each process at its delay after now, if it still runs; how many were killed."""
    start = time.monotonic()
    for process, delay in sorted(zip(processes, delays, strict=True), key=lambda p: p[1]):
        time.sleep(max(0.0, start + delay - time.monotonic()))
        if process.poll() is None:
            process.kill()
    for process in processes:
        process.wait(timeout=300)
    return sum(p.returncode == -signal.SIGKILL for p in processes)


def _recover_all(scratch: Scratch, root: Path, tally: Tally) -> None:
    pending = root / ".git" / "gitexp" / "pending"
    deadline = time.monotonic() + 60
    while True:
        done = subprocess.run(
            [*GITEXP, "recover"], cwd=root, env=scratch.env, capture_output=True, check=False
        )
        tally.nonzero += done.returncode != 0
        left = (
            [p for p in pending.iterdir() if not p.name.startswith(".")] if pending.is_dir() else []
        )
        if not left or time.monotonic() > deadline:
            tally.left += len(left)
            return
        time.sleep(0.1)


def _count(scratch: Scratch, root: Path, marks: Path, tally: Tally) -> None:
    expected, found = {p.name for p in marks.iterdir()}, _recorded(scratch, root)
    tally.expected += len(expected)
    tally.found += len(found & expected)
    tally.lost += len(expected - found)
    tally.unsound += not _sound(scratch, root)


def maintenance_trial(scratch: Scratch, rng: random.Random, tally: Tally) -> None:
    root, marks = scratch.repository()
    script = marks.parent / "together.py"
    script.write_text(TOGETHER)
    stop = threading.Event()

    def maintain() -> None:
        while not stop.is_set():
            for args in MAINTENANCE:
                scratch.git(root, *args)

    beside = threading.Thread(target=maintain)
    beside.start()
    try:
        runs = [
            scratch.start(
                [*GITEXP, "run", "--", sys.executable, str(script), str(marks), "12"], root
            )
            for _ in range(12)
        ]
        tally.nonzero += sum(p.wait(timeout=600) != 0 for p in runs)
    finally:
        stop.set()
        beside.join()
    tally.phantoms += len(_recorded(scratch, root) - {p.name for p in marks.iterdir()})
    _count(scratch, root, marks, tally)


def kill_run_trial(scratch: Scratch, rng: random.Random, tally: Tally) -> None:
    root, marks = scratch.repository()
    runs = [
        scratch.start([*GITEXP, "run", "--", sys.executable, "-c", MARK, str(marks)], root)
        for _ in range(6)
    ]
    tally.kills += _kill_at(runs, [rng.uniform(0, LATEST_S) for _ in runs])
    tally.nonzero += sum(p.returncode not in (0, -signal.SIGKILL) for p in runs)
    recover = scratch.start([*GITEXP, "recover"], root)
    tally.kills += _kill_at([recover], [rng.uniform(0, 0.8)])
    _recover_all(scratch, root, tally)
    tally.phantoms += len(_recorded(scratch, root) - {p.name for p in marks.iterdir()})
    _count(scratch, root, marks, tally)


def kill_training_trial(scratch: Scratch, rng: random.Random, tally: Tally) -> None:
    root, marks = scratch.repository()
    script = marks.parent / "train_api.py"
    script.write_text(TRAIN)
    runs = [scratch.start([sys.executable, str(script), str(marks)], root) for _ in range(6)]
    tally.kills += _kill_at(runs, [rng.uniform(0, LATEST_S) for _ in runs])
    tally.nonzero += sum(p.returncode not in (0, -signal.SIGKILL) for p in runs)
    _recover_all(scratch, root, tally)
    _count(scratch, root, marks, tally)


SCENARIOS: dict[str, Callable[[Scratch, random.Random, Tally], None]] = {
    "maintenance (12 runs, pack-refs and gc beside)": maintenance_trial,
    "kill gitexp run (6 at once) and recover": kill_run_trial,
    "kill training (6 gitexp.init scripts)": kill_training_trial,
}


def measure(trials: int, seed: int) -> dict[str, Tally]:
    """`trials` trials of each scenario, kill moments drawn from `seed`."""
    rng = random.Random(seed)
    tallies: dict[str, Tally] = {}
    with tempfile.TemporaryDirectory(prefix="gitexp-reliability-") as top:
        scratch = Scratch(Path(top))
        for name, trial in SCENARIOS.items():
            tally = tallies[name] = Tally()
            for _ in range(trials):
                start = time.perf_counter()
                trial(scratch, rng, tally)
                tally.seconds.append(time.perf_counter() - start)
                tally.trials += 1
    return tallies


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=3, help="trials per scenario (3)")
    parser.add_argument("--seed", type=int, help="seed of the kill moments (random)")
    parser.add_argument("--quick", action="store_true", help="one trial per scenario")
    options = parser.parse_args()
    seed = options.seed if options.seed is not None else random.SystemRandom().randrange(2**32)
    trials = 1 if options.quick else options.trials
    tallies = measure(trials, seed)
    print(f"## Reliability: {trials} trials per scenario, seed {seed}\n")
    print(
        "| scenario | trials | runs expected | runs found | lost | phantom | non-zero exits "
        "| kills | left pending | fsck or reflog failures | median s / trial |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name, t in tallies.items():
        print(
            f"| {name} | {t.trials} | {t.expected} | {t.found} | {t.lost} | {t.phantoms} "
            f"| {t.nonzero} | {t.kills} | {t.left} | {t.unsound} "
            f"| {statistics.median(t.seconds):.1f} |"
        )
    bad = sum(t.lost + t.unsound for t in tallies.values())
    if bad:
        print(f"\n{bad} lost runs or unsound branches: gitexp must never lose a run")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
