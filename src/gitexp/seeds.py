"""What seeded a run's randomness (seeds.yaml). gitexp records seeds; it never invents one."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gitexp import yamlio

# Variables through which a seed reaches the training process.
SEED_VARIABLES = ("GITEXP_SEED", "PYTHONHASHSEED")


def child_variables(seed: int | None) -> dict[str, str]:
    """What `gitexp run --seed N` exports to the command."""
    return {} if seed is None else {name: str(seed) for name in SEED_VARIABLES}


def record(seed: int | None, env: Mapping[str, str]) -> bytes:
    """seeds.yaml at launch: the seed given, and the seed variables the command sees."""
    variables = {name: env[name] for name in SEED_VARIABLES if name in env}
    data: dict[str, Any] = {"seed": seed, "variables": variables, "rngs": {}, "deterministic": {}}
    if seed is None and not variables:
        data["note"] = (
            "unseeded: no seed was given, so differences from another unseeded run may be noise"
        )
    return yamlio.dump(data)
