"""The resolved configuration of a run: config files, `-p` overrides and the command's options."""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from gitexp import yamlio
from gitexp.errors import GitexpError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

CONFIG_SUFFIXES = (".yaml", ".yml", ".json", ".toml")


def load_file(path: Path) -> dict[str, Any]:
    """Read a YAML, JSON or TOML file whose top level is a mapping."""
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise GitexpError(f"cannot read config file {path}: {e.strerror}") from None
    suffix = path.suffix.lower()
    try:
        if suffix == ".json":
            data = json.loads(raw)
        elif suffix == ".toml":
            data = tomllib.loads(raw.decode())
        elif suffix in (".yaml", ".yml"):
            data = yamlio.load(raw, str(path))
        else:
            raise GitexpError(
                f"config file {path} must end in .yaml, .yml, .json or .toml to say its format"
            )
    except (ValueError, UnicodeDecodeError) as e:  # JSONDecodeError and TOMLDecodeError
        raise GitexpError(f"config file {path} cannot be parsed ({e}); fix it") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise GitexpError(f"config file {path} must hold a mapping of keys to values at its top")
    return data


def parse_override(text: str) -> tuple[str, Any]:
    """`optim.lr=0.1` → ("optim.lr", 0.1)."""
    key, has_value, value = text.partition("=")
    if not has_value or not key.strip():
        raise GitexpError(f"parameter {text!r} must look like key=value, e.g. -p optim.lr=0.1")
    return key.strip(), yamlio.typed_value(value)


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
        config = merge(config, load_file(path))
    for text in overrides:
        key, value = parse_override(text)
        set_dotted(config, key, value)
    config["argv"] = dict(command_options)
    resolved: dict[str, Any] = sort_keys(config)
    return resolved


def merge_strict(base: Mapping[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    """Merge two configurations that must agree wherever both set a key."""
    ours, theirs = flatten(base), flatten(extra)
    clashes = sorted(k for k in ours.keys() & theirs.keys() if ours[k] != theirs[k])
    if clashes:
        key = clashes[0]
        raise GitexpError(
            f"config key {key!r} is {ours[key]!r} on the command line but {theirs[key]!r} in "
            f"code ({len(clashes)} such keys); set each key in one place"
        )
    merged: dict[str, Any] = sort_keys(merge(dict(base), extra))
    return merged
