"""`gitexp plot` and `gitexp watch` (issue #14), on real runs of real training scripts.

A live run is a real `gitexp run` whose command waits on a FIFO the test controls: no sleeps.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from gitexp.comparison.plot import _Buckets

from .conftest import gitexp, gitexp_process, read_fifo, run_ids

# loss = (1 - lr)^step, shifted up by the seed: seeds of one lr differ by a constant.
_CURVE = """\
import argparse, math, os
import gitexp
parser = argparse.ArgumentParser()
parser.add_argument("--lr", type=float, default=0.1)
parser.add_argument("--steps", type=int, default=20)
parser.add_argument("--values", default="")
args = parser.parse_args()
seed = int(os.environ.get("GITEXP_SEED", "0"))
with gitexp.init(config=vars(args)) as run:
    if args.values:
        for step, value in enumerate(args.values.split(",")):
            run.log({"loss": float(value)}, step=step)
    else:
        for step in range(args.steps):
            run.log({"loss": (1 - args.lr) ** step + seed, "acc": step}, step=step)
"""


def _record(project: Path, *args: str, seed: int = 0) -> str:
    (project / "curve.py").write_text(_CURVE)
    done = gitexp("run", "--seed", str(seed), "--", sys.executable, "curve.py", *args)
    assert done.exit_code == 0, done.output
    return run_ids(project)[0]


def _curves(*args: str) -> list[dict[str, object]]:
    done = gitexp("plot", "--json", *args)
    assert done.exit_code == 0, done.output
    curves: list[dict[str, object]] = json.loads(done.stdout)["curves"]
    return curves


@pytest.fixture
def sweep(project: Path) -> dict[tuple[float, int], str]:
    """Two learning rates, two seeds each."""
    return {
        (lr, seed): _record(project, "--lr", str(lr), seed=seed)
        for lr in (0.1, 0.5)
        for seed in (0, 1)
    }


@pytest.mark.slow
def test_plot_draws_seed_groups_as_mean_and_band_named_by_lr(
    sweep: dict[tuple[float, int], str],
) -> None:
    curves = _curves(*sweep.values(), "-m", "loss")
    assert [(c["label"], c["runs"]) for c in curves] == [
        ("lr=0.1 (2 seeds)", [sweep[0.1, 0], sweep[0.1, 1]]),
        ("lr=0.5 (2 seeds)", [sweep[0.5, 0], sweep[0.5, 1]]),
    ]
    for curve, lr in zip(curves, (0.1, 0.5), strict=True):
        assert curve["steps"][:2] == [0.0, 1.0]  # type: ignore[index]
        assert curve["steps"][-1] == 19.0  # type: ignore[index]
        # The mean of seeds 0 and 1 is 0.5 above the seedless curve; their sd is √0.5.
        assert curve["mean"][0] == pytest.approx(1.5)  # type: ignore[index]
        assert curve["mean"][1] == pytest.approx(1 - lr + 0.5)  # type: ignore[index]
        assert curve["low"][0] == pytest.approx(1.5 - 0.5**0.5)  # type: ignore[index]
        assert curve["high"][0] == pytest.approx(1.5 + 0.5**0.5)  # type: ignore[index]

    drawn = gitexp("plot", *sweep.values(), "-m", "loss")
    assert drawn.exit_code == 0, drawn.output
    assert "loss, bands: ±1 sd over seeds" in drawn.stdout
    assert "lr=0.1 (2 seeds)" in drawn.stdout and "lr=0.5 (2 seeds)" in drawn.stdout
    assert "step" in drawn.stdout and "\x1b[" not in drawn.stdout  # no colour when piped

    each = _curves(sweep[0.1, 0], sweep[0.1, 1], "-m", "loss", "--separate")
    assert [c["label"] for c in each] == ["seed=0", "seed=1"]
    assert "low" not in each[0]

    chosen = _curves("--where", "config.lr=0.5", "-m", "loss")  # as `gitexp log --where`
    assert [sorted(c["runs"]) for c in chosen] == [sorted([sweep[0.5, 0], sweep[0.5, 1]])]
    assert gitexp("plot", "-m", "loss").exit_code == 2  # no run named, none chosen


@pytest.mark.slow
def test_plot_writes_png_and_svg_images(sweep: dict[tuple[float, int], str], project: Path) -> None:
    done = gitexp("plot", *sweep.values(), "-m", "loss", "--output", "curves.png")
    assert (done.exit_code, done.stderr) == (0, "wrote curves.png\n")
    png = (project / "curves.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(png) > 10_000  # axes, two lines, two bands and a legend

    done = gitexp("plot", sweep[0.1, 0], "-m", "loss", "--output", "curves.svg", "--logy")
    assert done.exit_code == 0, done.output
    svg = (project / "curves.svg").read_text()
    assert svg.lstrip().startswith("<?xml") and "<svg" in svg


def test_plot_smooths_cuts_steps_and_leaves_out_what_a_log_scale_cannot_draw(
    project: Path,
) -> None:
    run_id = _record(project, "--values", "8,4,2,nan,-1,1")
    plain = _curves(run_id, "-m", "loss")
    assert plain == [{"label": run_id, "runs": [run_id], "steps": [0.0, 1.0, 2.0, 4.0, 5.0],
                      "mean": [8.0, 4.0, 2.0, -1.0, 1.0]}]  # fmt: skip

    smooth = _curves(run_id, "-m", "loss", "--smooth", "2", "--steps", "1:5")
    assert (smooth[0]["steps"], smooth[0]["mean"]) == ([1.0, 2.0, 4.0, 5.0], [4.0, 3.0, 0.5, 0.0])

    done = gitexp("plot", "--json", run_id, "-m", "loss", "--logy", "--steps", ":2")
    assert json.loads(done.stdout)["curves"][0]["mean"] == [8.0, 4.0, 2.0]
    assert done.stderr == ""
    done = gitexp("plot", "--json", run_id, "-m", "loss", "--logy")
    assert json.loads(done.stdout)["curves"][0]["mean"] == [8.0, 4.0, 2.0, 1.0]
    assert done.stderr == (
        "warning: 1 NaN or infinite values left out\n"
        "warning: 1 values ≤ 0 left out of the logarithmic scale\n"
    )


def test_long_series_are_reduced_to_bucket_means_in_bounded_memory() -> None:
    buckets = _Buckets(100)
    for step in range(100_000):
        buckets.add(step, 2.0 * step)
    steps, values = buckets.points()
    assert 100 <= len(steps) <= 200
    assert steps[0] == pytest.approx(255.5)  # the mean of the first 512 steps
    assert values == pytest.approx([2 * s for s in steps])
    assert steps[-1] < 100_000


def test_plot_says_what_is_wrong(project: Path) -> None:
    run_id = _record(project, "--steps", "3")
    done = gitexp("plot", run_id, "-m", "val/loss")
    assert (done.exit_code, done.stderr) == (
        1,
        "Error: no run here has 'val/loss' to draw; they logged acc, loss (`-m NAME` picks one)\n",
    )
    done = gitexp("plot", run_id, "-m", "loss", "--steps", "9")
    assert done.exit_code == 2
    assert "Invalid value for --steps: '9' is not a step range; write FIRST:LAST" in done.stderr
    done = gitexp("plot", run_id, "-m", "loss", "--output", "curves.pdf")
    assert (done.exit_code, done.stderr) == (
        1,
        "Error: cannot write 'curves.pdf': --output takes a .png or .svg file\n",
    )
    # Without matplotlib (an optional extra), one line saying how to get it.
    hidden = "import sys; sys.modules['matplotlib'] = None; from gitexp.cli import main; main()"
    done_p = subprocess.run(
        [sys.executable, "-c", hidden, "plot", run_id, "-m", "loss", "--output", "c.png"],
        capture_output=True,
        text=True,
        cwd=project,
    )
    assert (done_p.returncode, done_p.stderr) == (
        1,
        "Error: writing an image needs matplotlib, which is not installed; install it with "
        "`pip install 'gitexp[plot]'`\n",
    )


# --- gitexp watch ---------------------------------------------------------------------------------

# Logs until a flush has put its metrics on disk, writes its run id into the FIFO argv[1],
# then trains on until the test writes into the FIFO argv[2].
_LIVE = """\
import os, sys, gitexp
from gitexp.metrics import SUMMARY_STREAM
run = gitexp.init()
flushed = os.path.join(os.environ["GITEXP_RUN_DIR"], SUMMARY_STREAM)
step = 0
while not os.path.exists(flushed):
    run.log({"loss": 0.25, "acc": 0.5}, step=step)
    step += 1
