"""gitexp's start-up hook (sitecustomize.py) and the observing module it loads.

This folder goes first on the PYTHONPATH of every command `gitexp run` starts; only
`sitecustomize` is meant to be found there. gitexp itself reaches the observing module
through `load`, so that one instance of it serves a process, however it was loaded.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from types import ModuleType

FOLDER = os.path.dirname(os.path.abspath(__file__))  # os.path: `import gitexp` stays cheap
MODULE = "_gitexp_boot"


def load() -> ModuleType:
    """The observing module: the instance the start-up hook loaded, else a new one."""
    module = sys.modules.get(MODULE)
    if module is None:
        import importlib.util

        spec = importlib.util.spec_from_file_location(MODULE, os.path.join(FOLDER, f"{MODULE}.py"))
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[MODULE] = module
        spec.loader.exec_module(module)
    return module


def child_pythonpath(env: Mapping[str, str]) -> str:
    """PYTHONPATH for a command of `gitexp run`: this folder first, the user's own after it."""
    rest = env.get("PYTHONPATH", "")
    return f"{FOLDER}{os.pathsep}{rest}" if rest else FOLDER


def user_pythonpath(value: str) -> str | None:
    """PYTHONPATH as the user set it, without this folder (for env.yaml)."""
    parts = [p for p in value.split(os.pathsep) if p != FOLDER]
    return os.pathsep.join(parts) or None
