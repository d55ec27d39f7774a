"""A command line read as configuration: `--lr 0.1` and `--lr=0.1` become `argv.lr`."""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from typing import Any

from gitexp.yamlio import typed_value

POSITIONAL = "_"

# Options of the Python interpreter itself: they come before the script and are not the
# script's configuration. Those that take a value swallow the next word.
_PYTHON_FLAGS_WITH_VALUE = {"-W", "-X", "--check-hash-based-pycs"}
_PYTHON_PROGRAM = {"-m", "-c"}
_NUMBER = re.compile(r"^-\d|^-\.\d")


def is_python(program: str) -> bool:
    """Whether `program` names a Python interpreter (`python`, `python3.11`, a path to one)."""
    return re.fullmatch(r"python[\d.]*", os.path.basename(program)) is not None


def _interpreter_words(command: Sequence[str]) -> int:
    """How many leading words belong to the interpreter: `python -u train.py` has 3."""
    if not command or not is_python(command[0]):
        return 1 if command else 0
    i = 1
    while i < len(command):
        word = command[i]
        if word in _PYTHON_PROGRAM:
            return min(i + 2, len(command))
        if word in _PYTHON_FLAGS_WITH_VALUE:
            i += 2
        elif word.startswith("-") and word != "-":
            i += 1
        else:
            return i + 1  # the script
    return i


def program(command: Sequence[str]) -> list[str]:
    """What a command runs, without the interpreter that runs it (the interpreter is env):
    `python -u train.py --lr 1` → [train.py], `python -m pkg.train` → [-m, pkg.train],
    `./train.sh --lr 1` → [./train.sh]."""
    if not command:
        return []
    if not is_python(command[0]):
        return [command[0]]
    words = list(command[1 : _interpreter_words(command)])
    for i, word in enumerate(words):
        if word in _PYTHON_PROGRAM:
            return words[i : i + 2]
    return words[-1:] if words and not words[-1].startswith("-") else []


def script_end(command: Sequence[str]) -> int:
    """Where the program's own words start: after the interpreter, its options and the
    script (`python -u train.py --lr 1` → 3)."""
    return _interpreter_words(command)


def is_option(word: str) -> bool:
    """Whether a word is an option (`-k`, `--lr=1`) rather than a value (`-1e-3`, `-`)."""
    return word.startswith("-") and word not in ("-", "--") and not _NUMBER.match(word)


def parse(command: Sequence[str]) -> dict[str, Any]:
    """Read `command` as configuration.

    Options of the program become keys (`--lr 0.1`, `--lr=0.1`, `-k 3`), bare flags are
    true, a repeated option becomes a list, and every other word, the program or script
    included, goes in order to the `_` list so that `python a.py` and `python b.py` differ.
    The interpreter and its own options are not there: `python` against `/usr/bin/python3`
    is a difference of environment, not of configuration.
    A bare flag followed by a positional word cannot be told from an option with a value;
    it is read as the latter, so write `--flag=true` or put positionals first to be exact.
    """
    head = _interpreter_words(command)
    options: dict[str, Any] = {}
    positionals: list[str] = program(command)
    words = list(command[head:])
    i = 0
    while i < len(words):
        word = words[i]
        if word == "--":
            positionals.extend(words[i + 1 :])
            break
        if not is_option(word):
            positionals.append(word)
            i += 1
            continue
        key, has_value, value = word.lstrip("-").partition("=")
        if has_value:
            parsed: Any = typed_value(value)
        elif i + 1 < len(words) and not is_option(words[i + 1]) and words[i + 1] != "--":
            parsed = typed_value(words[i + 1])
            i += 1
        else:
            parsed = True
        i += 1
        if key in options:
            previous = options[key]
            options[key] = [*previous, parsed] if isinstance(previous, list) else [previous, parsed]
        else:
            options[key] = parsed
    result = dict(sorted(options.items()))
    result[POSITIONAL] = positionals
    return result
