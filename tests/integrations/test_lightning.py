"""PyTorch Lightning with `Trainer(logger=GitexpLogger())`: a tiny model trained on the CPU,
its hyperparameters, metrics and checkpoints recorded, two runs one axis apart."""

from __future__ import annotations

from importlib.util import find_spec
from pathlib import Path

import pytest

from ..conftest import gitexp
from . import alone_then_wrapped

# Looked up, not imported: importing Lightning takes seconds, and the scripts below do.
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(find_spec("lightning") is None,
                       reason="Lightning is not installed (pip install 'gitexp[lightning]')"),
]  # fmt: skip

FIT = """\
import argparse
import lightning as L
import torch
from gitexp.integrations.lightning import GitexpLogger


class Tiny(L.LightningModule):
    def __init__(self, lr: float = 0.1, width: int = 4) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.net = torch.nn.Linear(width, 1)

    def training_step(self, batch, index):
        x, y = batch
        loss = torch.nn.functional.mse_loss(self.net(x), y)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, index):
        x, y = batch
        self.log("val_loss", torch.nn.functional.mse_loss(self.net(x), y))

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=self.hparams.lr)


parser = argparse.ArgumentParser()
parser.add_argument("--lr", type=float, default=0.1)
parser.add_argument("--max-epochs", type=int, default=2)  # not a hyperparameter: an input
args = parser.parse_args()
L.seed_everything(0)
x = torch.randn(64, 4)
pairs = torch.utils.data.TensorDataset(x, x.sum(1, keepdim=True))
data = torch.utils.data.DataLoader(pairs, batch_size=16)
best = L.pytorch.callbacks.ModelCheckpoint(monitor="val_loss", save_last=True)
trainer = L.Trainer(max_epochs=args.max_epochs, logger=GitexpLogger(tags=["lightning"]),
                    callbacks=[best], accelerator="cpu", enable_progress_bar=False,
                    enable_model_summary=False, log_every_n_steps=1)
trainer.fit(Tiny(lr=args.lr), data, data)
"""


def test_a_lightning_fit_records_hyperparameters_metrics_and_checkpoints(project: Path) -> None:
    first, shown = alone_then_wrapped(project, "fit.py", FIT)
    assert shown["config"]["lr"] == 0.05 and shown["config"]["width"] == 4
    assert shown["config"]["argv"]["max_epochs"] == 2  # the script's own option, recorded too
    assert shown["run"]["tags"] == ["lightning"] and shown["run"]["status"] == "succeeded"
    assert {"train_loss", "val_loss", "epoch"} <= set(shown["summary"])
    assert shown["summary"]["epoch"]["last"] == 1.0
    roles = {a["role"] for a in shown["artifacts"]["artifacts"]}
    assert roles == {"best", "last"}
    best = [a for a in shown["artifacts"]["artifacts"] if a["role"] == "best"][-1]
    assert set(best["metrics"]) == {"val_loss"}
    assert best["path"].startswith("outputs/lightning/")  # never code, ignored by git
    assert best["path"].endswith("/checkpoints/epoch=1-step=8.ckpt") and best["step"] == 8
    last = [a for a in shown["artifacts"]["artifacts"] if a["role"] == "last"][-1]
    assert last["path"].endswith("/last.ckpt") and last["step"] == 8
    result = gitexp("diff", "--no-pager", "--stat", first, shown["run"]["id"])
    assert result.exit_code == 0, result.output
    # `--lr` became the hyperparameter `lr`: one change, counted once.
    assert result.stdout.splitlines()[1] == "  config.lr: 0.1 → 0.05 (also config.argv.lr)"
