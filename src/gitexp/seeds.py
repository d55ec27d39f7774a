"""Seeding (`gitexp.seed_everything`) and what seeded a run (seeds.yaml).

gitexp records seeds; it never invents one.
"""

from __future__ import annotations

import importlib.util
import os
import random
import sys
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib.machinery import ModuleSpec
from types import ModuleType
from typing import Any

from gitexp import yamlio
from gitexp.errors import UsageError

# Variables through which a seed reaches the training process.
SEED_VARIABLES = ("GITEXP_SEED", "PYTHONHASHSEED")
# PYTHONHASHSEED, numpy and `random` agree on this range: outside it every Python child dies.
SEED_MAX = 2**32 - 1
DETERMINISM_VARIABLE = "CUBLAS_WORKSPACE_CONFIG"  # recorded in seeds.yaml, compared as seed
CUBLAS_WORKSPACE = ":4096:8"  # what deterministic cuBLAS needs (CUDA docs, "reproducibility")


@dataclass
class Seeding:
    """What `seed_everything` did in this process: seeds.yaml's `rngs` and `deterministic`."""

    seed: int | None = None
    rngs: dict[str, int] = field(default_factory=dict)
    deterministic: dict[str, Any] = field(default_factory=dict)
    wanted_deterministic: bool = False


_STATE = Seeding()
_LOCK = threading.Lock()


def current() -> Seeding:
    return _STATE


def check_seed(seed: int) -> int:
    """`seed`, refused as a UsageError unless it is an int from 0 to 2**32 - 1."""
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise TypeError(f"seed must be an int, not {type(seed).__name__}")
    if not 0 <= seed <= SEED_MAX:
        raise UsageError(f"seed {seed} is out of range; use a seed from 0 to {SEED_MAX}")
    return seed


def parse(text: str, source: str) -> int:
    """A seed given as text (an environment variable), checked like any other."""
    try:
        return check_seed(int(text))
    except ValueError:
        raise UsageError(f"{source}={text!r} is not a seed; use a whole number from 0 to "
                         f"{SEED_MAX}") from None  # fmt: skip


def child_variables(seed: int | None) -> dict[str, str]:
    """What `gitexp run --seed N` exports to the command."""
    return {} if seed is None else {name: str(check_seed(seed)) for name in SEED_VARIABLES}


def _seed_numpy(module: ModuleType, seed: int) -> None:
    module.random.seed(seed)
    _STATE.rngs["numpy"] = seed


def _seed_torch(module: ModuleType, seed: int) -> None:
    module.manual_seed(seed)  # seeds the CPU generator and every CUDA device's
    _STATE.rngs["torch"] = seed
    if module.cuda.is_available():
        module.cuda.manual_seed_all(seed)
        _STATE.rngs["cuda"] = seed
    if _STATE.wanted_deterministic:
        module.use_deterministic_algorithms(True)
        module.backends.cudnn.deterministic = True
        module.backends.cudnn.benchmark = False
        _STATE.deterministic.update(
            torch_deterministic_algorithms=True, cudnn_deterministic=True, cudnn_benchmark=False
        )


_SEEDERS = {"numpy": _seed_numpy, "torch": _seed_torch}


class _SeedOnImport:  # an import-system finder (sys.meta_path protocol)
    """Seeds numpy or torch the moment the training script imports it.

    `seed_everything` must not import torch itself (a second of start-up for scripts that
    never use it), yet a script that imports torch after seeding must get a seeded torch.
    """

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> ModuleSpec | None:
        if fullname not in _SEEDERS or _STATE.seed is None:
            return None
        sys.meta_path.remove(self)
        try:
            spec = importlib.util.find_spec(fullname)
        finally:
            sys.meta_path.insert(0, self)
        if spec is None or spec.loader is None:
            return None
        loader = spec.loader
        original = loader.exec_module

        def exec_and_seed(module: ModuleType) -> None:
            original(module)
            if _STATE.seed is not None:
                _SEEDERS[fullname](module, _STATE.seed)

        loader.exec_module = exec_and_seed  # type: ignore[method-assign]
        return spec


_HOOK = _SeedOnImport()


def seed_everything(seed: int, deterministic: bool = False) -> Seeding:
    """Seed python's `random`, numpy, torch (CPU and CUDA) and PYTHONHASHSEED for children.

    numpy and torch are seeded now if imported, else the moment they are imported.
    `deterministic=True` also makes torch and cuDNN choose deterministic algorithms and sets
    CUBLAS_WORKSPACE_CONFIG. What was set goes into the run's seeds.yaml. A seed outside
    0…2**32 - 1 is a UsageError.
    """
    check_seed(seed)  # before anything is seeded: out of range, PYTHONHASHSEED kills children
    with _LOCK:
        _STATE.seed = seed
        _STATE.wanted_deterministic = deterministic
        random.seed(seed)
        _STATE.rngs["python"] = seed
        os.environ["PYTHONHASHSEED"] = str(seed)  # this process's hash seed is already fixed
        if deterministic:
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", CUBLAS_WORKSPACE)
            _STATE.deterministic["CUBLAS_WORKSPACE_CONFIG"] = os.environ["CUBLAS_WORKSPACE_CONFIG"]
        for name, seeder in _SEEDERS.items():
            module = sys.modules.get(name)
            if module is not None:
                seeder(module, seed)
        if _HOOK not in sys.meta_path:
            sys.meta_path.insert(0, _HOOK)
    return _STATE


def record(seed: int | None, env: Mapping[str, str], seeding: Seeding | None = None) -> bytes:
    """seeds.yaml: the seed given, the seed variables the run saw, and the RNGs seeded."""
    variables = {name: env[name] for name in SEED_VARIABLES if name in env}
    rngs = dict(seeding.rngs) if seeding else {}
    deterministic = dict(seeding.deterministic) if seeding else {}
    if DETERMINISM_VARIABLE in env:  # set by hand or by seed_everything: a determinism flag
        deterministic.setdefault(DETERMINISM_VARIABLE, env[DETERMINISM_VARIABLE])
    if seeding is not None and seeding.seed is not None:
        seed = seeding.seed
    data: dict[str, Any] = {
        "seed": seed,
        "variables": variables,
        "rngs": dict(sorted(rngs.items())),
        "deterministic": dict(sorted(deterministic.items())),
    }
    if seed is None and not variables:
        data["note"] = (
            "unseeded: no seed was given, so differences from another unseeded run may be noise"
        )
    return yamlio.dump(data)
