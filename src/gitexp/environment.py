"""The environment a run trained in (env.yaml): interpreter, packages, GPUs, chosen variables."""

from __future__ import annotations

import fnmatch
import hashlib
import json
import os
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

from gitexp import argv, boot

# Lock files whose hash pins an environment more exactly than a package list can.
LOCK_FILES = (
    "requirements*.txt",
    "constraints*.txt",
    "poetry.lock",
    "uv.lock",
    "pdm.lock",
    "Pipfile.lock",
    "pixi.lock",
    "conda-lock.yml",
    "environment.yml",
    "environment.yaml",
)
_PROBE_TIMEOUT_S = 60


def interpreter_of(command: Sequence[str], env: Mapping[str, str]) -> str | None:
    """The Python interpreter that will run `command`, if one can be told without running it.

    `python train.py` names it; a console script such as `torchrun` names it in its `#!` line.
    """
    if not command:
        return None
    program = shutil.which(command[0], path=env.get("PATH"))
    if program is None:
        return None
    if argv.is_python(program):
        return program
    try:
        with open(program, "rb") as f:
            first = f.readline(512)
    except OSError:
        return None
    if first.startswith(b"#!"):
        words = first[2:].decode(errors="replace").split()
        if words and os.path.basename(words[0]) == "env" and len(words) > 1:
            words = words[1:]
        if words and argv.is_python(words[0]):
            return shutil.which(words[0], path=env.get("PATH")) or words[0]
    return None


def _probe(interpreter: str, env: Mapping[str, str]) -> dict[str, Any] | None:
    """Ask `interpreter` to describe itself, running gitexp's observing module as a program."""
    quiet = {k: v for k, v in env.items() if k != "GITEXP_RUN_DIR"}  # not a process of the run
    try:
        done = subprocess.run(
            [interpreter, os.path.join(boot.FOLDER, f"{boot.MODULE}.py")],
            env=quiet,
            capture_output=True,
            timeout=_PROBE_TIMEOUT_S,
            check=False,
        )
        result = json.loads(done.stdout) if done.returncode == 0 else None
    except (OSError, subprocess.TimeoutExpired, ValueError):
        return None
    return result if isinstance(result, dict) else None


def gpus() -> list[dict[str, str]]:
    """NVIDIA GPUs as the driver reports them; empty where there is no driver."""
    tool = shutil.which("nvidia-smi")
    if tool is None:
        return []
    query = "--query-gpu=name,driver_version,memory.total"
    try:
        done = subprocess.run(
            [tool, query, "--format=csv,noheader"], capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.TimeoutExpired):
        return []
    found = []
    for line in done.stdout.splitlines() if done.returncode == 0 else []:
        parts = [part.strip() for part in line.split(",")]
        if len(parts) == 3:
            found.append({"name": parts[0], "driver": parts[1], "memory": parts[2]})
    return found


def lock_file_hashes(workdir: Path) -> dict[str, str]:
    """sha256 of each lock or requirements file at the top of the working tree."""
    hashes = {}
    for pattern in LOCK_FILES:
        for path in sorted(workdir.glob(pattern)):
            if path.is_file():
                hashes[path.name] = "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()
    return dict(sorted(hashes.items()))


def allowed_variables(env: Mapping[str, str], allow: Sequence[str]) -> dict[str, str]:
    """The variables named (or matched by a `NAME_*` pattern) in the allow-list, and no others.

    PYTHONPATH, if allowed, is the user's: without the folder of gitexp's start-up hook.
    """
    found = {
        name: env[name]
        for name in sorted(env)
        if any(fnmatch.fnmatchcase(name, pattern) for pattern in allow)
    }
    if "PYTHONPATH" in found:
        kept = boot.user_pythonpath(found.pop("PYTHONPATH"))
        if kept is not None:
            found["PYTHONPATH"] = kept
    return found


def outside(env: Mapping[str, str], workdir: Path, allow: Sequence[str]) -> dict[str, Any]:
    """What is read from outside the training process: GPUs, chosen variables, lock files."""
    return {
        "gpus": gpus(),
        "variables": allowed_variables(env, allow),
        "lock_files": lock_file_hashes(workdir),
    }


def assemble(
    source: str, described: Mapping[str, Any], around: Mapping[str, Any]
) -> dict[str, Any]:
    """env.yaml: an interpreter's own description and what was read around it.

    A value that is not known is left out: absent and null are the same value.
    """
    found = {
        "captured_by": source,
        "python": described.get("python"),
        "platform": described.get("platform"),
        "torch": described.get("torch"),
        "gpus": around.get("gpus") or [],
        "variables": around.get("variables") or {},
        "lock_files": around.get("lock_files") or {},
        "packages": described.get("packages") or [],
    }
    return {k: v for k, v in found.items() if v is not None}


INSIDE = "inside the training process"


def capture(
    command: Sequence[str], env: Mapping[str, str], workdir: Path, allow: Sequence[str]
) -> dict[str, Any]:
    """Describe the environment of `command` from outside: its interpreter if it has one,
    else gitexp's. Used only when no process of the run described itself."""
    interpreter = interpreter_of(command, env)
    described = _probe(interpreter, env) if interpreter else None
    if described is not None:
        source = "the command's Python interpreter, asked after the run"
    else:
        described = boot.load().describe()
        source = "gitexp's own interpreter: the command is not a Python program"
        if interpreter:
            source = "gitexp's own interpreter: asking the command's interpreter failed"
    return assemble(source, described, outside(env, workdir, allow))


def capture_here(workdir: Path, allow: Sequence[str]) -> dict[str, Any]:
    """Describe the running interpreter from inside it, as `gitexp.init` does at the end.

    If the training script has imported torch, its CUDA and cuDNN details come from torch
    itself; torch is never imported for this.
    """
    return assemble(INSIDE, boot.load().describe(), outside(os.environ, workdir, allow))


def describe_torch(torch: ModuleType) -> dict[str, Any]:
    """torch, CUDA and cuDNN versions, asked of an imported torch (see gitexp/boot)."""
    found: dict[str, Any] = boot.load().describe_torch(torch)
    return found