with open(sys.argv[1], "w") as ready:
    ready.write(os.environ["GITEXP_RUN_ID"])
open(sys.argv[2]).read()
"""


@dataclass
class Live:
    run_id: str
    process: subprocess.Popen[str]
    go: Path

    def end(self) -> int:
        with open(self.go, "w"):
            pass
        return self.process.wait(timeout=60)


@pytest.fixture
def live(project: Path, tmp_path: Path) -> Iterator[Live]:
    ready, go = tmp_path / "ready", tmp_path / "go"
    os.mkfifo(ready)
    os.mkfifo(go)
    command = [sys.executable, "-c", _LIVE, str(ready), str(go)]
    process = gitexp_process(["run", "--name", "live", "--", *command], project,
                             stderr=subprocess.PIPE)  # fmt: skip
    run_id = read_fifo(ready, process)
    assert run_id, process.communicate()[1]
    running = Live(run_id, process, go)
    yield running
    if process.poll() is None:
        running.end()


def test_watch_with_no_run_running_says_so(project: Path) -> None:
    done = gitexp("watch")
    assert (done.exit_code, done.stdout) == (0, "")
    assert done.stderr == "no run is running; start one with `gitexp run -- python train.py`\n"


@pytest.mark.slow
def test_watch_shows_live_runs_and_exits_when_they_end_or_on_ctrl_c(
    live: Live, project: Path
) -> None:
    shown = json.loads(gitexp("watch", "--json").stdout)
    assert len(shown) == 1
    now = shown[0]
    assert (now["id"], now["name"], now["metrics"]) == (
        live.run_id, "live", {"acc": 0.5, "loss": 0.25},
    )  # fmt: skip
    assert now["step"] >= 0 and now["elapsed_s"] >= 0 and now["steps_per_s"] > 0

    table = gitexp("watch", "--once", "-m", "loss").stdout.splitlines()
    assert table[0].split() == ["run", "elapsed", "step", "steps/s", "loss"]
    assert table[1].split()[0] == "live" and table[1].split()[-1] == "0.25"

    # Ctrl-C stops watching: status 0, no traceback.
    watching = gitexp_process(["watch", "--interval", "0.1"], project,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
    assert watching.stderr is not None
    assert watching.stderr.readline() == "watching 1 running run; Ctrl-C to stop\n"
    watching.send_signal(signal.SIGINT)
    out, err = watching.communicate(timeout=60)
    assert (watching.returncode, err) == (0, "")
    assert "live" in out

    # And it ends by itself when the last run ends, its last table left on screen.
    watching = gitexp_process(["watch", "--interval", "0.1"], project,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
    assert watching.stderr is not None
    assert watching.stderr.readline() == "watching 1 running run; Ctrl-C to stop\n"
    assert live.end() == 0
    out, err = watching.communicate(timeout=60)
    assert (watching.returncode, err) == (0, "no run is running any more\n")
    assert out.splitlines()[1].split()[0] == "live"


def test_values_near_the_float_limit_are_said_not_crashed_on(project: Path) -> None:
    """Bucket means of 1e308 stay finite; a terminal cannot draw them and says so."""
    run_id = _record(project, "--values", ",".join(["1e308"] * 3000))
    curves = _curves(run_id, "-m", "loss")
    assert all(v == 1e308 for v in curves[0]["mean"])  # type: ignore[union-attr]
    done = gitexp("plot", run_id, "-m", "loss")
    assert done.exit_code == 1
    assert "holds values too large for a terminal plot" in done.output
