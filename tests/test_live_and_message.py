"""Live runs in `gitexp log` and `show`, and the record commit's message (issue #13).

A live run is a real `gitexp run` whose command waits on a FIFO the test controls, so the
test looks at it while it trains and ends it when it is done: no sleeps.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from gitexp.message import record_message
from gitexp.record import RunInfo

from .conftest import git, gitexp, gitexp_process, read_fifo, run_ids

# Logs until a flush has put its metrics on disk (at most 2,048 calls), writes its run id
# into the FIFO argv[1], then trains on until the test writes into the FIFO argv[2].
_LIVE = """\
import os, sys, gitexp
from gitexp.metrics import SUMMARY_STREAM
run = gitexp.init(tags=["from-code"])
flushed = os.path.join(os.environ["GITEXP_RUN_DIR"], SUMMARY_STREAM)
while not os.path.exists(flushed):
    run.log({"loss": 0.25})
with open(sys.argv[1], "w") as ready:
    ready.write(os.environ["GITEXP_RUN_ID"])
open(sys.argv[2]).read()
"""


@dataclass
class Live:
    run_id: str
    process: subprocess.Popen[str]
    command: list[str]
    go: Path

    def end(self) -> int:
        """Let the run's command finish; gitexp's exit status."""
        with open(self.go, "w"):
            pass
        return self.process.wait(timeout=60)


@pytest.fixture
def recorded(project: Path) -> str:
    """One finished run on the branch, older than the live one."""
    assert gitexp("run", "--name", "done", "--", sys.executable, "train.py").exit_code == 0
    return run_ids(project)[0]


@pytest.fixture
def live(project: Path, recorded: str, tmp_path: Path) -> Iterator[Live]:
    ready, go = tmp_path / "ready", tmp_path / "go"  # outside the code gitexp snapshots
    os.mkfifo(ready)
    os.mkfifo(go)
    command = [sys.executable, "-c", _LIVE, str(ready), str(go)]
    args = ["run", "--name", "live", "--tag", "sweep", "--", *command]
    process = gitexp_process(args, project, stderr=subprocess.PIPE)
    run_id = read_fifo(ready, process)
    assert run_id, process.communicate()[1]
    running = Live(run_id, process, command, go)
    yield running
    if process.poll() is None:
        running.end()


def test_log_lists_a_live_run_as_running_newest_first(live: Live, recorded: str) -> None:
    listed = json.loads(gitexp("log", "--json").stdout)
    assert [run["id"] for run in listed] == [live.run_id, recorded]
    now = listed[0]
    assert now.pop("duration_s") >= 0
    assert now.pop("started").startswith(f"{live.run_id[:4]}-{live.run_id[4:6]}-")
    loss = now["summary"]["loss"]
    assert (loss["last"], loss["min"], loss["max"]) == (0.25, 0.25, 0.25)
    assert now == {
        "id": live.run_id,
        "name": "live",
        "status": "running",
        "exit_code": None,
        "tags": ["sweep", "from-code"],
        "notes": None,
        "command": live.command,
        "config": now["config"],  # whatever the script's config was: not this test's concern
        "summary": {"loss": loss},
        "inputs": [],
        "archived": False,
    }

    table = gitexp("log").stdout.splitlines()
    assert table[0].split()[-1] == "loss"
    assert table[1].split()[:3] == [live.run_id, "live", "running"]
    assert table[1].split()[-3:] == ["sweep,", "from-code", "0.25"]
    assert table[2].split()[:3] == [recorded, "done", "succeeded"]


def test_log_filters_apply_to_live_runs(live: Live) -> None:
    cases = [
        (["--status", "running"], ["live"]),
        (["--status", "succeeded"], ["done"]),
        (["--status", "running", "--status", "succeeded"], ["live", "done"]),
        (["--tag", "sweep"], ["live"]),
        (["--tag", "from-code", "--tag", "sweep"], ["live"]),
        (["--tag", "other"], []),
        (["--name", "live"], ["live"]),
        (["--name", "done"], ["done"]),
        (["-n", "1"], ["live"]),
        (["--verified"], []),  # nothing is signed here; a live run is not yet
    ]
    for args, shown in cases:  # one live run for all: each costs a second
        listed = json.loads(gitexp("log", "--json", *args).stdout)
        assert [run["name"] for run in listed] == shown, args


def test_show_of_a_live_run_says_it_is_still_running(live: Live) -> None:
    for ref in (live.run_id, "live", live.run_id[:-3]):
        result = gitexp("show", ref)
        assert (result.exit_code, result.stderr) == (
            1,
            f"Error: run {live.run_id} is still running, so it has no record yet; "
            "`gitexp log --status running` lists live runs\n",
        )
    assert gitexp("show", "nope").stderr == "Error: no run 'nope'; see `gitexp log`\n"
    # Every command that names runs says the same: diff, compare, plot, ablate, tag.
    for args in (["diff", "live", "live"], ["compare", "live"], ["plot", "live", "-m", "x"],
                 ["ablate", "live"], ["tag", "live", "best"]):  # fmt: skip
        assert "is still running, so it has no record yet" in gitexp(*args).stderr, args

    assert live.end() == 0
    assert json.loads(gitexp("log", "--json", "--status", "running").stdout) == []
    assert gitexp("log", "--status", "running").stderr == (
        "no run matches; `gitexp log` with no filter lists every run; archived runs are hidden "
        "unless --all\n"
    )
    assert json.loads(gitexp("show", "--json", "live").stdout)["run"]["status"] == "succeeded"


def test_a_run_that_ended_unrecorded_is_not_running_and_log_says_so(
    live: Live, project: Path, tmp_path: Path
) -> None:
    # The runs branch checked out elsewhere as the run ends: its record cannot be committed.
    git(project, "worktree", "add", "-q", str(tmp_path / "runs"), "gitexp/runs")
    assert live.end() == 0

    result = gitexp("log", "--json", "--status", "running")
    assert result.stdout == "[]\n"
    assert result.stderr.splitlines()[-1] == (
        "note: 1 run has ended without being recorded; `gitexp recover` records it or says "
        "why it cannot"
    )

    git(project, "worktree", "remove", str(tmp_path / "runs"))
    done = gitexp("log")
    assert done.stdout.splitlines()[1].split()[:3] == [live.run_id, "live", "succeeded"]
    assert "note:" not in done.stderr


# --- the record commit's message ----------------------------------------------------------


def test_git_log_of_the_runs_branch_reads_as_results(project: Path) -> None:
    (project / "fit.py").write_text(
        "import gitexp\n"
        "run = gitexp.init()\n"
        "for step in range(100):\n"
        "    run.log({'loss': 0.2213 + 1 / (step + 1), 'acc': 0.9123456 * step / 99,\n"
        "             'lr': 0.1, 'epoch': step // 10})\n"
    )
    assert gitexp("run", "--name", "base", "--", sys.executable, "fit.py").exit_code == 0
    assert gitexp("run", "--", sys.executable, "train.py").exit_code == 0
    newest, first = run_ids(project)

    log = git(project, "log", "--first-parent", "--format=%s%n%b", "gitexp/runs")
    assert log.splitlines()[:6] == [
        f"gitexp: run {newest} succeeded",
        f"command: {sys.executable} train.py",
        "",
        # The first three logged, in the order logged; not `acc`, `epoch`, `loss` (sorted).
        f"gitexp: run {first} succeeded (base): loss=0.2313 acc=0.9123 lr=0.1",
        f"command: {sys.executable} fit.py",
        "",
    ]


_HEADER = b"step\ttime\tname\tvalue\n"


def _info(name: str | None = None, status: str = "succeeded") -> RunInfo:
    return RunInfo(
        id="20261122-130351-0rk3f9q", command=("python", "train.py"), cwd=".",
        started="2026-11-22T13:03:51.123Z", host="h", user="u", gitexp_version="0",
        name=name, status=status,  # type: ignore[arg-type]
    )  # fmt: skip


@pytest.mark.parametrize(
    ("rows", "first_line"),
    [
        (None, "gitexp: run 20261122-130351-0rk3f9q crashed"),
        (b"", "gitexp: run 20261122-130351-0rk3f9q crashed"),
        (
            b"0\t0.1\tloss\t0.123456\n0\t0.1\tacc\t123456.7\n1\t0.2\tloss\tnan\n",
            "gitexp: run 20261122-130351-0rk3f9q crashed: loss=nan acc=1.235e+05",
        ),
        # A time that reads like a metric's name is not that metric's row.
        (
            b"0\t1.5\tx\t2.0\n1\t2.0\t1.5\t3.0\n2\t1.5\tx\t-0.000123456\n",
            "gitexp: run 20261122-130351-0rk3f9q crashed: x=-0.0001235 1.5=3",
        ),
        # Names come from the training script: controls are shown, never obeyed.
        (
            "0\t0.1\tev\x1b[2J\ril\u202e\t1\n".encode(),
            "gitexp: run 20261122-130351-0rk3f9q crashed: ev\\x1b[2J\\ril\\u202e=1",
        ),
        (
            b"0\t0.1\t" + b"n" * 40 + b"\t1\n0\t0.1\t\xff\t2\n",
            "gitexp: run 20261122-130351-0rk3f9q crashed: " + "n" * 31 + "…=1 \\xff=2",
        ),
    ],
)
def test_message_first_line(rows: bytes | None, first_line: str) -> None:
    series = None if rows is None else _HEADER + rows
    summary, body = record_message(_info(status="crashed"), series)
    assert (summary, body) == (first_line, "command: python train.py")


def test_message_neutralises_the_run_name() -> None:
    summary, _ = record_message(_info(name="a\nb\x1b]0;x\x07"), _HEADER + b"0\t0\tloss\t1\n")
    assert summary == "gitexp: run 20261122-130351-0rk3f9q succeeded (a\\nb\\x1b]0;x\\x07): loss=1"


def test_message_names_at_most_three_metrics_logged_first() -> None:
    rows = b"".join(f"{s}\t0\t{n}\t{s}\n".encode() for s in range(3) for n in "dcba")
    summary, _ = record_message(_info(), _HEADER + rows)
    assert summary.endswith(": d=2 c=2 b=2")
