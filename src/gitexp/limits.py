"""Hard limits on what gitexp reads from a user or a record, and the one walk that enforces them.

A loaded YAML document can hold the same node many times (an alias) or itself (an alias to
an ancestor): ruamel loads a "billion laughs" document in milliseconds as shared references,
and it only explodes later, in a merge or a dump. `plain` walks a value iteratively, counts
every node each time it is reached, and returns a fresh copy that shares nothing.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from gitexp.errors import GitexpError, UsageError


@dataclass(frozen=True)
class Limits:
    """How large a document may be: nesting, nodes visited (aliases each time) and bytes."""

    depth: int
    nodes: int
    file_size: int

    def size_text(self) -> str:
        mib = self.file_size / (1024 * 1024)
        return f"{mib:g} MiB" if mib >= 1 else f"{self.file_size} bytes"


# Real configurations nest a few levels and hold hundreds of values; these leave room for
# thousands while every recursive reader (merge, flatten, the YAML emitter) stays far from
# Python's recursion limit and a whole config still loads, merges and dumps in a second.
CONFIG = Limits(depth=64, nodes=100_000, file_size=4 * 1024 * 1024)

_SCALARS = (str, int, float, bool, datetime.date)  # datetime.datetime is a date
_KEYS = (str, int, float, bool)


def check_size(
    size: int, source: str, limits: Limits = CONFIG, error: type[GitexpError] = UsageError
) -> None:
    """Refuse a document of `size` bytes when it is over the file size limit."""
    if size > limits.file_size:
        raise error(
            f"{source} is larger than the {limits.size_text()} gitexp reads; make it smaller"
        )


def too_deep(
    source: str, limits: Limits = CONFIG, error: type[GitexpError] = UsageError
) -> GitexpError:
    """The error for a document that nests deeper than `limits.depth`."""
    return error(
        f"{source} nests more than {limits.depth} levels deep (a YAML alias counts where it "
        "is used); flatten it"
    )


def too_many(
    source: str, limits: Limits = CONFIG, error: type[GitexpError] = UsageError
) -> GitexpError:
    """The error for a document with more than `limits.nodes` keys and values."""
    return error(
        f"{source} holds more than {limits.nodes:,} keys and values (each use of a YAML "
        "alias counts); make it smaller"
    )


class _Where:
    """A node's place in the document, kept as a link to its parent: built only for errors."""

    __slots__ = ("key", "parent")

    def __init__(self, parent: _Where | None, key: object) -> None:
        self.parent, self.key = parent, key

    def __str__(self) -> str:
        parts: list[str] = []
        node: _Where | None = self
        while node is not None:
            parts.append(str(node.key))
            node = node.parent
        return ".".join(reversed(parts)) or "the top level"


def plain(
    value: Any, source: str, limits: Limits = CONFIG, error: type[GitexpError] = UsageError
) -> Any:
    """A fresh copy of `value` as dicts with str keys, lists and scalars, within `limits`.

    Raises `error`, naming `source`, for a document that nests too deep or holds too many
    nodes (an alias counts each time it is reached, so alias bombs and cycles are caught),
    for a key that is not a plain scalar or that repeats once written as text, and for a
    value YAML, JSON and TOML have no plain form of. Never recurses.
    """
    root: list[Any] = [None]
    # (value, depth of its container, the container to fill, index or key there, where)
    stack: list[tuple[Any, int, Any, Any, _Where | None]] = [(value, 0, root, 0, None)]
    visited = 0
    while stack:
        item, depth, target, slot, where = stack.pop()
        visited += 1
        if visited > limits.nodes:
            raise too_many(source, limits, error)
        if isinstance(item, Mapping):
            if depth + 1 > limits.depth:
                raise too_deep(source, limits, error)
            copy: dict[str, Any] = {}
            for key in item:
                if not isinstance(key, _KEYS) and key is not None:
                    raise error(
                        f"{source}: a key under {where or 'the top level'} is a "
                        f"{type(key).__name__}; keys must be names or numbers"
                    )
                text = str(key)
                if text in copy:
                    raise error(
                        f"{source}: {_Where(where, text)} is given twice (keys are compared "
                        "as text); keep one"
                    )
                copy[text] = None
            visited += len(copy)  # the keys are nodes too
            if visited > limits.nodes:
                raise too_many(source, limits, error)
            target[slot] = copy
            for key, child in reversed(list(item.items())):
                text = str(key)
                stack.append((child, depth + 1, copy, text, _Where(where, text)))
        elif isinstance(item, (list, tuple)):
            if depth + 1 > limits.depth:
                raise too_deep(source, limits, error)
            items: list[Any] = [None] * len(item)
            target[slot] = items
            for index in range(len(item) - 1, -1, -1):
                stack.append((item[index], depth + 1, items, index, _Where(where, index)))
        elif item is None or isinstance(item, _SCALARS):
            target[slot] = _scalar(item)
        elif isinstance(item, datetime.time):  # TOML's local time: YAML has no such type
            target[slot] = item.isoformat()
        else:
            raise error(
                f"{source}: {where or 'the document'} is a {type(item).__name__} value, which "
                "a config cannot hold; write it as text, a number, a list or a mapping"
            )
    return root[0]


def _scalar(value: Any) -> Any:
    """A scalar of exactly its plain type, never one shared with the loaded document."""
    if isinstance(value, bool) or value is None:
        return value
    for kind in (str, int, float):
        if isinstance(value, kind):
            return kind(value)
    # A date or datetime: a new object, so that the YAML emitter never writes an anchor.
    assert isinstance(value, datetime.date)
    return value.replace()
