"""PyTorch: reproducible seeding, environment details, and ranks under torch.distributed."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from gitexp import yamlio

from .conftest import git, gitexp, run_ids

# Slow as a whole (each test trains with torch): `make test-quick` leaves it out.
pytestmark = pytest.mark.slow

torch = pytest.importorskip("torch")

EXAMPLE = Path(__file__).parent.parent / "examples" / "train_torch.py"


def _losses(project: Path, run_id: str) -> list[str]:
    tsv = git(project, "show", f"gitexp/runs:experiments/{run_id}/metrics.tsv")
    return [line.split("\t")[3] for line in tsv.splitlines()[1:] if "\ttrain/loss\t" in line]


def _train(project: Path, seed: int) -> str:
    result = gitexp(
        "run", "--seed", str(seed), "--", sys.executable, "train_torch.py", "--epochs", "1"
    )
    assert result.exit_code == 0, result.stderr
    return run_ids(project)[0]


def test_same_seed_same_losses_other_seed_other_losses(project: Path) -> None:
    assert gitexp("init").exit_code == 0  # DVC keeps the example's checkpoints
    shutil.copy(EXAMPLE, project / "train_torch.py")
    first, again, other = _train(project, 0), _train(project, 0), _train(project, 1)
    assert len(_losses(project, first)) == 8  # one epoch of 8 batches
    assert _losses(project, first) == _losses(project, again)
    assert _losses(project, first) != _losses(project, other)
    seeds = yamlio.load(git(project, "show", f"gitexp/runs:experiments/{first}/seeds.yaml"), "s")
    assert {"python", "torch"} <= set(seeds["rngs"])  # numpy too, when torch brings it in
    assert set(seeds["rngs"].values()) == {0}
    made = yamlio.load(git(project, "show", f"gitexp/runs:experiments/{first}/artifacts.yaml"), "a")
    assert {"best", "last"} == {a["role"] for a in made["artifacts"]}


def test_deterministic_flags_are_set_and_recorded(project: Path) -> None:
    (project / "det.py").write_text(
        "import torch, gitexp\n"
        "with gitexp.init(seed=3, deterministic=True):\n"
        "    assert torch.are_deterministic_algorithms_enabled()\n"
        "    assert torch.backends.cudnn.deterministic and not torch.backends.cudnn.benchmark\n"
    )
    done = subprocess.run([sys.executable, "det.py"], cwd=project, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    seeds = yamlio.load(
        git(project, "show", f"gitexp/runs:experiments/{run_ids(project)[0]}/seeds.yaml"), "s"
    )
    assert seeds["deterministic"] == {
        "CUBLAS_WORKSPACE_CONFIG": ":4096:8",
        "cudnn_benchmark": False,
        "cudnn_deterministic": True,
        "torch_deterministic_algorithms": True,
    }


def test_environment_describes_torch() -> None:
    from gitexp.environment import describe_torch

    info = describe_torch(torch)
    assert info["version"] == torch.__version__
    assert info.get("cuda") == torch.version.cuda  # left out, not null, on a CPU build
    # GPU names only where the script started CUDA itself: asking would start it.
    expected = torch.cuda.device_count() if torch.cuda.is_initialized() else None
    assert (len(info["gpus"]) if "gpus" in info else None) == expected


DISTRIBUTED = """\
import sys, torch.distributed as dist, gitexp
dist.init_process_group("gloo", init_method="env://")
with gitexp.init(config={"world": dist.get_world_size()}) as run:
    run.log({"loss": 1.0 + dist.get_rank()})
    print(dist.get_rank(), type(run).__name__, run.id, flush=True)
    dist.barrier()
