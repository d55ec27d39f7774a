"""gitexp's start-up hook: `gitexp run` puts this folder first on the command's PYTHONPATH.

Every Python process of the run loads it at start-up, the way coverage.py reaches
subprocesses, so that the run records what the script really used (its parsed arguments,
the seeds it set, its interpreter) with no change to the script. Standard library only:
the command's interpreter may not have gitexp installed. Any `sitecustomize` this one
shadows is loaded after it, so the interpreter's own start-up still happens.
"""

import os
import sys


def _chain(here: str) -> None:
    """Load the `sitecustomize` that would have run without us, if there is one."""
    rest = [p for p in sys.path if os.path.realpath(p or ".") != here]
    if not any(os.path.exists(os.path.join(p or ".", "sitecustomize.py")) for p in rest):
        return  # most interpreters have none: importlib.util costs a short script 5 ms
    from importlib.machinery import PathFinder
    from importlib.util import module_from_spec

    spec = PathFinder.find_spec("sitecustomize", rest)
    if spec is None or spec.loader is None:
        return
    module = module_from_spec(spec)
    sys.modules["sitecustomize"] = module
    spec.loader.exec_module(module)


def _boot() -> None:
    here = os.path.dirname(os.path.realpath(__file__))
    # The script sees its usual sys.path; PYTHONPATH keeps the hook for its own children.
    sys.path[:] = [p for p in sys.path if os.path.realpath(p or ".") != here]
    if os.environ.get("GITEXP_RUN_DIR"):
        try:
            sys.path.insert(0, here)
            import _gitexp_boot  # type: ignore[import-not-found]
        finally:
            sys.path.remove(here)
        _gitexp_boot.start()
    _chain(here)


try:
    _boot()
except Exception as error:  # never stop the command from starting
    print(f"gitexp: the start-up hook failed ({error!r}); the run records less", file=sys.stderr)
