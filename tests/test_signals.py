"""The paths that matter most, through real processes: signals, kills, exit statuses."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gitexp import yamlio

from .conftest import git, gitexp, gitexp_process, run_ids

# Logs a line, says it is ready, then waits to be stopped. A test reads "ready" before it
# signals, so no sleep is needed to synchronise.
WAITER = """\
import os, sys, time
print("step 1 done", flush=True)
print("pid", os.getpid(), flush=True)
try:
    print("ready", flush=True)
    time.sleep(600)
except KeyboardInterrupt:
    print("caught interrupt", flush=True)
    sys.exit(1)
"""


def _start(project: Path, *args: str) -> tuple[subprocess.Popen[str], int]:
    """gitexp running WAITER, once WAITER is ready; with WAITER's pid."""
    (project / "wait.py").write_text(WAITER)
    process = gitexp_process(
        ["run", *args, "--", sys.executable, "wait.py"],
        project,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert process.stdout is not None
    pid = 0
    for line in process.stdout:
        if line.startswith("pid "):
            pid = int(line.split()[1])
        if line == "ready\n":
            return process, pid
    raise AssertionError(f"the command never got ready: {process.communicate()}")


def _wait_gone(pid: int) -> None:
    """Until `pid` has ended (a zombie nobody reaps counts as ended)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            return
        if state in ("Z", "X"):
            return
        time.sleep(0.01)
    raise AssertionError(f"process {pid} did not end")


def _run_yaml(project: Path) -> dict[str, object]:
    run_id = run_ids(project)[0]
    data = yamlio.load(git(project, "show", f"gitexp/runs:experiments/{run_id}/run.yaml"), "run")
    assert isinstance(data, dict)
    return data


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_stopping_signal_is_forwarded_and_recorded_as_interrupted(
    project: Path, signum: int
) -> None:
    process, _ = _start(project)
    process.send_signal(signum)
    _, err = process.communicate(timeout=60)
    run = _run_yaml(project)
    assert run["status"] == "interrupted"
    assert run["signal"] == signal.Signals(signum).name
    if signum == signal.SIGINT:  # Python turns SIGINT into KeyboardInterrupt: caught, exit 1
        assert process.returncode == 1
    else:
        assert process.returncode == 128 + signum
    log = git(project, "show", f"gitexp/runs:experiments/{run['id']}/output.log")
    assert "step 1 done\n" in log
    assert "interrupted, recorded on gitexp/runs" in err


def test_command_killed_hard_is_recorded_as_crashed(project: Path) -> None:
    (project / "die.py").write_text("import os, signal\nos.kill(os.getpid(), signal.SIGKILL)\n")
    result = gitexp("run", "--", sys.executable, "die.py")
    assert result.exit_code == 128 + signal.SIGKILL
    run = _run_yaml(project)
    assert (run["status"], run["signal"], run["exit_code"]) == ("crashed", "SIGKILL", 137)


def test_gitexp_killed_hard_is_recovered_by_the_next_command(project: Path) -> None:
    process, command_pid = _start(project, "--name", "doomed")
    assert process.stdout is not None and process.stderr is not None
    process.kill()  # SIGKILL to gitexp itself: it can record nothing
    process.wait(timeout=60)
    process.stdout.close()
    process.stderr.close()
    os.kill(command_pid, signal.SIGKILL)  # a command still training would be left alone
    _wait_gone(command_pid)
    pending = project / ".git" / "gitexp" / "pending"
    (folder,) = list(pending.iterdir())

    result = gitexp("log")  # any gitexp command recovers
    assert result.exit_code == 0
    assert folder.name in result.stdout
    run = _run_yaml(project)
    assert (run["id"], run["name"], run["status"]) == (folder.name, "doomed", "crashed")
    log = git(project, "show", f"gitexp/runs:experiments/{folder.name}/output.log")
    assert "step 1 done\n" in log
    assert not any(pending.iterdir())
    assert "refs/gitexp/pending" not in git(project, "for-each-ref")
    git(project, "fsck", "--strict")


def test_exit_status_of_the_command_is_gitexps(project: Path) -> None:
    process = gitexp_process(
        ["run", "--", sys.executable, "-c", "raise SystemExit(42)"], project, stderr=subprocess.PIPE
    )
    _, err = process.communicate(timeout=60)
    assert process.returncode == 42
    assert "Traceback" not in err


def test_errors_are_one_line_without_traceback(tmp_path: Path) -> None:
    process = gitexp_process(["log"], tmp_path, stderr=subprocess.PIPE)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 1
    assert err == (
        f"Error: {tmp_path} is not inside a git repository; run gitexp from your project, "
        "or `git init` one first\n"
    )


def test_git_exp_is_the_same_command(project: Path) -> None:
    git_exp = Path(sys.executable).parent / "git-exp"
    if not git_exp.exists():
        pytest.skip("git-exp is installed as a console script with the package")
    env = {**os.environ, "PATH": f"{git_exp.parent}{os.pathsep}{os.environ['PATH']}"}
    done = subprocess.run(
        ["git", "exp", "run", "--", sys.executable, "train.py"],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert len(run_ids(project)) == 1