dist.destroy_process_group()
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_only_rank_0_records_and_ranks_share_its_id(project: Path) -> None:
    (project / "dist.py").write_text(DISTRIBUTED)
    port = str(_free_port())
    processes = []
    for rank in (0, 1):
        env = {
            **os.environ,
            "MASTER_ADDR": "127.0.0.1",
            "MASTER_PORT": port,
            "RANK": str(rank),
            "WORLD_SIZE": "2",
        }
        processes.append(
            subprocess.Popen(
                [sys.executable, "dist.py"],
                cwd=project,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    outputs = [p.communicate(timeout=120) for p in processes]
    assert [p.returncode for p in processes] == [0, 0], outputs
    said = [out.split() for out, _ in outputs]
    assert [words[:2] for words in said] == [["0", "_OwnRun"], ["1", "_NoRun"]]
    assert said[0][2] == said[1][2] == run_ids(project)[0]
    assert len(run_ids(project)) == 1
    summary = yamlio.load(
        git(project, "show", f"gitexp/runs:experiments/{said[0][2]}/summary.yaml"), "s"
    )
    assert summary["loss"]["last"] == 1.0  # rank 0's value only


TORCHRUN = """\
import argparse, os
import torch, torch.distributed as dist
import gitexp
parser = argparse.ArgumentParser()
parser.add_argument("--lr", type=float, default=0.1)
args = parser.parse_args()
dist.init_process_group("gloo")
with gitexp.init(config=args, seed=0, all_ranks="ALL_RANKS" in os.environ) as run:
    rank = dist.get_rank()
    for step in range(3):
        loss = torch.tensor(10.0 * rank + args.lr * step, dtype=torch.float64)
        run.log({"loss": loss}, step=step)
    print(rank, type(run).__name__, run.id, flush=True)
dist.destroy_process_group()
"""


def test_torchrun_on_cpu_makes_one_record_written_by_rank_0(
    project: Path, torchrun_port: int
) -> None:
    (project / "dist_train.py").write_text(TORCHRUN)
    git(project, "add", "dist_train.py")
    git(project, "commit", "-q", "-m", "a distributed script")
    torchrun = str(Path(sys.executable).parent / "torchrun")
    # Under gitexp run, every rank asked to log (init(all_ranks=True)).
    done = subprocess.run(
        [sys.executable, "-m", "gitexp", "run", "--", torchrun, "--nproc-per-node", "2",
         "dist_train.py", "--lr", "0.3"],
        cwd=project, capture_output=True, text=True, timeout=300,
        env={**os.environ, "ALL_RANKS": "1"},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    said = sorted(line.split() for line in done.stdout.splitlines() if line[:2] in ("0 ", "1 "))
    assert [words[:2] for words in said] == [["0", "_JoinedRun"], ["1", "_RankRun"]]
    wrapped = said[0][2]
    assert said[1][2] == wrapped == run_ids(project)[0]  # one id on every rank
    tsv = git(project, "show", f"gitexp/runs:experiments/{wrapped}/metrics.tsv")
    rows = [line.split("\t") for line in tsv.splitlines()[1:]]
    assert [(r[0], r[2], r[3]) for r in rows if not r[2].startswith("system/")] == [
        ("0", "loss", "0.0"), ("1", "loss", "0.3"), ("2", "loss", "0.6"),
        ("0", "rank1/loss", "10.0"), ("1", "rank1/loss", "10.3"), ("2", "rank1/loss", "10.6"),
    ]  # fmt: skip
    # torchrun on its own: rank 0 records alone (rank 1 says it cannot), with torchrun's
    # command and options and the variables it was started with, not those it sets for its
    # workers: the same record, one axis apart.
    done = subprocess.run([torchrun, "--nproc-per-node", "2", "dist_train.py", "--lr", "0.4"],
                          cwd=project, capture_output=True, text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr
    said = sorted(line.split() for line in done.stdout.splitlines() if line[:2] in ("0 ", "1 "))
    assert [words[:2] for words in said] == [["0", "_OwnRun"], ["1", "_NoRun"]], (
        done.stdout[-2000:],
        done.stderr[-4000:],
    )
    alone = run_ids(project)[0]
    assert said[0][2] == said[1][2] == alone and len(run_ids(project)) == 2
    tsv = git(project, "show", f"gitexp/runs:experiments/{alone}/metrics.tsv")
    assert [line.split("\t")[3] for line in tsv.splitlines()[1:]] == ["0.0", "0.4", "0.8"]
    run = yamlio.load(git(project, "show", f"gitexp/runs:experiments/{alone}/run.yaml"), "r")
    assert run["command"] == ["torchrun", "--nproc-per-node", "2", "dist_train.py", "--lr", "0.4"]
    result = gitexp("diff", "--no-pager", "--stat", wrapped, alone)
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[:2] == [f"{wrapped} → {alone}: 1 axis differs",
                                              "  config.lr: 0.3 → 0.4"]  # fmt: skip
