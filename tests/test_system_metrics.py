"""System metrics under `gitexp run`: sampled by the wrapper beside the command, into the
record's metrics after the training's own rows; off with --no-system-metrics."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import git, gitexp, run_ids

pytestmark = pytest.mark.slow  # each test waits for the sampler

# The command waits until the wrapper's sampler has written two samples (or the time given
# is up), then logs one metric of its own.
WAITS = """\
import os, sys, time
import gitexp
samples = os.path.join(os.environ["GITEXP_RUN_DIR"], "system.tsv")
deadline = time.monotonic() + float(sys.argv[1])
while time.monotonic() < deadline:
    if os.path.exists(samples) and open(samples).read().count("system/cpu_percent") >= 2:
        break
    time.sleep(0.01)
with gitexp.init() as run:
    run.log({"loss": 0.5}, step=0)
"""


def _run(project: Path, wait_s: float, *options: str) -> subprocess.CompletedProcess[str]:
    """`waits.py`, which waits up to `wait_s` for two samples; 20 a second are taken."""
    (project / "waits.py").write_text(WAITS)
    env = {**os.environ, "GITEXP_SYSTEM_INTERVAL": "0.05"}
    command = [sys.executable, "-m", "gitexp", "run", *options, "--", sys.executable, "waits.py",
               str(wait_s)]  # fmt: skip
    return subprocess.run(command, cwd=project, env=env, capture_output=True, text=True)


def test_cpu_and_memory_are_sampled_into_the_record(project: Path) -> None:
    pytest.importorskip("psutil", reason="psutil samples the host")
    done = _run(project, 60)
    assert done.returncode == 0, done.stderr
    (run_id,) = run_ids(project)
    tsv = git(project, "show", f"gitexp/runs:experiments/{run_id}/metrics.tsv").splitlines()
    assert tsv[0] == "step\ttime\tname\tvalue" and tsv[1].split("\t")[2:] == ["loss", "0.5"]
    names = {line.split("\t")[2] for line in tsv[2:]}
    assert {"system/cpu_percent", "system/memory_percent", "system/process_rss_mb"} <= names
    rss = [float(line.split("\t")[3]) for line in tsv if "\tsystem/process_rss_mb\t" in line]
    # A Python process, once started: megabytes, not bytes (a sample taken while it is still
    # being exec'd, or once it has ended, may read less).
    assert 5 < max(rss) < 10_000 and min(rss) >= 0
    summary = git(project, "show", f"gitexp/runs:experiments/{run_id}/summary.yaml")
    assert "system/cpu_percent:" in summary and "loss:" in summary
    # In the record, but never a column or an outcome unless asked for by name.
    listed = gitexp("log").stdout.splitlines()[0].split()
    assert "loss" in listed and not any(word.startswith("system/") for word in listed)
    table = gitexp("compare", run_id, "--json").stdout
    assert '"loss"' in table and "system/" not in table
    asked = gitexp("compare", run_id, "-m", "system/cpu_percent", "--json").stdout
    assert "system/cpu_percent" in asked


def test_no_system_metrics_samples_nothing(project: Path) -> None:
    done = _run(project, 1, "--no-system-metrics")  # a second: twenty samples, were it on
    assert done.returncode == 0, done.stderr
    (run_id,) = run_ids(project)
    tsv = git(project, "show", f"gitexp/runs:experiments/{run_id}/metrics.tsv")
    assert "system/" not in tsv
