"""Hugging Face `transformers`: `Trainer(..., callbacks=[GitexpCallback()])`.

The run starts when training does, on the main process only, with the `TrainingArguments`
(the hub token masked, as `to_dict` masks it), for a model that has one its config under
`model`, and the script's own options (what its argument parser read) under `argv` as the
record's config; under `gitexp run` it is the wrapper's run. What the
Trainer logs goes to `run.log` at its global step. Each checkpoint folder it saves goes into
the DVC cache at once, with the role `last`, or `best` when it is the best so far by
`metric_for_best_model` (with that score). The run ends with the process, as any run does.

Importing this module imports `transformers`: only scripts that use it do.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from transformers import TrainerCallback

import gitexp
from gitexp.api import Run
from gitexp.observed import script_options

__all__ = ["GitexpCallback"]


class GitexpCallback(TrainerCallback):
    """Records a `Trainer`'s run with gitexp. The keyword arguments are `gitexp.init`'s
    (name, tags, notes, data, …), for the run it starts."""

    def __init__(self, **init: Any) -> None:
        self._init = init
        self._run: Run | None = None

    def _started(self, args: Any, model: Any = None) -> Run:
        if self._run is None:
            self._run = gitexp.current() or gitexp.init(config=_config(args, model), **self._init)
        return self._run

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if state.is_world_process_zero:
            self._started(args, kwargs.get("model"))

    def on_log(
        self, args: Any, state: Any, control: Any, logs: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:  # fmt: skip
        if not state.is_world_process_zero or not logs:
            return
        numbers = {name: value for name, value in logs.items()
                   if isinstance(value, (int, float)) and not isinstance(value, bool)}  # fmt: skip
        if numbers:
            self._started(args).log(numbers, step=state.global_step)

    def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if not state.is_world_process_zero:
            return
        folder = os.path.join(args.output_dir, f"checkpoint-{state.global_step}")
        if not os.path.isdir(folder):
            return
        best = state.best_model_checkpoint
        is_best = best is not None and os.path.abspath(best) == os.path.abspath(folder)
        score = state.best_metric if is_best else None
        metric = args.metric_for_best_model
        metrics = {_eval_name(metric): score} if metric and score is not None else {}
        role = "best" if is_best else "last"
        self._started(args).log_artifact(folder, role=role, step=state.global_step,
                                         metrics=metrics)  # fmt: skip


def _config(args: Any, model: Any) -> dict[str, Any]:
    """The TrainingArguments, the model's config, and under `argv` the script's own options
    (what its HfArgumentParser or argparse read: model and data arguments too); `--lr` that
    became `learning_rate` is one change (see axes._fold_options)."""
    config: dict[str, Any] = dict(args.to_dict())
    options = script_options()
    if options:
        config["argv"] = options
    described = getattr(getattr(model, "config", None), "to_dict", None)
    if callable(described):
        config["model"] = described()
    return config


def _eval_name(metric: str) -> str:
    """The name the Trainer logs the metric under (`eval_loss` for `loss`)."""
    return metric if metric.startswith("eval_") else f"eval_{metric}"
