from __future__ import annotations

import pytest

from gitexp.argv import parse
from gitexp.secrets_scan import redact_argv


@pytest.mark.parametrize(
    ("command", "expected"),
    [
        (["python", "train.py", "--lr", "0.1"], {"lr": 0.1, "_": ["train.py"]}),
        (["python", "train.py", "--lr=0.1"], {"lr": 0.1, "_": ["train.py"]}),
        (["python", "train.py", "--amp"], {"amp": True, "_": ["train.py"]}),
        (["python", "a.py", "data.csv"], {"_": ["a.py", "data.csv"]}),
        (["python", "a.py", "--lr", "-1e-3"], {"lr": -0.001, "_": ["a.py"]}),
        (["python", "a.py", "--x", "1", "--x", "2"], {"x": [1, 2], "_": ["a.py"]}),
        (["python", "a.py", "--", "--raw"], {"_": ["a.py", "--raw"]}),
        (["python", "a.py", "--name", "a b"], {"name": "a b", "_": ["a.py"]}),
        (["./run.sh", "-k", "3"], {"k": 3, "_": ["./run.sh"]}),
    ],
)
def test_options_become_config(command: list[str], expected: dict[str, object]) -> None:
    assert parse(command) == expected


def test_interpreter_options_are_not_the_scripts() -> None:
    assert parse(["python3", "-u", "-W", "ignore", "-m", "pkg.train", "--bs", "8"]) == {
        "bs": 8,
        "_": ["-m", "pkg.train"],  # the interpreter and its options are env, not config
    }


def test_different_scripts_differ_in_positionals() -> None:
    assert parse(["python", "a.py"])["_"] != parse(["python", "b.py"])["_"]


def test_secrets_are_redacted_in_every_spelling() -> None:
    command = [
        "env",
        "HF_API_KEY=abc",
        "python",
        "t.py",
        "--token=xyz",
        "--password",
        "pw",
        "--lr",
        "1",
    ]
    assert redact_argv(command)[0] == [
        "env",
        "HF_API_KEY=<redacted>",
        "python",
        "t.py",
        "--token=<redacted>",
        "--password",
        "<redacted>",
        "--lr",
        "1",
    ]
