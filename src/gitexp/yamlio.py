"""ruamel.yaml, configured once: the only place that turns records into text and back.

ruamel is loaded on first use: a listing from the index parses no YAML and need not pay for it.
"""

from __future__ import annotations

import io
import json
import math
import threading
from collections.abc import Mapping
from contextlib import closing
from typing import TYPE_CHECKING, Any

from gitexp import limits
from gitexp.errors import GitexpError, UsageError

if TYPE_CHECKING:
    from ruamel.yaml import YAML


def _dumper() -> YAML:
    from ruamel.yaml import YAML

    yaml = YAML(typ="safe")  # the C emitter when ruamel.yaml.clib is there: 10x faster
    yaml.default_flow_style = False
    yaml.allow_unicode = True
    yaml.width = 4096  # long values (commands, paths) stay on one line and diff cleanly
    # Key order is chosen by the caller; ruamel declares this attribute as None-typed.
    yaml.sort_base_mapping_type_on_output = False  # type: ignore[assignment]
    # Never write an anchor (&id001) and an alias for a value met twice: each place holds
    # its own copy, so a record reads the same to any reader, and none needs aliases.
    yaml.representer.ignore_aliases = lambda data: True
    return yaml


_DUMP: YAML | None = None
_LOAD: YAML | None = None
# A YAML object keeps state while it works: one thread at a time (`gitexp run` writes the
# environment from a thread while the main one writes the outcome).
_LOCK = threading.Lock()


def _loader() -> YAML:
    """The loader, made on first use; call with _LOCK held."""
    global _LOAD
    if _LOAD is None:
        from ruamel.yaml import YAML

        _LOAD = YAML(typ="safe")  # the C loader when ruamel.yaml.clib is there: 4x faster
    return _LOAD


def dump(data: Mapping[str, Any]) -> bytes:
    """Serialise `data` as block-style YAML in the order its keys were given.

    Text that holds bytes which were not UTF-8 (a command line, Python keeps them as
    surrogates) is written with those bytes as `\\xNN` escapes.
    """
    global _DUMP
    stream = io.StringIO()
    with _LOCK:
        try:
            if _DUMP is None:
                _DUMP = _dumper()
            _DUMP.dump(dict(data), stream)
            return stream.getvalue().encode()
        except UnicodeEncodeError:
            stream = io.StringIO()
            _DUMP = _dumper()  # a failed dump leaves the emitter broken for the next one
            _DUMP.dump(_texts(dict(data)), stream)
            return stream.getvalue().encode()
        except Exception:
            _DUMP = _dumper()
            raise


def text(value: str) -> str:
    """`value` as text any UTF-8 file can hold: bytes that were not UTF-8 as `\\xNN`."""
    try:
        return value.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:  # a surrogate that stands for no byte
        return value.encode("utf-8", "backslashreplace").decode("utf-8")


