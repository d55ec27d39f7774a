"""`gitexp reproduce ID` and `gitexp checkout ID --code DIR`: a run's exact code, data,
config and seeds, run again; its outcome compared."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import git, gitexp, run_ids, with_data_and_script

# Its loss depends on the data, the code (SCALE), the --lr option and the seed; with NOISE set,
# on nothing reproducible at all.
SCRIPT = """\
import argparse, os, random
import gitexp
SCALE = 1.0
parser = argparse.ArgumentParser()
parser.add_argument("--lr", type=float, default=0.1)
parser.add_argument("--warm-up-steps", type=int, default=0)
parser.add_argument("--double", action="store_true")
args = parser.parse_args()
random.seed(int(os.environ.get("GITEXP_SEED", "0")))
rows = open("data/train.csv").read().split()
loss = SCALE * args.lr * sum(float(x) for x in rows) + random.random() + args.warm_up_steps
loss *= 2 if args.double else 1
if os.environ.get("NOISE"):
    loss += int.from_bytes(os.urandom(4), "big") * 1e-12  # below 0.005, never twice the same
if os.environ.get("WAIT_SYSTEM"):  # until `gitexp run` has sampled the machine once
    import time
    sampled, deadline = os.path.join(os.environ["GITEXP_RUN_DIR"], "system.tsv"), time.time() + 60
    while not os.path.exists(sampled) and time.time() < deadline:
        time.sleep(0.01)
with gitexp.init() as run:
    run.log({"loss": loss, "rows": float(len(rows))})
