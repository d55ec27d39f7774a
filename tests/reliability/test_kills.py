"""SIGKILL at random moments: of `gitexp run` while it launches, follows or commits; of
`gitexp recover` while it commits; of a training script that records through gitexp.init.

Afterwards the branch points at a valid commit, fsck is clean, every run whose command
started is recorded exactly once (as `crashed` or with its true outcome), nothing that never
ran is, and no record is half-written. The delays come from a seeded random.Random: the seed
is printed, and GITEXP_KILL_SEED=N replays the same draws.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from ..conftest import gitexp
from .conftest import check_branch, no_crash_report, pending_folders, read_branch, tip, wait_for

AT_ONCE = 6  # processes started together in one round, each killed at its own moment
# Kills that must land (the process still ran) per test: 26 + 24 ≥ 50 in all.
RUN_KILLS, TRAINING_KILLS = 26, 24
MAX_ROUNDS = 12
LATEST_S = 1.5  # kills are drawn in 0…LATEST_S s after the start; some runs end first
# The command marks that it ran, under the run's id, in a folder outside the repository.
MARK = "import os, sys; open(os.path.join(sys.argv[1], os.environ['GITEXP_RUN_ID']), 'w').close()"
TRAIN = """\
import os, sys, time, gitexp
folder, steps = sys.argv[1], int(sys.argv[2])
with gitexp.init(config={"steps": steps}) as run:
    open(os.path.join(folder, run.id), "w").close()
    for step in range(steps):
        run.log({"loss": 1.0 / (step + 1)}, step=step)
        time.sleep(0.002)  # a training step
