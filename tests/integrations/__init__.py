"""Each integration trained for real, on the CPU, with a tiny model."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from ..conftest import git, gitexp, run_ids


def alone_then_wrapped(project: Path, name: str, script: str) -> tuple[str, dict[str, Any]]:
    """`script` committed as `name` in a repository with DVC (for checkpoints), run with
    `--lr 0.1` on its own, then with `--lr 0.05` under `gitexp run`: the same record either
    way. Returns the first run's id and the second's record."""
    assert gitexp("init").exit_code == 0
    (project / name).write_text(script)
    git(project, "add", "-A")
    git(project, "commit", "-q", "-m", f"a {name} script")
    for lr, wrapper in (("0.1", []), ("0.05", ["-m", "gitexp", "run", "--", sys.executable])):
        command = [sys.executable, *wrapper, name, "--lr", lr]
        done = subprocess.run(command, cwd=project, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr
    first, second = sorted(run_ids(project))
    return first, json.loads(gitexp("show", second, "--json").stdout)
