"""The resolved configuration of a run: config files, `-p` overrides and the command's options."""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from gitexp import limits, yamlio
from gitexp.errors import GitexpError, UsageError


def _toml(text: str) -> Any:
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - exercised on 3.10 only
        import tomli as tomllib
    return tomllib.loads(text)


CONFIG_SUFFIXES = (".yaml", ".yml", ".json", ".toml")
ARGV = "argv"  # the key that holds the command's own options, set last
# A `-p` key: dotted names of letters, digits, `_` and `-`; never a path (`../x`, `a..b`).
_KEY = re.compile(r"[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*")


def _read(path: Path, source: str) -> bytes:
    """The file's bytes, refusing it once it is past the size limit (never read whole)."""
    try:
        with path.open("rb") as stream:
            raw = stream.read(limits.CONFIG.file_size + 1)
    except OSError as e:
        raise UsageError(f"cannot read {source}: {e.strerror}") from None
    limits.check_size(len(raw), source)
    return raw


def load_file(path: Path) -> dict[str, Any]:
    """Read a YAML, JSON or TOML file whose top level is a mapping, within `limits.CONFIG`.

    The result is a fresh copy: plain dicts, lists and scalars, no value shared by two keys.
    """
    source = f"config file {path}"
    suffix = path.suffix.lower()
    if suffix not in CONFIG_SUFFIXES:
        raise UsageError(f"{source} must end in .yaml, .yml, .json or .toml to say its format")
    raw = _read(path, source)
    if suffix in (".yaml", ".yml"):
        try:
            data = yamlio.load_bounded(raw, source)
        except UsageError:
            raise
        except GitexpError as e:  # malformed: a file given on the command line, so usage
            raise UsageError(str(e)) from None
    else:
        try:
            data = json.loads(raw) if suffix == ".json" else _toml(raw.decode())
        except (ValueError, UnicodeDecodeError) as e:  # JSONDecodeError and TOMLDecodeError
            raise UsageError(f"{source} cannot be parsed ({e}); fix it") from None
        except RecursionError:  # both parsers recurse once per level of nesting
            raise limits.too_deep(source) from None
        data = limits.plain(data, source)
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise UsageError(f"{source} must hold a mapping of keys to values at its top")
    return data


def parse_override(text: str) -> tuple[str, Any]:
    """`optim.lr=0.1` → ("optim.lr", 0.1)."""
    key, has_value, value = text.partition("=")
    key = key.strip()
    if not has_value or not key:
        raise UsageError(f"parameter {text!r} must look like key=value, e.g. -p optim.lr=0.1")
    if not _KEY.fullmatch(key):
        raise UsageError(
            f"parameter key {key[:80]!r} must be dotted names made of letters, digits, _ and -, "
            "e.g. -p optim.lr=0.1"
        )
    if key.split(".", 1)[0] == ARGV:
        raise UsageError(
            f"parameter key {key!r} is under {ARGV}, which holds the command's own options; "
            "change the option on the command, or pick another key"
        )
    if key.count(".") + 1 > limits.CONFIG.depth:
        raise UsageError(
            f"parameter key {key[:40]}… has {key.count('.') + 1} levels, more than the "
            f"{limits.CONFIG.depth} a config may nest; use a shorter key"
        )
    return key, yamlio.typed_value(value, f"parameter -p {key}")


def _same(a: Any, b: Any) -> bool:
    return type(a) is type(b) and (a == b or (a != a and b != b))  # NaN twice is the same


def parse_overrides(texts: Sequence[str]) -> list[tuple[str, Any]]:
    """Every `-p`, refusing a key given twice with two values or along with a key inside it."""
    given: dict[str, tuple[str, Any]] = {}
    for text in texts:
        key, value = parse_override(text)
        raw = text.partition("=")[2]
        if key in given and given[key][0] != raw and not _same(given[key][1], value):
            raise UsageError(
                f"parameter -p {key} is given twice, as {given[key][0]!r} and {raw!r}; give it once"
            )
        given[key] = (raw, value)
    for key in given:
        parts = key.split(".")
        for end in range(1, len(parts)):
            outer = ".".join(parts[:end])
            if outer in given:
                raise UsageError(
                    f"parameters -p {outer}=… and -p {key}=… conflict, as {key} is a key inside "
                    f"{outer}; give one of them"
                )
    return [(key, value) for key, (_, value) in given.items()]


def set_dotted(config: dict[str, Any], key: str, value: Any) -> None:
    """Set `a.b.c` in a nested mapping, creating the levels that are missing."""
    *parents, leaf = key.split(".")
    node = config
    for part in parents:
        child = node.get(part)
        if not isinstance(child, dict):
            child = node[part] = {}
        node = child
    node[leaf] = value


def merge(base: dict[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    """Deep-merge `extra` over `base`: nested mappings merge, anything else replaces."""
    result = dict(base)
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(result.get(key), dict):
            result[key] = merge(result[key], value)
        else:
            result[key] = value
    return result


def sort_keys(value: Any) -> Any:
    """Sort mappings at every level so that two configs always diff cleanly."""
    if isinstance(value, Mapping):
        return {str(k): sort_keys(value[k]) for k in sorted(value, key=str)}
    if isinstance(value, (list, tuple)):
        return [sort_keys(v) for v in value]
    return value


def flatten(config: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested mapping → dotted leaves: {"optim": {"lr": 0.1}} → {"optim.lr": 0.1}."""
    flat: dict[str, Any] = {}
    for key, value in config.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            flat.update(flatten(value, dotted + "."))
        else:
            flat[dotted] = value
    return flat


def resolve(
    files: Sequence[Path], overrides: Sequence[str], command_options: Mapping[str, Any]
) -> dict[str, Any]:
    """Files in order, then `-p` overrides, then the command's own options under `argv`."""
    config: dict[str, Any] = {}
    for path in files:
        loaded = load_file(path)
        if ARGV in loaded:
            raise UsageError(
                f"config file {path} has a top-level `{ARGV}`, which holds the command's own "
                "options; rename that key"
            )
        config = merge(config, loaded)
    for key, value in parse_overrides(overrides):
        set_dotted(config, key, value)
    config = limits.plain(config, "the config of --config files and -p parameters together")
    config[ARGV] = dict(command_options)
    resolved: dict[str, Any] = sort_keys(config)
    return resolved


def merge_strict(base: Mapping[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    """Merge two configurations that must agree wherever both set a key."""
    ours, theirs = flatten(base), flatten(extra)
    clashes = sorted(k for k in ours.keys() & theirs.keys() if ours[k] != theirs[k])
    if clashes:
        from gitexp import secrets_scan  # the values may be secrets: never print those

        key = clashes[0]
        shown, _ = secrets_scan.redact_config({"a": {key: ours[key]}, "b": {key: theirs[key]}})
        raise GitexpError(
            f"config key {key!r} is {shown['a'][key]!r} on the command line but "
            f"{shown['b'][key]!r} in code ({len(clashes)} such keys); set each key in one place"
        )
    merged: dict[str, Any] = sort_keys(merge(dict(base), extra))
    return merged
