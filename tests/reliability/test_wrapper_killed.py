"""`gitexp run` killed hard while its command trains on: the training is neither killed nor
disturbed, nothing records it while it lives, and once it ends `gitexp recover` records it with
everything it printed, before and after the wrapper died."""

from __future__ import annotations

import json
import signal
import sys
from pathlib import Path

import pytest

from ..conftest import gitexp, gitexp_process
from .conftest import alive, check_branch, pending_folders, read_branch, wait_for

LINES = 2000  # after the wrapper died: more than a pipe holds, on stdout and on stderr
# The test and the script speak through files in `here`, outside the repository.
SCRIPT = """\
import json, os, sys, time
here, api = sys.argv[1], sys.argv[2] == "api"

def say(name, text):
    with open(os.path.join(here, name + ".part"), "w") as f:
        f.write(text)
    os.rename(os.path.join(here, name + ".part"), os.path.join(here, name))

def train():
    print("printed before the wrapper died", flush=True)
    print("warned before the wrapper died", file=sys.stderr, flush=True)
    say("started", json.dumps({"pid": os.getpid(), "id": os.environ["GITEXP_RUN_ID"]}))
    deadline = time.monotonic() + 120
    while not os.path.exists(os.path.join(here, "go")):
        if time.monotonic() > deadline:
            sys.exit("the test never said go")
        time.sleep(0.01)
    try:
        for i in range(int(sys.argv[3])):
            print(f"printed after the wrapper died {i}", flush=True)
            print(f"warned after the wrapper died {i}", file=sys.stderr, flush=True)
    except BaseException as e:
        say("finished", repr(e))
        raise
    say("finished", "ok")

if api:
    import gitexp
    with gitexp.init() as run:
        run.log({"progress": 1.0}, step=0)
        train()
else:
    train()
"""


@pytest.mark.parametrize("api", [False, True], ids=["plain", "api"])
def test_training_outlives_its_killed_wrapper_and_is_recorded_once_it_ends(
    project: Path, tmp_path: Path, api: bool
) -> None:
    here = tmp_path / "talk"
    here.mkdir()
    script = tmp_path / "long.py"
    script.write_text(SCRIPT)
    out, err = open(tmp_path / "wrapper.out", "w"), open(tmp_path / "wrapper.err", "w")  # noqa: SIM115
    with out, err:
        wrapper = gitexp_process(
            [
                "run",
                "--",
                sys.executable,
                str(script),
                str(here),
                "api" if api else "plain",
                str(LINES),
            ],
            project,
            stdout=out,
            stderr=err,
        )
        wait_for((here / "started").exists, "the training to start")
        training = json.loads((here / "started").read_text())
        pid, run_id = training["pid"], training["id"]
        wrapper.send_signal(signal.SIGKILL)
        assert wrapper.wait(timeout=60) == -signal.SIGKILL

    assert alive(pid), "killing gitexp run killed the training"
    # While it trains, gitexp leaves it alone: not recorded, not crashed, still pending.
    for args in (["recover"], ["log"]):
        result = gitexp(*args)
        assert result.exit_code == 0, result.output
        listed = [line for line in result.stdout.splitlines() if run_id in line]
        # `log` lists it as the live run it is; `recover` does not name it.
        assert len(listed) == (0 if args == ["recover"] else 1), (args, result.stdout)
        assert all(" running " in line for line in listed), (args, result.stdout)
        assert run_id not in read_branch(project).ids
        assert (project / ".git" / "gitexp" / "pending" / run_id).is_dir()
        assert alive(pid)

    (here / "go").touch()
    wait_for((here / "finished").exists, "the training to finish")
    assert (here / "finished").read_text() == "ok", "the training was disturbed"
    wait_for(lambda: not alive(pid), "the training process to end")

    recovered = gitexp("recover")

    status = "succeeded" if api else "crashed"  # with the API the script says how it ended
    assert recovered.exit_code == 0, recovered.output
    assert recovered.stdout == f"recovered run {run_id} as {status}\n"
    branch = check_branch(project)
    assert branch.runs[run_id]["status"] == status
    log = branch.files[run_id]["output.log"].decode()
    for line in (
        "printed before the wrapper died",
        "warned before the wrapper died",
        f"printed after the wrapper died {LINES - 1}",
        f"warned after the wrapper died {LINES - 1}",
    ):
        assert f"{line}\n" in log, line
    assert pending_folders(project) == []
    if api:
        assert b"progress" in branch.files[run_id]["metrics.tsv"]
