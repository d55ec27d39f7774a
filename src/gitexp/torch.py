"""PyTorch support, loaded only when used: environment details and distributed ranks.

Importing this module does not import torch; each function works on the torch the training
script already imported.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from types import ModuleType
from typing import Any


def describe(torch: ModuleType) -> dict[str, Any]:
    """torch, CUDA and cuDNN versions and the GPUs torch sees."""
    info: dict[str, Any] = {"version": str(torch.__version__)}
    info["cuda"] = torch.version.cuda
    cudnn = torch.backends.cudnn
    info["cudnn"] = cudnn.version() if cudnn.is_available() else None
    if torch.cuda.is_available():
        count = torch.cuda.device_count()
        info["gpu_count"] = count
        info["gpus"] = [torch.cuda.get_device_name(i) for i in range(count)]
    else:
        info["gpu_count"] = 0
    return info


def _distributed() -> ModuleType | None:
    """torch.distributed if the script has started a process group, else None."""
    dist = sys.modules.get("torch.distributed")
    if dist is not None and dist.is_available() and dist.is_initialized():
        return dist
    return None


def rank() -> int:
    """This process's rank: from the process group if one is running, else from RANK."""
    dist = _distributed()
    if dist is not None:
        return int(dist.get_rank())
    try:
        return int(os.environ.get("RANK", "0"))
    except ValueError:
        return 0


def share_run_id(run_id: str | None) -> str | None:
    """Rank 0's run id on every rank (a collective call when a process group runs)."""
    dist = _distributed()
    if dist is None:
        return run_id
    box: list[str | None] = [run_id]
    dist.broadcast_object_list(box, src=0)
    return box[0]


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
