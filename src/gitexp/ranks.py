"""Ranks under torch.distributed: which process records, and rank 0's run id on every rank.

Imports neither torch nor the rest of gitexp: it reads the torch.distributed the training
script already started, if any.
"""

from __future__ import annotations

import os
import sys
from types import ModuleType


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
