"""Hugging Face `Trainer` with `GitexpCallback`: a tiny model trained on the CPU, its
arguments, logs and checkpoints recorded, two runs one axis apart."""

from __future__ import annotations

from importlib.util import find_spec
from pathlib import Path

import pytest

from ..conftest import gitexp
from . import alone_then_wrapped

# Looked up, not imported: importing transformers takes seconds, and the scripts below do.
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(find_spec("transformers") is None,
                       reason="transformers is not installed (gitexp[transformers])"),
    pytest.mark.skipif(find_spec("accelerate") is None, reason="the Trainer needs accelerate"),
]  # fmt: skip

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
    first, shown = alone_then_wrapped(project, "train_hf.py", TRAIN)
    assert shown["config"]["learning_rate"] == 0.05 and shown["config"]["num_train_epochs"] == 2
    assert shown["config"]["argv"]["rows"] == 32  # the script's own option, recorded too
    assert shown["run"]["tags"] == ["hf"] and shown["run"]["status"] == "succeeded"
    assert {"loss", "eval_loss", "epoch"} <= set(shown["summary"])
    artifacts = shown["artifacts"]["artifacts"]
    assert [a["path"] for a in artifacts] == ["hf-out/checkpoint-4", "hf-out/checkpoint-8"]
    assert all(a["nfiles"] and a["role"] in ("best", "last") for a in artifacts)
    assert any(a["role"] == "best" and set(a["metrics"]) == {"eval_loss"} for a in artifacts)
    result = gitexp("diff", "--no-pager", "--stat", first, shown["run"]["id"])
    assert result.exit_code == 0, result.output
    # `--lr` became `learning_rate`: one change, counted once.
    assert (
        result.stdout.splitlines()[1] == "  config.learning_rate: 0.1 → 0.05 (also config.argv.lr)"
    )
