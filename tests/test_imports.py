from __future__ import annotations

import json
import subprocess
import sys


def _modules_after(code: str) -> set[str]:
    done = subprocess.run(
        [sys.executable, "-c", f"{code}\nimport sys, json; print(json.dumps(sorted(sys.modules)))"],
        capture_output=True,
        text=True,
        check=True,
    )
    return set(json.loads(done.stdout.splitlines()[-1]))


def test_import_gitexp_loads_no_heavy_library() -> None:
    loaded = _modules_after("import gitexp")
    assert not {"torch", "dvc", "numpy", "pygit2", "rich"} & loaded


def test_help_loads_only_the_command_line() -> None:
    loaded = _modules_after("from gitexp.cli import cli\ncli(['--help'], standalone_mode=False)")
    assert not {"torch", "dvc", "numpy", "pygit2", "rich", "ruamel"} & loaded
