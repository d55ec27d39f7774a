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


def launched_by() -> tuple[list[str], dict[str, str]] | None:
    """The command line and environment of the torchrun that started this process, if one
    did: what `gitexp run -- torchrun …` would have recorded, for a run without it. Read from
    /proc (Linux); None elsewhere, or when this process was not started by torchrun."""
    if "TORCHELASTIC_RUN_ID" not in os.environ:
        return None
    try:
        parent = os.getppid()
        with open(f"/proc/{parent}/cmdline", "rb") as f:
            words = [os.fsdecode(w) for w in f.read().split(b"\0") if w]
        with open(f"/proc/{parent}/environ", "rb") as f:
            pairs = [item.partition(b"=") for item in f.read().split(b"\0") if item]
    except OSError:
        return None
    if len(words) > 1 and os.path.basename(words[1]) == "torchrun":
        words = ["torchrun", *words[2:]]  # the interpreter running the `torchrun` script
    elif not words or (os.path.basename(words[0]) != "torchrun" and "-m" not in words[:3]):
        return None  # not torchrun itself (an elastic agent of another kind)
    return words, {os.fsdecode(k): os.fsdecode(v) for k, _, v in pairs}
