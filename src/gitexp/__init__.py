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


def __getattr__(name: str) -> Any:
    if name in ("Run", "current", "init"):
        from gitexp import api

        return getattr(api, name)
    if name == "seed_everything":
        from gitexp.seeds import seed_everything

        return seed_everything
    raise AttributeError(f"module 'gitexp' has no attribute {name!r}")
