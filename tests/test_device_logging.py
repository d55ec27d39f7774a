"""`run.log` of 0-d tensors: kept as they are and read in batches, never with a device sync in
the call (DESIGN.md §6). CPU tensors take the same path, so its values, order, batching, bound
and crash behaviour are checked here on any machine; the CUDA test runs where there is one."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest

from gitexp.device import DeviceValues

from .conftest import git, run_ids

torch = pytest.importorskip("torch", reason="the torch extra is not installed")

DTYPES = [torch.float32, torch.float64, torch.bfloat16, torch.float16, torch.int64, torch.bool]


def _rows(project: Path, run_id: str) -> list[tuple[int, str, str]]:
    tsv = git(project, "show", f"gitexp/runs:experiments/{run_id}/metrics.tsv")
    return [(int(s), name, value) for s, _, name, value in (line.split("\t") for line in
            tsv.splitlines()[1:])]  # fmt: skip


def test_tensors_are_recorded_as_item_gives_them_in_order(project: Path) -> None:
    import gitexp

    expected = []
    with gitexp.init(config={"lr": 0.1}) as run:
        for step in range(600):  # two full batches and a part, interleaved with floats
            values = {f"t/{dtype}".replace("torch.", ""): torch.tensor(step / 7).to(dtype)
                      for dtype in DTYPES}  # fmt: skip
            values["grad"] = torch.tensor(step / 3, requires_grad=True) * 2
            values["plain"] = step * 0.25
            run.log(values, step=step)
            expected += [(step, name, repr(float(value))) for name, value in values.items()]
    (run_id,) = run_ids(project)
    assert _rows(project, run_id) == expected


def test_values_wait_in_batches_and_never_past_the_cap() -> None:
    values = DeviceValues(batch=64, cap=200)
    slots = []
    for i in range(1000):
        slots.append(values.add(torch.tensor(float(i))))
        assert values.waiting <= 200
    assert slots[-1].value is None  # kept, not read, until the flusher's turn
    values.poll()  # the flusher's turn: the open batch starts too, and CPU copies land at once
    assert [slot.value for slot in slots] == [float(i) for i in range(1000)]
    assert values.waiting == 0


KILLED = """\
import os, signal, torch, gitexp
run = gitexp.init()
for step in range(300):
    run.log({"loss": torch.tensor(step / 9)}, step=step)
run._writer.flush()  # the flusher's turn, as its thread takes it every second
for step in range(300, 310):
    run.log({"loss": torch.tensor(step / 9)}, step=step)
os.kill(os.getpid(), signal.SIGKILL)
"""


@pytest.mark.slow
def test_a_crash_keeps_every_tensor_the_flusher_saw(project: Path) -> None:
    (project / "killed.py").write_text(KILLED)
    done = subprocess.run([sys.executable, "-m", "gitexp", "run", "--", sys.executable,
                           "killed.py"], cwd=project, capture_output=True, text=True)  # fmt: skip
    assert done.returncode == 128 + signal.SIGKILL, done.stderr
    (run_id,) = run_ids(project)
    rows = _rows(project, run_id)
    # What was logged before the flusher's last turn is kept, exactly; what came after it
    # may be lost, as for any metric.
    assert rows == [(s, "loss", repr(float(torch.tensor(s / 9).item()))) for s in range(300)]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_logging_a_cuda_loss_never_synchronises(project: Path) -> None:
    import gitexp

    losses = []
    with gitexp.init() as run:
        x = torch.randn(256, 256, device="cuda")
        for step in range(1000):
            loss = (x @ x).mean() / (step + 1)
            torch.cuda.set_sync_debug_mode("error")  # any sync inside log() raises
            try:
                run.log({"loss": loss}, step=step)
            finally:
                torch.cuda.set_sync_debug_mode("default")
            losses.append(loss)
    (run_id,) = run_ids(project)
    assert _rows(project, run_id) == [(s, "loss", repr(v.item())) for s, v in enumerate(losses)]