"""


@pytest.fixture
def trainer(project: Path) -> Path:
    """The project with DVC data and a script whose loss depends on everything it used."""
    return with_data_and_script(project, SCRIPT)


def _record(*args: str) -> str:
    result = gitexp("run", *args)
    assert result.exit_code == 0, result.output
    return run_ids(Path.cwd())[0]


def _loss(run_id: str) -> float:
    shown = json.loads(gitexp("show", run_id, "--json").stdout)
    return float(shown["summary"]["loss"]["last"])


@pytest.mark.slow
def test_a_run_reproduces_exactly_from_its_own_code_data_and_seed(
    trainer: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The machine's load, sampled beside both runs, differs: it is no outcome of the run.
    monkeypatch.setenv("WAIT_SYSTEM", "1")
    monkeypatch.setenv("GITEXP_SYSTEM_INTERVAL", "0.05")
    (trainer / "fit.py").write_text(SCRIPT.replace("SCALE = 1.0", "SCALE = 3.0"))  # uncommitted
    original = _record("--seed", "7", "--", sys.executable, "fit.py", "--lr", "0.5")
    # Everything changes afterwards: the code, the data, the seed in the environment.
    git(trainer, "checkout", "-q", "fit.py")
    (trainer / "data" / "train.csv").write_text("100\n")
    result = gitexp("reproduce", original, "--yes")
    assert result.exit_code == 0, result.output
    again = run_ids(trainer)[0]
    assert result.stdout.splitlines()[-1] == (
        f"run {again} reproduces run {original}: every metric exactly"
    )
    assert _loss(again) == _loss(original)
    shown = json.loads(gitexp("show", again, "--json").stdout)
    assert "system/cpu_percent" in shown["summary"]
    assert shown["run"]["reproduces"] == original
    assert gitexp("diff", original, again).stdout.startswith(f"{original} → {again}: no axis")
    assert git(trainer, "worktree", "list").count("\n") == 1  # its worktree is gone
    assert not any((trainer / ".git" / "gitexp" / "replay").iterdir())
    assert (trainer / "data" / "train.csv").read_text() == "100\n"  # the user's, untouched


@pytest.mark.slow
def test_a_run_that_does_not_reproduce_exits_5_and_says_which_metric(
    trainer: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NOISE", "1")
    original = _record("--", sys.executable, "fit.py")
    result = gitexp("reproduce", original, "--yes")
    assert result.exit_code == 5
    again = run_ids(trainer)[0]
    assert (
        result.stderr
        == f"Error: run {again} does not reproduce run {original}: 1 of 2 metrics differ (loss)\n"
    )
    lines = {line.split()[0]: line.split() for line in result.stdout.splitlines()}
    assert lines["loss"][-1] == "DIFFERS" and lines["rows"][-1] == "same"
    within = gitexp("reproduce", original, "--yes", "--atol", "1")
    assert within.exit_code == 0, within.output
    assert within.stdout.endswith("every metric within rtol=0, atol=1\n")


@pytest.mark.slow
def test_a_record_that_does_not_verify_is_not_run_without_consent(trainer: Path) -> None:
    original = _record("--", sys.executable, "fit.py")
    before = run_ids(trainer)
    done = subprocess.run([sys.executable, "-m", "gitexp", "reproduce", original],
                          cwd=trainer, stdin=subprocess.DEVNULL, capture_output=True,
                          text=True)  # fmt: skip
    assert done.returncode == 3
    assert f"it would run `{sys.executable} fit.py`" in done.stderr and "--yes" in done.stderr
    assert run_ids(trainer) == before


@pytest.mark.slow
def test_signed_records_run_without_asking(trainer: Path, signing: Path) -> None:
    original = _record("--", sys.executable, "fit.py")
    done = subprocess.run([sys.executable, "-m", "gitexp", "reproduce", original],
                          cwd=trainer, stdin=subprocess.DEVNULL, capture_output=True,
                          text=True)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "reproduces run" in done.stdout


@pytest.mark.slow
def test_environment_differences_are_listed_and_strict_env_refuses(
    trainer: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OMP_NUM_THREADS", "3")  # recorded: it changes what a run computes
    original = _record("--", sys.executable, "fit.py")
    monkeypatch.setenv("OMP_NUM_THREADS", "5")
    before = run_ids(trainer)
    refused = gitexp("reproduce", original, "--yes", "--strict-env")
    assert refused.exit_code == 3
    assert "variables.OMP_NUM_THREADS: 3 -> 5" in refused.stderr
    assert run_ids(trainer) == before
    allowed = gitexp("reproduce", original, "--yes")
    assert allowed.exit_code == 0, allowed.output
    assert "variables.OMP_NUM_THREADS: 3 -> 5" in allowed.stderr


def test_checkout_code_writes_the_exact_code_elsewhere(trainer: Path, tmp_path: Path) -> None:
    (trainer / "fit.py").write_text(SCRIPT + "# tried in the working tree\n")
    (trainer / "notes.txt").write_text("untracked, yet part of the run's code\n")
    original = _record("--", sys.executable, "fit.py")
    git(trainer, "checkout", "-q", "fit.py")
    result = gitexp("checkout", original, "--code", str(tmp_path / "code"))
    assert result.exit_code == 0, result.output
    assert (tmp_path / "code" / "fit.py").read_text().endswith("# tried in the working tree\n")
    assert (tmp_path / "code" / "notes.txt").exists()
    assert (trainer / "fit.py").read_text() == SCRIPT  # the working tree is not touched
    again = gitexp("checkout", original, "--code", str(tmp_path / "code"))
    assert again.exit_code == 1 and "is not an empty folder" in again.stderr


@pytest.mark.slow
def test_rerun_changes_one_option_and_links_the_new_run(trainer: Path) -> None:
    spelled = _record("--seed", "3", "--", sys.executable, "fit.py", "--lr", "0.5")
    defaulted = _record("--seed", "3", "--", sys.executable, "fit.py")
    for original in (spelled, defaulted):
        result = gitexp("rerun", original, "-p", "lr=0.25", "--yes")
        assert result.exit_code == 0, result.output
        again = run_ids(trainer)[0]
        assert f"run {again} succeeded: run {original} with lr=0.25; changed config.lr" in (
            result.stderr
        )
        shown = json.loads(gitexp("show", again, "--json").stdout)
        assert shown["run"]["rerun_of"] == original and shown["config"]["lr"] == 0.25
        diff = gitexp("diff", original, again).stdout.splitlines()
        assert diff[0] == f"{original} → {again}: 1 axis differs"
        assert diff[1].split(":")[0].strip() == "config.lr"


@pytest.mark.slow
def test_a_rerun_key_the_command_does_not_have_is_set_as_config(trainer: Path) -> None:
    original = _record("--", sys.executable, "fit.py")
    result = gitexp("rerun", original, "-p", "optim.momentum=0.9", "--yes")
    assert result.exit_code == 0, result.output
    again = run_ids(trainer)[0]
    assert "changed config.optim.momentum" in result.stderr  # as `gitexp run -p` records it
    assert "optim.momentum is neither an option of the command nor one its code" in result.stderr
    command = json.loads(gitexp("show", again, "--json").stdout)["run"]["command"]
    assert command == [sys.executable, "fit.py"]  # not passed to a script that has no such option
    bad = gitexp("rerun", original, "-p", "lr", "--yes")
    assert bad.exit_code == 2 and "write KEY=VALUE" in bad.stderr


@pytest.mark.slow
def test_an_interpreter_this_machine_lacks_is_its_own_python_and_said(
    trainer: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    venv = tmp_path / "elsewhere" / "bin"
    venv.mkdir(parents=True)
    (venv / "python3").write_text(f'#!/bin/sh\nexec {sys.executable} "$@"\n')  # another machine's
    (venv / "python3").chmod(0o755)
    original = _record("--", str(venv / "python3"), "fit.py")
    (venv / "python3").unlink()
    here = Path(sys.executable).parent  # this machine's environment, activated
    monkeypatch.setenv("PATH", f"{here}{os.pathsep}{os.environ['PATH']}")
    result = gitexp("reproduce", original, "--yes")
    assert result.exit_code == 0, result.output
    assert f"gitexp: {venv / 'python3'} is not on this machine: running " in result.stderr
    assert "reproduces run" in result.stdout


@pytest.mark.slow
def test_rerun_spells_a_defaulted_option_as_the_code_does(trainer: Path) -> None:
    original = _record("--", sys.executable, "fit.py")
    result = gitexp("rerun", original, "-p", "warm_up_steps=3", "-p", "double=true", "--yes")
    assert result.exit_code == 0, result.output
    again = run_ids(trainer)[0]
    command = json.loads(gitexp("show", again, "--json").stdout)["run"]["command"]
    assert command[-2:] == ["--warm-up-steps=3", "--double"]
    assert "changed config.double, config.warm_up_steps" in result.stderr
    off = gitexp("rerun", original, "-p", "double=false", "--yes")
    assert off.exit_code == 2 and "a switch the command can only turn on" in off.stderr


@pytest.mark.slow
def test_a_run_with_no_metrics_is_not_said_to_reproduce(trainer: Path) -> None:
    original = _record("--", sys.executable, "-c", "print('no metrics logged')")
    result = gitexp("reproduce", original, "--yes")
    assert result.exit_code == 5
    assert "recorded no metrics, so there is nothing to compare" in result.stderr


def test_a_command_whose_secret_the_record_kept_out_is_not_replayed(trainer: Path) -> None:
    original = _record("--", sys.executable, "-c", "pass", "--token=xyz")
    before = run_ids(trainer)
    result = gitexp("reproduce", original, "--yes")
    assert result.exit_code == 1
    assert "held secrets its record keeps out (--token)" in result.stderr
    assert "xyz" not in result.output and run_ids(trainer) == before


@pytest.mark.slow
def test_worktrees_a_killed_replay_left_behind_are_swept_unless_in_use(trainer: Path) -> None:
    original = _record("--seed", "7", "--", sys.executable, "fit.py")
    replays = trainer / ".git" / "gitexp" / "replay"
    left, busy = replays / "0123456789ab-left", replays / "0123456789ab-busy"
    away = replays / "0123456789ab-away"
    for place in (left, busy, away):  # as a SIGKILLed replay leaves them: their locks free
        git(trainer, "worktree", "add", "--detach", "--quiet", str(place), "HEAD")
        (replays / f"{place.name}.lock").touch()
    # A training whose gitexp was killed trains on in its worktree: that one is kept.
    training = subprocess.Popen([sys.executable, "-c", "input()"], cwd=busy,
                                stdin=subprocess.PIPE)  # fmt: skip
    # One run's training that went elsewhere still belongs to its worktree.
    elsewhere = subprocess.Popen([sys.executable, "-c", "input()"], cwd=trainer,
                                 stdin=subprocess.PIPE,
                                 env={**os.environ, "GITEXP_WORKDIR": str(away)})  # fmt: skip
    try:
        result = gitexp("reproduce", original, "--yes")
    finally:
        training.communicate(b"\n")
        elsewhere.communicate(b"\n")
    assert result.exit_code == 0, result.output
    assert not left.exists() and not (replays / f"{left.name}.lock").exists()
    assert busy.is_dir() and away.is_dir()
    assert str(left) not in git(trainer, "worktree", "list")
