"""Hydra: how the config a run used was composed.

A Hydra app needs no change beyond `gitexp.init(config=cfg)`: the composed config is the
record's config, and this module adds, to run.yaml, the overrides the job was launched with
and, in a multirun, the job's number. It reads the Hydra the script already imported, and
only when it did.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gitexp.record import Redaction
    from gitexp.secrets_scan import SecretRules


def job() -> dict[str, Any] | None:
    """The running Hydra job's overrides and number, or None outside a Hydra app."""
    if "hydra" not in sys.modules:
        return None
    try:
        from hydra.core.hydra_config import HydraConfig

        if not HydraConfig.initialized():
            return None
        found = HydraConfig.get()
        overrides = [str(item) for item in found.overrides.task]
        job_conf: Any = found.job  # a DictConfig: `num` exists only in a multirun
        num = job_conf.get("num")
        mode = found.mode.name.lower() if found.mode is not None else "run"
    except Exception:  # another Hydra than the one known: the record goes on without it
        return None
    described: dict[str, Any] = {"mode": mode, "overrides": overrides}
    if mode == "multirun" and num is not None:
        described["job"] = int(num)
    return described


def redacted(
    job: Mapping[str, Any] | None, rules: SecretRules
) -> tuple[dict[str, Any] | None, list[Redaction]]:
    """A job's description with the secrets of its overrides (`db.password=…`) kept out, as
    they are kept out of a command line, and what was kept out."""
    if not job:
        return None, []
    from gitexp import secrets_scan

    overrides, found = secrets_scan.redact_argv(list(job.get("overrides", [])), rules)
    return {**job, "overrides": overrides}, [replace(r, where="hydra.overrides") for r in found]