"""


@dataclass
class Trials:
    """The draws of one test, said in every failure so that it can be replayed."""

    seed: int = field(
        default_factory=lambda: int(
            os.environ.get("GITEXP_KILL_SEED", random.SystemRandom().randrange(2**32))
        )
    )
    kills: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.random = random.Random(self.seed)
        print(f"GITEXP_KILL_SEED={self.seed}")

    def __str__(self) -> str:
        return f"GITEXP_KILL_SEED={self.seed}; kills: {'; '.join(self.kills)}"


def _kill_at(processes: list[subprocess.Popen[str]], delays: list[float]) -> None:
    """SIGKILL each process `delay` seconds after `started`, if it still runs then."""
    started = time.monotonic()
    for process, delay in sorted(zip(processes, delays, strict=True), key=lambda p: p[1]):
        time.sleep(max(0.0, started + delay - time.monotonic()))  # the drawn moment itself
        if process.poll() is None:
            process.kill()
    for process in processes:
        process.wait(timeout=120)


def _survivors(processes: list[subprocess.Popen[str]], trials: Trials, what: str) -> list[str]:
    """Kill each process at a drawn moment; the stderr of those that ended on their own,
    each of which must have succeeded without a crash report."""
    delays = [trials.random.uniform(0, LATEST_S) for _ in processes]
    _kill_at(processes, delays)
    survived = []
    for process, delay in zip(processes, delays, strict=True):
        assert process.stderr is not None
        err = process.stderr.read()
        process.stderr.close()
        if process.returncode == -signal.SIGKILL:
            trials.kills.append(f"{what} at {delay:.3f} s")
            continue
        no_crash_report(err)
        assert process.returncode == 0, f"{err}\n{trials}"
        survived.append(err)
    return survived


def _start(args: list[str], cwd: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        args, cwd=cwd, env=env, text=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )


def _recover_all(project: Path, trials: Trials) -> None:
    """`gitexp recover` until nothing is pending: a run whose command lives is left alone,
    so this waits for the orphaned commands to end."""

    def settled() -> bool:
        result = gitexp("recover")
        assert result.exit_code == 0, f"{result.output}\n{trials}"
        no_crash_report(result.output)
        return not pending_folders(project)

    try:
        wait_for(settled, "every pending run to be recorded", timeout=30, every=0.1)
    except AssertionError as e:
        left = {p.name: sorted(f.name for f in p.iterdir()) for p in pending_folders(project)}
        on_branch = sorted(read_branch(project).ids & left.keys())
        raise AssertionError(
            f"{e}: still pending {left} (of which already on the branch: {on_branch})\n{trials}"
        ) from None


def _check(project: Path, ran: Path, trials: Trials, exact: bool) -> dict[str, dict[str, object]]:
    """The branch is sound and holds every run that ran; with `exact`, only those."""
    marked = {p.name for p in ran.iterdir()}
    if tip(project) is None:  # every process so far was killed before it recorded anything
        assert not marked, f"runs that ran but are not recorded: {sorted(marked)}\n{trials}"
        return {}
    try:
        branch = check_branch(project)
    except AssertionError as e:
        raise AssertionError(f"{e}\n{trials}") from None
    lost = marked - branch.ids
    assert not lost, f"runs that ran but are not recorded: {sorted(lost)}\n{trials}"
    if exact:
        phantoms = branch.ids - marked
        assert not phantoms, f"recorded, but their command never ran: {phantoms}\n{trials}"
    return branch.runs


@pytest.mark.slow
def test_gitexp_run_and_recover_killed_at_random_moments(project: Path, tmp_path: Path) -> None:
    trials = Trials()
    ran = tmp_path / "ran"
    ran.mkdir()
    finished: dict[str, int] = {}  # run id → exit status, for runs that were not killed
    round_ = 0
    while len(trials.kills) < RUN_KILLS:
        assert round_ < MAX_ROUNDS, f"too few kills landed: {trials}"
        round_ += 1
        processes = [
            _start(
                [sys.executable, "-m", "gitexp", "run", "--", sys.executable, "-c", MARK, str(ran)],
                project,
            )
            for _ in range(AT_ONCE)
        ]
        for err in _survivors(processes, trials, f"round {round_}: gitexp run"):
            finished[err.split("gitexp: run ")[-1].split()[0]] = 0
        # Whatever it left, the branch itself is sound before anyone recovers.
        if tip(project) is not None:  # no branch yet is sound too
            try:
                check_branch(project)
            except AssertionError as e:
                raise AssertionError(f"{e}\n{trials}") from None
        # `gitexp recover` is a writer too: kill one while it commits what the round left.
        recover = _start([sys.executable, "-m", "gitexp", "recover"], project)
        delay = trials.random.uniform(0, 0.8)
        _kill_at([recover], [delay])
        assert recover.stderr is not None
        recover.stderr.close()
        if recover.returncode == -signal.SIGKILL:
            trials.kills.append(f"round {round_}: gitexp recover at {delay:.3f} s")
        _recover_all(project, trials)
        runs = _check(project, ran, trials, exact=True)
        for run_id in finished:
            assert runs[run_id]["status"] == "succeeded", f"{runs[run_id]}\n{trials}"
        for run in runs.values():
            assert run["status"] in ("succeeded", "crashed"), f"{run}\n{trials}"
    print(f"{len(trials.kills)} kills in {round_} rounds: {trials}")


@pytest.mark.slow
def test_training_scripts_killed_at_random_moments(project: Path, tmp_path: Path) -> None:
    trials = Trials()
    script = tmp_path / "train_api.py"
    script.write_text(TRAIN)
    ran = tmp_path / "ran"
    ran.mkdir()
    ended: set[str] = set()
    wrong_exit: dict[str, object] = {}  # nobody saw the end: no exit code is invented
    round_ = 0
    while len(trials.kills) < TRAINING_KILLS:
        assert round_ < MAX_ROUNDS, f"too few kills landed: {trials}"
        round_ += 1
        processes = [
            _start([sys.executable, str(script), str(ran), "200"], project) for _ in range(AT_ONCE)
        ]
        for err in _survivors(processes, trials, f"round {round_}: training"):
            ended.add(err.split("gitexp: run ")[-1].split()[0])
        _recover_all(project, trials)
        runs = _check(project, ran, trials, exact=False)
        marked = {p.name for p in ran.iterdir()}
        for run_id, run in runs.items():
            if run_id in ended:
                assert run["status"] == "succeeded", f"{run}\n{trials}"
            elif run_id not in marked:  # killed inside gitexp.init: it never trained
                assert run["status"] == "crashed", f"{run}\n{trials}"
            else:
                assert run["status"] in ("succeeded", "crashed"), f"{run}\n{trials}"
            if run["status"] == "crashed" and run["exit_code"] is not None:
                wrong_exit[run_id] = run["exit_code"]
    print(f"{len(trials.kills)} kills in {round_} rounds: {trials}")
    # Checked last, so that every other property was checked in every round first.
    assert not wrong_exit, f"crashed runs with an exit code nobody saw: {wrong_exit}\n{trials}"
