"""Hugging Face `Trainer` with `GitexpCallback`: a tiny model trained on the CPU, its
arguments, logs and checkpoints recorded, two runs one axis apart."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from ..conftest import git, gitexp, run_ids

pytest.importorskip("transformers", reason="transformers is not installed (gitexp[transformers])")
pytest.importorskip("accelerate", reason="the Trainer needs accelerate")
pytestmark = pytest.mark.slow  # transformers takes seconds to import

TRAIN = """\
import argparse
import torch
from transformers import Trainer, TrainingArguments
from gitexp.integrations.transformers import GitexpCallback


class Tiny(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.net = torch.nn.Linear(4, 1)

    def forward(self, x, labels=None):
        out = self.net(x)
        return {"loss": torch.nn.functional.mse_loss(out, labels), "logits": out}


parser = argparse.ArgumentParser()
parser.add_argument("--lr", type=float, default=0.1)
parser.add_argument("--rows", type=int, default=32)  # the data's size: an input too
options = parser.parse_args()
torch.manual_seed(0)
rows = [{"x": x, "labels": x.sum(0, keepdim=True)} for x in torch.randn(options.rows, 4)]
args = TrainingArguments(
    output_dir="hf-out", num_train_epochs=2, per_device_train_batch_size=8,
    learning_rate=options.lr, logging_steps=1, save_strategy="epoch", eval_strategy="epoch",
    metric_for_best_model="loss", report_to=[], use_cpu=True, seed=0,
)
trainer = Trainer(model=Tiny(), args=args, train_dataset=rows, eval_dataset=rows,
                  callbacks=[GitexpCallback(tags=["hf"])])
trainer.train()
"""


def test_a_trainer_records_its_arguments_logs_and_checkpoints(project: Path) -> None:
    assert gitexp("init").exit_code == 0  # DVC, for the checkpoints
    (project / "train_hf.py").write_text(TRAIN)
    git(project, "add", "-A")
    git(project, "commit", "-q", "-m", "a Trainer script")
    # Once on its own, once under `gitexp run`: the same record either way.
    for lr, wrapper in (("0.1", []), ("0.05", ["-m", "gitexp", "run", "--", sys.executable])):
        command = [sys.executable, *wrapper, "train_hf.py", "--lr", lr]
        done = subprocess.run(command, cwd=project, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr
    first, second = sorted(run_ids(project))
    shown = json.loads(gitexp("show", second, "--json").stdout)
    assert shown["config"]["learning_rate"] == 0.05 and shown["config"]["num_train_epochs"] == 2
    assert shown["config"]["argv"]["rows"] == 32  # the script's own option, recorded too
    assert shown["run"]["tags"] == ["hf"] and shown["run"]["status"] == "succeeded"
    assert {"loss", "eval_loss", "epoch"} <= set(shown["summary"])
    artifacts = shown["artifacts"]["artifacts"]
    assert [a["path"] for a in artifacts] == ["hf-out/checkpoint-4", "hf-out/checkpoint-8"]
    assert all(a["nfiles"] and a["role"] in ("best", "last") for a in artifacts)
    assert any(a["role"] == "best" and set(a["metrics"]) == {"eval_loss"} for a in artifacts)
    result = gitexp("diff", "--no-pager", "--stat", first, second)
    assert result.exit_code == 0, result.output
    # `--lr` became `learning_rate`: one change, counted once.
    assert (
        result.stdout.splitlines()[1] == "  config.learning_rate: 0.1 → 0.05 (also config.argv.lr)"
    )
