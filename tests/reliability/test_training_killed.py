"""A training script that records through gitexp.init, killed by SIGKILL (as the OOM killer
does): the record says `crashed` (exit 137 when `gitexp run` saw it), keeps every metric
logged more than 1 s before the kill (what `log` accepted is on disk within 1 s), and ends
at the last sign of life."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gitexp import pending as pending_mod

from .conftest import check_branch, cli, no_crash_report, pending_folders, utc

BOUND_S = 1.0  # the documented bound
SLACK_S = 0.3  # for a loaded machine's scheduling, not for gitexp
# Logs three steps, waits until they are on disk (or the bound has passed: then the record
# shows what was lost), logs one more step that may be lost, and kills itself.
SCRIPT = """\
import json, os, signal, sys, time
import gitexp

report = sys.argv[1]
run = gitexp.init(config={"lr": 0.1})
folder = os.environ.get("GITEXP_RUN_DIR") or os.path.join(".git", "gitexp", "pending", run.id)
for step, value in enumerate([0.5, 0.25, 0.123456789]):
    run.log({"probe/loss": value}, step=step)
logged = time.time()

def on_disk():
    for base, _, names in os.walk(folder):
        for name in names:
            try:
                with open(os.path.join(base, name), "rb") as f:
                    data = f.read()
            except OSError:
                continue
            if b"probe/loss" in data and b"0.123456789" in data:
                return True
    return False

seen = None
while time.time() < logged + float(sys.argv[2]):
    if on_disk():
        seen = time.time() - logged
        break
    time.sleep(0.01)
run.log({"probe/loss": 0.0625}, step=3)  # just before the kill: it may be lost
with open(report, "w") as f:
    json.dump({"id": run.id, "logged": logged, "seen_after": seen, "killed": time.time()}, f)
os.kill(os.getpid(), signal.SIGKILL)
"""


def _metrics(tsv: bytes) -> dict[int, float]:
    rows = [line.split("\t") for line in tsv.decode().splitlines()[1:]]
    return {int(step): float(value) for step, _, name, value in rows if name == "probe/loss"}


@pytest.mark.slow
@pytest.mark.parametrize("wrapped", [False, True], ids=["api-alone", "under-gitexp-run"])
def test_a_training_killed_hard_keeps_its_metrics_and_its_end(
    project: Path, tmp_path: Path, wrapped: bool
) -> None:
    script = tmp_path / "train_killed.py"
    script.write_text(SCRIPT)
    report = tmp_path / "report.json"
    command = [sys.executable, str(script), str(report), str(BOUND_S + SLACK_S)]
    if wrapped:
        command = [sys.executable, "-m", "gitexp", "run", "--", *command]
    process = subprocess.run(command, cwd=project, capture_output=True, text=True, timeout=120)
    assert process.returncode == (137 if wrapped else -signal.SIGKILL), process.stderr
    no_crash_report(process.stderr)
    said = json.loads(report.read_text())
    run_id = said["id"]

    if not wrapped:
        # Someone runs a gitexp command a while after the crash: the wait is the scenario.
        time.sleep(2.5)
        done = cli(["recover"], project)
        assert done.returncode == 0, done.stderr
        no_crash_report(done.stdout + done.stderr)
        assert done.stdout == f"recovered run {run_id} as crashed\n"

    branch = check_branch(project)
    assert pending_folders(project) == []
    run = branch.runs[run_id]
    assert run["status"] == "crashed", run
    metrics = _metrics(branch.files[run_id].get("metrics.tsv", b"no metrics\n"))
    kept = {step: metrics.get(step) for step in (0, 1, 2)}
    assert kept == {0: 0.5, 1: 0.25, 2: 0.123456789}, (
        f"metrics logged {said['killed'] - said['logged']:.2f} s before the kill are lost "
        f"(seen on disk after {said['seen_after']} s)"
    )
    finished = utc(run["finished"])
    # It ends at the last sign of life before the kill, not when recover came along.
    assert said["killed"] - 2.0 <= finished <= said["killed"] + 0.5, (finished, said)
    assert abs(run["duration_s"] - (finished - utc(run["started"]))) < 0.01, run
    if wrapped:
        assert run["exit_code"] == 137, run  # gitexp run saw SIGKILL end it
    else:  # nobody saw how it ended: the record says so rather than guess a status
        assert (run["exit_code"], run["error"]) == (None, pending_mod.UNSEEN_END), run
