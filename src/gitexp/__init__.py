"""gitexp: a git-native experiment tracker.

    import gitexp

    with gitexp.init(config=cfg, seed=0) as run:
        for step in range(steps):
            run.log({"train/loss": loss}, step=step)

Importing gitexp is cheap: the API loads on first use, and torch, DVC and numpy only when
a feature needs them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = ["Run", "current", "init", "seed_everything"]

if TYPE_CHECKING:
    from gitexp.api import Run, current, init
    from gitexp.seeds import seed_everything


def _watch_seeds() -> None:
    """A training script that imports gitexp has the seeds it sets observed from then on, so
    `torch.manual_seed(args.seed)` before `gitexp.init` is still in seeds.yaml. Not in
    gitexp's own command line, and not under `gitexp run`, whose start-up hook does it."""
    import os
    import sys

    program = os.path.basename(sys.argv[0]) if sys.argv else ""
    if os.environ.get("GITEXP_RUN_DIR") or program in ("gitexp", "git-exp", "-m", "__main__.py"):
        return
    from gitexp import boot

    boot.load().watch()


_watch_seeds()


def __getattr__(name: str) -> Any:
    if name in ("Run", "current", "init"):
        from gitexp import api

        return getattr(api, name)
    if name == "seed_everything":
        from gitexp.seeds import seed_everything

        return seed_everything
    raise AttributeError(f"module 'gitexp' has no attribute {name!r}")
