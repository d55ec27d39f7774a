"""JSON for scripts: every value JSON can spell, NaN and infinities as their names."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from datetime import datetime
from typing import Any


def json_safe(value: Any) -> Any:
    """NaN and infinities as strings: JSON has no spelling for them."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, Mapping):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def as_json(value: Any) -> str:
    return json.dumps(json_safe(value), indent=2, sort_keys=False)


def line(value: Any) -> str:
    """`value` as JSON on one line."""
    return json.dumps(json_safe(value))
