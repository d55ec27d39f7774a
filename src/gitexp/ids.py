"""Run ids: unique across machines without coordination, sortable by start time, short."""

from __future__ import annotations

import re
import string
from datetime import datetime, timezone

_ALPHABET = string.digits + string.ascii_lowercase  # in ASCII order, so ids sort as text
RANDOM_LENGTH = 5
ID_PATTERN = re.compile(r"^\d{8}-\d{6}-[0-9a-z]{7}$")


def _base36(number: int, width: int) -> str:
    digits = []
    for _ in range(width):
        number, digit = divmod(number, 36)
        digits.append(_ALPHABET[digit])
    return "".join(reversed(digits))


def new_run_id(started: datetime) -> str:
    """`20261122-130351-0rk3f9q`: UTC start time to the second, then a 7-character suffix.

    The suffix starts with the milliseconds in two base-36 digits, so ids sort by start time
    even within one second, and ends with five random characters. Those come from `secrets`,
    never the global `random`, which training code seeds: two runs seeded alike on two
    machines must still get different ids.
    """
    import secrets  # only a new run needs it: a listing does not load it

    moment = started.astimezone(timezone.utc)
    stamp = moment.strftime("%Y%m%d-%H%M%S")
    chance = "".join(secrets.choice(_ALPHABET) for _ in range(RANDOM_LENGTH))
    return f"{stamp}-{_base36(moment.microsecond // 1000, 2)}{chance}"


def suffix_of(run_id: str) -> str:
    """The part of a run id after the time, which names a run on its own."""
    return run_id.rsplit("-", 1)[-1]
