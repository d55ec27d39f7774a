"""Seeding (`gitexp.seed_everything`) and what seeded a run (seeds.yaml).

gitexp records seeds; it never invents one.
"""

from __future__ import annotations

import os
import random
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
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
        from gitexp import boot

        # Seeded now if imported, else the moment the script imports it: importing torch
        # here would cost scripts that never use it a second of start-up.
        for name, seeder in _SEEDERS.items():
            module = sys.modules.get(name)
            if module is not None:
                seeder(module, seed)
            else:
                boot.load().after_import(name, partial(_seed_if_wanted, seeder))
    return _STATE


def _seed_if_wanted(seeder: Callable[[ModuleType, int], None], module: ModuleType) -> None:
    if _STATE.seed is not None:
        seeder(module, _STATE.seed)


def record(
    seed: int | None,
    env: Mapping[str, str],
    seeding: Seeding | None = None,
    seen: Mapping[str, Any] | None = None,
) -> bytes:
    """seeds.yaml: the seed the run was given, the seed variables it saw, the seed each RNG
    was set to (as observed in the process, `seen`, or by seed_everything), RNGs drawn from
    before they were seeded, and determinism flags."""
    variables = {name: env[name] for name in SEED_VARIABLES if name in env}
    seen = seen or {}
    rngs = {**(seeding.rngs if seeding else {}), **(seen.get("seeds") or {})}
    rngs = {name: value for name, value in rngs.items() if value is not None}
    deterministic = dict(seeding.deterministic) if seeding else {}
    if DETERMINISM_VARIABLE in env:  # set by hand or by seed_everything: a determinism flag
        deterministic.setdefault(DETERMINISM_VARIABLE, env[DETERMINISM_VARIABLE])
    given = seeding.seed if seeding is not None and seeding.seed is not None else seed
    seed = given
    if seed is None:
        values = {v for v in rngs.values() if isinstance(v, int)}
        seed = values.pop() if len(values) == 1 else None  # the script seeded itself
    data: dict[str, Any] = {
        "seed": seed,
        "variables": variables,
        "rngs": dict(sorted(rngs.items())),
        "deterministic": dict(sorted(deterministic.items())),
    }
    for key in ("reseeded", "later_seeds"):
        if seen.get(key):
            data[key] = dict(sorted(seen[key].items()))
    drawn = sorted(set(seen.get("drawn_before_seeding") or ()))
    if drawn:
        data["drawn_before_seeding"] = drawn
    notes = warnings(given, rngs, drawn, seen.get("later_seeds"))
    if seed is None and not variables and not rngs:
        notes.insert(0, UNSEEDED)
    if notes:
        data["note"] = "; ".join(notes)
    return yamlio.dump(data)


UNSEEDED = "unseeded: no seed was set, so differences from another unseeded run may be noise"


def warnings(
    given: int | None,
    rngs: Mapping[str, Any],
    drawn: Sequence[str],
    later: Mapping[str, Any] | None = None,
) -> list[str]:
    """What makes a run's seed not reproduce it: another seed set by the script, an RNG used
    before it was seeded."""
    found = []
    other = {n: v for n, v in rngs.items() if isinstance(v, int) and v != given}
    if given is not None and other:
        names = ", ".join(f"{n} with {v}" for n, v in sorted(other.items()))
        then = sorted(n for n, v in (later or {}).items() if v == given)
        after = f" (and only later {', '.join(then)} with {given})" if then else ""
        found.append(
            f"the run was given seed {given}, but the script seeded {names}{after}; "
            "seeds.yaml keeps both"
        )
    if drawn:
        found.append(
            f"{' and '.join(drawn)} drew random numbers before being seeded (a model built "
            "before the seed, say), so the seed alone does not reproduce this run; seed first"
        )
    return found


def with_seen(recorded: Mapping[str, Any], seen: Mapping[str, Any]) -> bytes:
    """seeds.yaml as recorded at launch (the seed given, its variables), with the seeds the
    training process was observed to set."""
    variables = recorded.get("variables")
    env = {str(k): str(v) for k, v in variables.items()} if isinstance(variables, dict) else {}
    rngs, flags = recorded.get("rngs"), recorded.get("deterministic")
    given = recorded.get("seed")
    seeding = Seeding(
        seed=given if isinstance(given, int) and not isinstance(given, bool) else None,
        rngs=dict(rngs) if isinstance(rngs, dict) else {},
        deterministic=dict(flags) if isinstance(flags, dict) else {},
    )
    return record(seeding.seed, env, seeding, seen)
