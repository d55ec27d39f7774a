from __future__ import annotations

from pathlib import Path

import pytest

from gitexp.config import flatten, resolve
from gitexp.errors import GitexpError


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("c.yaml", "optim:\n  lr: 0.1\nlayers: [64, 32]\n"),
        ("c.json", '{"optim": {"lr": 0.1}, "layers": [64, 32]}'),
        ("c.toml", "layers = [64, 32]\n[optim]\nlr = 0.1\n"),
    ],
)
def test_each_format_resolves_alike(tmp_path: Path, name: str, text: str) -> None:
    path = tmp_path / name
    path.write_text(text)
    assert resolve([path], [], {"_": ["python"]}) == {
        "argv": {"_": ["python"]},
        "layers": [64, 32],
        "optim": {"lr": 0.1},
    }


def test_overrides_win_and_are_typed(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("optim:\n  lr: 0.1\n  name: adam\n")
    config = resolve([path], ["optim.lr=3e-4", "amp=true", "tag=v1"], {})
    assert config["optim"] == {"lr": 0.0003, "name": "adam"}
    assert config["amp"] is True
    assert config["tag"] == "v1"


def test_keys_are_sorted_at_every_level(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("z: 1\na:\n  y: 2\n  b: 3\n")
    config = resolve([path], [], {})
    assert list(config) == ["a", "argv", "z"]
    assert list(config["a"]) == ["b", "y"]


def test_flatten_gives_dotted_leaves() -> None:
    assert flatten({"optim": {"lr": 0.1, "betas": [0.9, 0.99]}, "e": {}}) == {
        "optim.lr": 0.1,
        "optim.betas": [0.9, 0.99],
        "e": {},
    }


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("bad.yaml", "a: [1,\n", "bad.yaml is not valid YAML"),
        ("bad.json", "{", "cannot be parsed"),
        ("list.yaml", "- 1\n", "must hold a mapping"),
        ("conf.ini", "[a]\n", "must end in .yaml, .yml, .json or .toml"),
    ],
)
def test_bad_config_files_are_one_clear_error(
    tmp_path: Path, name: str, text: str, message: str
) -> None:
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(GitexpError, match=message):
        resolve([path], [], {})


def test_override_without_equals_is_refused() -> None:
    with pytest.raises(GitexpError, match="must look like key=value"):
        resolve([], ["lr"], {})
