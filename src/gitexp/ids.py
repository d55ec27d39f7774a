"""Run ids: unique across machines without coordination, sortable by start time, short."""

from __future__ import annotations

import re
import secrets
import string
from datetime import datetime, timezone

_ALPHABET = string.ascii_lowercase + string.digits
SUFFIX_LENGTH = 6
ID_PATTERN = re.compile(rf"^\d{{8}}-\d{{6}}-[a-z0-9]{{{SUFFIX_LENGTH}}}$")


def new_run_id(started: datetime) -> str:
    """`20261122-130351-k3f9qz`: UTC start time, then a random suffix.

    The suffix comes from `secrets`, never the global `random`, which training code seeds:
    two runs seeded alike on two machines must still get different ids.
    """
    stamp = started.astimezone(timezone.utc).strftime("%Y%m%d-%H%M%S")
    suffix = "".join(secrets.choice(_ALPHABET) for _ in range(SUFFIX_LENGTH))
    return f"{stamp}-{suffix}"


def suffix_of(run_id: str) -> str:
    """The random part of a run id, which names a run on its own."""
    return run_id.rsplit("-", 1)[-1]
