"""The examples and the dataset the project pins with DVC."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

from gitexp import yamlio

EXAMPLES = Path(__file__).parent.parent / "examples"


def test_the_committed_pointer_pins_what_make_data_writes(tmp_path: Path) -> None:
    target = tmp_path / "spirals.csv"
    subprocess.run([sys.executable, str(EXAMPLES / "make_data.py"), str(target)], check=True)
    pointer = yamlio.load((EXAMPLES / "data" / "spirals.csv.dvc").read_bytes(), "pointer")
    (out,) = pointer["outs"]
    content = target.read_bytes()
    assert (out["md5"], out["size"]) == (hashlib.md5(content).hexdigest(), len(content))
