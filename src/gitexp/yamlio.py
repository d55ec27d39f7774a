"""ruamel.yaml, configured once: the only place that turns records into text and back."""

from __future__ import annotations

import io
import threading
from collections.abc import Mapping
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

from gitexp.errors import GitexpError


def _dumper() -> YAML:
    yaml = YAML(typ="safe")  # the C emitter when ruamel.yaml.clib is there: 10x faster
    yaml.default_flow_style = False
    yaml.allow_unicode = True
    yaml.width = 4096  # long values (commands, paths) stay on one line and diff cleanly
    # Key order is chosen by the caller; ruamel declares this attribute as None-typed.
    yaml.sort_base_mapping_type_on_output = False  # type: ignore[assignment]
    return yaml


_DUMP = _dumper()
_LOAD = YAML(typ="safe")  # the C loader when ruamel.yaml.clib is there: 4x faster
# A YAML object keeps state while it works: one thread at a time (`gitexp run` writes the
# environment from a thread while the main one writes the outcome).
_LOCK = threading.Lock()


def dump(data: Mapping[str, Any]) -> bytes:
    """Serialise `data` as block-style YAML in the order its keys were given."""
    stream = io.StringIO()
    with _LOCK:
        _DUMP.dump(dict(data), stream)
    return stream.getvalue().encode()


def load(text: bytes | str, source: str) -> Any:
    """Parse YAML, naming `source` in the error if it is malformed."""
    try:
        with _LOCK:
            return _LOAD.load(text)
    except YAMLError as e:
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise GitexpError(f"{source} is not valid YAML ({reason}); fix or remove it") from None


def typed_value(text: str) -> Any:
    """Type a command-line value the way YAML would: `0.1` a float, `true` a bool, `[1, 2]` a list.

    Anything YAML would read as a mapping, or cannot read, stays the string it was.
    """
    if not text.strip():
        return text
    try:
        with _LOCK:
            value = _LOAD.load(text)
    except YAMLError:
        return text
    return text if isinstance(value, dict) else value
