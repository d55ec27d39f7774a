"""PyTorch Lightning: `Trainer(logger=GitexpLogger())`.

The run starts when Lightning first hands over hyperparameters or metrics (after the
strategy has set up `torch.distributed`, so only rank 0 records), with the module's
`save_hyperparameters()` and the script's own command line options (under `argv`) as its
config; under `gitexp run` it joins the wrapper's run. Metrics
go to `run.log` at Lightning's global step. A `ModelCheckpoint` without a `dirpath` writes
into `outputs/lightning/<version>/checkpoints/` (never code). Each checkpoint it saves is stored
in the DVC cache as it is written, with the role `best` (the best so far by its monitor) or
`last`, the step and the monitored score. The run ends with the process, as any run
does, so that a `test` after `fit` lands in the same record.

Importing this module imports Lightning: only scripts that use it do.
"""

from __future__ import annotations

import os
import time
from argparse import Namespace
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers.logger import Logger
from lightning.pytorch.utilities import rank_zero_only

import gitexp
from gitexp import workspace
from gitexp.api import Run
from gitexp.observed import script_options
from gitexp.settings import OUTPUTS_DIR

__all__ = ["GitexpLogger"]


class GitexpLogger(Logger):
    """A Lightning logger that records the run with gitexp. The keyword arguments are
    `gitexp.init`'s (name, tags, notes, data, seed, …), for the run it starts."""

    def __init__(self, **init: Any) -> None:
        super().__init__()
        self._init = init
        self._run: Run | None = None
        self._saved: dict[str, float] = {}  # checkpoint path → mtime when last stored
        # Lightning puts a ModelCheckpoint without a dirpath in save_dir/name/version, and
        # asks before the run can start (it waits for the hyperparameters): a folder of this
        # logger's own under the repository's outputs/, never code and ignored by git.
        self._version = f"{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"
        self._save_dir = str(workspace.open_workspace().workdir / OUTPUTS_DIR)

    @property
    def name(self) -> str:
        return "lightning"

    @property
    def version(self) -> str:
        return self._version

    @property
    def save_dir(self) -> str:
        return self._save_dir

    @property
    def experiment(self) -> Any:
        """The gitexp run. Lightning asks for it while it sets up, before it hands over the
        hyperparameters that are the run's config: what it gets starts the run only once
        used (`logger.experiment.log(...)`)."""
        return self._run if self._run is not None else _Later(self)

    def _started(self, config: Mapping[str, Any] | None) -> Run:
        """The run, started with the module's hyperparameters and, under `argv`, the script's
        own options (its argparse namespace): `--max-epochs` is as much an input as `lr`, and
        `--lr` that became the hyperparameter `lr` is one change (see axes._fold_options)."""
        if self._run is None:
            options = script_options()
            merged = {**(config or {}), **({"argv": options} if options else {})}
            self._run = gitexp.current() or gitexp.init(config=merged or None, **self._init)
        return self._run

    @rank_zero_only
    def log_hyperparams(
        self, params: dict[str, Any] | Namespace, *args: Any, **kwargs: Any
    ) -> None:
        given = vars(params) if isinstance(params, Namespace) else dict(params)
        self._started(given or None)

    @rank_zero_only
    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        self._started(None).log(dict(metrics), step=step)

    @rank_zero_only
    def after_save_checkpoint(self, checkpoint_callback: ModelCheckpoint) -> None:
        """Store what the callback wrote: its best checkpoint and its last, once each time
        they change on disk."""
        run = self._started(None)
        monitor = checkpoint_callback.monitor
        score = checkpoint_callback.best_model_score
        for role, path in (("best", checkpoint_callback.best_model_path),
                           ("last", checkpoint_callback.last_model_path)):  # fmt: skip
            if not path or not os.path.exists(path):
                continue
            stamp = os.path.getmtime(path)
            if self._saved.get(f"{role}:{path}") == stamp:
                continue
            self._saved[f"{role}:{path}"] = stamp
            metrics = {monitor: score} if role == "best" and monitor and score is not None else {}
            step = _step(path)
            if step is None:  # last.ckpt: the step the callback last saved at
                step = getattr(checkpoint_callback, "_last_global_step_saved", None)
            run.log_artifact(Path(path), role=role, step=step, metrics=metrics)


class _Later:
    """The run of a logger, started when first used."""

    def __init__(self, logger: GitexpLogger) -> None:
        self._logger = logger

    def __getattr__(self, name: str) -> Any:
        return getattr(self._logger._started(None), name)


def _step(path: str) -> int | None:
    """The step a Lightning checkpoint name carries (`epoch=1-step=20.ckpt`), if any."""
    for part in Path(path).stem.split("-"):
        name, _, value = part.partition("=")
        if name == "step" and value.isdigit():
            return int(value)
    return None
