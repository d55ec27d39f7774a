"""PyTorch helpers for training scripts, loaded only when used.

Importing this module does not import torch; each function works on the torch the training
script already imported. The environment's torch details live in `gitexp.environment` and
rank handling in `gitexp.ranks`; their names stay importable from here.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from gitexp.environment import describe_torch as describe
from gitexp.ranks import rank, share_run_id

__all__ = ["describe", "rank", "save_checkpoint", "share_run_id"]


def save_checkpoint(
    obj: Any,
    path: str | os.PathLike[str],
    *,
    role: str | None = "last",
    step: int | None = None,
    metrics: Mapping[str, Any] | None = None,
) -> None:
    """`torch.save(obj, path)`, then record it as an artifact of the active run.

    The file goes into the DVC cache at once, so overwriting it next epoch loses nothing.
    """
    import torch

    from gitexp.api import current

    torch.save(obj, path)
    run = current()
    if run is None:
        from gitexp.errors import GitexpError

        raise GitexpError(
            f"saved {path}, but no run is active to record it; call gitexp.init() first"
        )
    run.log_artifact(os.fspath(path), role=role, step=step, metrics=metrics)