def _texts(value: Any) -> Any:
    if isinstance(value, str):
        return text(value)
    if isinstance(value, Mapping):
        return {_texts(k): _texts(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_texts(v) for v in value]
    return value


# ruamel's C composer recurses once per level of nesting and overflows the C stack, killing
# the interpreter, at about 25,000 levels with an 8 MiB stack (less with a smaller one). A
# document of 1 KiB cannot nest deep enough for that; a longer one is scanned first.
_SCAN_ABOVE = 1024
_MAX_DEPTH = 1000  # far past any record or config, far short of the crash


def load(text: bytes | str, source: str) -> Any:
    """Parse YAML, naming `source` in the error if it is malformed or nests past 1000 levels."""
    depth_limit = _MAX_DEPTH if len(text) > _SCAN_ABOVE else None
    return _parse(text, source, depth_limit, None, GitexpError)


def load_bounded(
    text: bytes | str,
    source: str,
    bounds: limits.Limits = limits.CONFIG,
    error: type[GitexpError] = UsageError,
    aliases: bool = True,
    malformed: type[GitexpError] = GitexpError,
) -> Any:
    """Parse YAML within `bounds` into a plain, fresh copy (see `limits.plain`).

    Malformed YAML is `malformed`; a document over the limits is `error`. Without `aliases`,
    any anchor or alias is refused too: gitexp never writes one into a record.
    """
    limits.check_size(len(text), source, bounds, error)
    # Scanned whatever its length: 65 bytes can nest past 64 levels.
    data = _parse(text, source, bounds.depth, bounds, error, aliases, malformed)
    return limits.plain(data, source, bounds, error)


def _parse(
    text: bytes | str,
    source: str,
    depth_limit: int | None,
    bounds: limits.Limits | None,
    error: type[GitexpError],
    aliases: bool = True,
    malformed: type[GitexpError] = GitexpError,
) -> Any:
    """`text` loaded, once a scan of its events finds it within `depth_limit` and `bounds`."""
    from ruamel.yaml.error import YAMLError

    try:
        if depth_limit is not None:
            _check_shape(text, source, depth_limit, bounds, error, aliases)
        with _LOCK:
            return _loader().load(text)
    except (YAMLError, ValueError) as e:  # ValueError: an integer of over 4300 digits
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise malformed(f"{source} is not valid YAML ({reason}); fix or remove it") from None
    except RecursionError:  # the pure-Python loader, where ruamel.yaml.clib is missing
        raise GitexpError(
            f"{source} nests more than {_MAX_DEPTH} levels deep; fix or remove it"
        ) from None


def _check_shape(
    text: bytes | str,
    source: str,
    depth_limit: int,
    bounds: limits.Limits | None,
    error: type[GitexpError],
    aliases: bool = True,
) -> None:
    """Refuse a document deeper than `depth_limit`, or over `bounds`, from its parse events.

    Events come one by one and stop at the limit, before anything is built: building a deep
    document is slow (seconds for 20,000 levels) and, deeper still, crashes (see above).
    Aliases are counted here once; `limits.plain` counts them wherever they are used.
    """
    from ruamel.yaml.events import (
        AliasEvent,
        MappingEndEvent,
        MappingStartEvent,
        ScalarEvent,
        SequenceEndEvent,
        SequenceStartEvent,
    )

    opening = (MappingStartEvent, SequenceStartEvent)
    closing_ = (MappingEndEvent, SequenceEndEvent)
    counted = (ScalarEvent, AliasEvent, *opening)
    depth = nodes = 0
    with _LOCK, closing(_loader().parse(text)) as events:
        for event in events:
            if not aliases and (isinstance(event, AliasEvent) or getattr(event, "anchor", None)):
                raise error(f"{source} holds a YAML anchor or alias, which no record has")
            if bounds is not None and isinstance(event, counted):
                nodes += 1
                if nodes > bounds.nodes:
                    raise limits.too_many(source, bounds, error)
            if isinstance(event, opening):
                depth += 1
                if depth > depth_limit:
                    if bounds is None:
                        raise error(
                            f"{source} nests more than {depth_limit} levels deep; fix or remove it"
                        )
                    raise limits.too_deep(source, bounds, error)
            elif isinstance(event, closing_):
                depth -= 1


def typed_value(text: str, source: str | None = None) -> Any:
    """Type a command-line value the way YAML would: `0.1` a float, `true` a bool, `[1, 2]` a list.

    Anything YAML would read as a mapping, or cannot read, stays the string it was. A value
    over `limits.CONFIG` is refused as a UsageError naming `source`; without a source (a
    value only being displayed) it too stays the string it was.
    """
    if not text.strip():
        return text
    try:
        value = load_bounded(text, source or "a value")
    except UsageError:
        if source is not None:
            raise
        return text
    except GitexpError:
        return text
    return text if isinstance(value, dict) else value


def scalar_text(value: Any) -> str:
    """`value` as a YAML scalar that YAML 1.1 readers (PyYAML) and 1.2 readers (ruamel)
    both read back as it is: `1.0e-05`, not `1e-05`, which PyYAML reads as text."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return ".nan"
        if math.isinf(value):
            return ".inf" if value > 0 else "-.inf"
        mantissa, e, exponent = repr(value).partition("e")
        if "." not in mantissa:
            mantissa += ".0"
        if e and exponent[0] not in "+-":
            exponent = "+" + exponent
        return mantissa + (f"e{exponent}" if e else "")
    return json.dumps(str(value), ensure_ascii=False)  # a double-quoted scalar: any text


def _scalar(text: str, key: str) -> Any:
    """The scalar node at the dotted `key` of a YAML document, or None."""
    from ruamel.yaml import YAML
    from ruamel.yaml.nodes import MappingNode, ScalarNode

    with _LOCK:
        node = YAML(typ="safe", pure=True).compose(text)
    for part in key.split("."):
        if not isinstance(node, MappingNode):
            return None
        found = [v for k, v in node.value if isinstance(k, ScalarNode) and k.value == part]
        if len(found) != 1:
            return None
        node = found[0]
    if not isinstance(node, ScalarNode) or node.start_mark.index == node.end_mark.index:
        return None
    return node


def scalar_at(raw: bytes, key: str) -> str | None:
    """The text that spells the scalar at the dotted `key` of a YAML document, as written."""
    text = raw.decode()
    node = _scalar(text, key)
    return None if node is None else text[node.start_mark.index : node.end_mark.index]


def with_scalar(
    raw: bytes, key: str, value: Any, source: str, spelled: str | None = None
) -> bytes | None:
    """`raw`, a YAML document, with the scalar at the dotted `key` set to `value` and every
    other byte as it was, so that comments, quoting and the spelling of other values (which
    another YAML reader may read otherwise) stay; None when no scalar alone holds `key`.

    `spelled` is the value as another file wrote it: copied as it is, a reader of another
    YAML version reads there what it read there (`off`, `012`)."""
    text = raw.decode()
    node = _scalar(text, key)
    if node is None:
        return None
    new = spelled if spelled is not None else scalar_text(value)
    edited = text[: node.start_mark.index] + new + text[node.end_mark.index :]
    # The same document but for that one value, as a reader sees it, or no edit at all.
    before = load_bounded(raw, source)
    try:
        after = load_bounded(edited.encode(), source)
    except GitexpError:  # the edit took an anchor with it, say
        return None
    if not isinstance(before, dict) or not isinstance(after, dict):
        return None
    *parents, leaf = key.split(".")
    place = before
    for part in parents:
        place = place[part]  # there: the scalar was found along this path
    place[leaf] = value
    return edited.encode() if after == before else None
