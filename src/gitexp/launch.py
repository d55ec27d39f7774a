"""Starting a run: what `gitexp run` and `gitexp.init` both capture before training begins."""

from __future__ import annotations

import getpass
import hashlib
import os
import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pygit2

from gitexp import (
    __version__,
    argv,
    data,
    ids,
    observed,
    pending,
    secrets_scan,
    signing,
    snapshot,
    store,
    yamlio,
)
from gitexp import config as config_mod
from gitexp.errors import Refused
from gitexp.integrations.hydra import redacted as redacted_job
from gitexp.record import CODE, CONFIG, DATA, DIFF, RUN, RunInfo, utc_iso
from gitexp.workspace import Workspace

_SNAPSHOT_TRIES = 3


@dataclass(frozen=True)
class RunRequest:
    """What the user asked for: the command and how to describe the run."""

    command: tuple[str, ...]
    name: str | None = None
    notes: str | None = None
    tags: tuple[str, ...] = ()
    config_files: tuple[Path, ...] = ()
    params: tuple[str, ...] = ()
    seed: int | None = None
    require_clean: bool = False
    data: tuple[str, ...] | None = None  # None: the repository's `data:` setting, else all
    allow_unpinned_data: bool = False
    outputs: tuple[str, ...] = ()  # paths to store as artifacts once the command ends
    reproduces: str | None = None  # the run this one replays (`gitexp reproduce`)
    rerun_of: str | None = None  # the run this one re-runs with a change (`gitexp rerun`)
    explains: str | None = None  # `A..B`, for a variant run by `gitexp explain`
    variant: str | None = None  # which planned run of that explanation this is
    hydra: Mapping[str, Any] | None = None  # the Hydra job a script's own run is
    system_metrics: bool = True  # `gitexp run` samples CPU, memory and GPUs beside it


@dataclass(frozen=True)
class Launched:
    """A run whose inputs are captured and kept under `.git/gitexp/pending/<id>/`."""

    live: pending.PendingRun
    info: RunInfo
    started: datetime
    config: dict[str, Any]
    warnings: tuple[str, ...] = ()  # for the user to read at launch


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return str(os.getuid())


def _config_files(
    ws: Workspace, cwd: Path, given: Sequence[Path], options: Mapping[str, Any]
) -> tuple[list[Path], list[str]]:
    """The config files to load, and those of them inside the repository, repo-relative.

    Besides `--config`, a YAML/JSON/TOML file named by one of the command's own options
    (`--config conf.yaml`) is configuration too: a change to it is a config change, not code.
    """
    paths = [cwd / p for p in given]
    for value in options.values():
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, str) and item.lower().endswith(config_mod.CONFIG_SUFFIXES):
                candidate = cwd / item
                if candidate.is_file() and candidate not in paths:
                    paths.append(candidate)
    inside = []
    root = ws.workdir.resolve()
    for path in paths:
        resolved = path.resolve()
        if resolved.is_relative_to(root):
            inside.append(resolved.relative_to(root).as_posix())
    return paths, inside


def _snapshot(ws: Workspace, run_id: str, config_files: Sequence[str]) -> snapshot.Code:
    """The run's code; tried again if `git gc` beside us removed an object folder mid-write."""
    for attempt in range(_SNAPSHOT_TRIES):
        try:
            return snapshot.capture(ws, run_id, config_files)
        except (pygit2.GitError, OSError):
            if attempt == _SNAPSHOT_TRIES - 1:
                raise
    raise AssertionError("unreachable")  # pragma: no cover


def outside_scripts(ws: Workspace, cwd: Path, command: Sequence[str]) -> dict[str, str]:
    """The script a Python command runs, if it lies outside the repository: path → sha256."""
    if not command or not argv.is_python(command[0]):
        return {}
    words = argv.program(command)
    if not words or words[0].startswith("-"):
        return {}  # `-m module`, `-c code`: an installed module or code on the command line
    path = (cwd / words[0]).resolve()
    if not path.is_file() or path.is_relative_to(ws.workdir.resolve()):
        return {}
    try:
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        digest = "unreadable"
    return {str(path): f"sha256:{digest}"}


def _artifact_makers(ws: Workspace) -> Mapping[str, str]:
    from gitexp import catalog  # SQLite: loaded only when a launch pins a dataset

    return catalog.artifact_makers(ws)


def begin(
    ws: Workspace,
    request: RunRequest,
    cwd: Path,
    extra_config: Mapping[str, Any] | None = None,
    role: str = "wrapper",
    script: observed.Report | None = None,
) -> Launched:
    """Capture command, config and code, and hold them as a live run.

    `extra_config` is configuration given in code (`gitexp.init(config=…)`); a key given
    both there and on the command line with different values is an error. `role` is what the
    calling process is to the run: `wrapper` (`gitexp run`) or `script` (gitexp.init); for
    a script, `script` is the process as the start-up hook would report it (its words, and
    what its command line parser read when no config was given).
    """
    pending.recover(ws)
    store.check_writable(ws)  # before training, not after it
    signing.required_signer(ws.repo, ws.settings.require_signed)
    started = datetime.now(timezone.utc)
    run_id = ids.new_run_id(started)
    secrets = ws.settings.secrets
    command, redacted = secrets_scan.redact_argv(request.command, secrets)
    options = argv.parse(command)
    files, inside = _config_files(ws, cwd, request.config_files, options)
    resolved = config_mod.resolve(files, request.params, options)
    if extra_config:
        # The script's own config is the run's config: its options are not counted twice.
        base = {k: v for k, v in resolved.items() if k != config_mod.ARGV}
        config_mod.merge_strict(base, extra_config)  # a key set twice, two ways, is an error
        resolved = observed.settle_config(resolved, extra_config, script, command, ws.workdir,
                                          cwd)  # fmt: skip
    elif script is not None and script.namespace is not None:  # as `gitexp run` would record it
        resolved = observed.settle_config(resolved, None, script, command, ws.workdir, cwd)
    # What the record keeps; the script goes on with its own configuration, secrets and all.
    recorded, config_redacted = secrets_scan.redact_config(resolved, secrets)

    warnings: list[str] = []
    live = pending.PendingRun.start(ws, run_id, role)
    try:
        code = _snapshot(ws, run_id, inside)
        outside = outside_scripts(ws, cwd, command)
        if outside:
            code = replace(code, state=replace(code.state, not_captured=outside))
            warnings.append(
                f"{next(iter(outside))} lies outside the repository, so its code is not in the "
                "record (code.yaml says so); move it into the repository to record it"
            )
        if code.state.dirty and (request.require_clean or ws.settings.require_clean):
            raise Refused(
                "the working tree has uncommitted changes and this run requires a clean tree; "
                "commit or stash them, or drop --require-clean"
            )
        requested = request.data if request.data is not None else ws.settings.data
        pins = data.pin(
            ws, cwd, requested, request.allow_unpinned_data, lambda: _artifact_makers(ws),
            code.untracked,
        )  # fmt: skip
        live.protect(ws, code.state.snapshot)
        hydra, hydra_redacted = redacted_job(request.hydra, ws.settings.secrets)
        info = RunInfo(
            id=run_id,
            command=tuple(command),
            cwd=ws.relative_cwd(cwd),
            started=utc_iso(started),
            host=socket.gethostname(),
            user=_user(),
            gitexp_version=__version__,
            name=request.name,
            notes=request.notes,
            tags=tuple(request.tags),
            inputs=tuple(sorted({p.made_by for p in pins if p.made_by})),
            reproduces=request.reproduces,
            rerun_of=request.rerun_of,
            explains=request.explains,
            variant=request.variant,
            redacted=(*redacted, *config_redacted, *hydra_redacted),
            hydra=hydra,
        )
        live.write(CONFIG, yamlio.dump(recorded))
        live.write(CODE, code.state.to_yaml())
        live.write(DIFF, code.diff)
        if pins:
            live.write(DATA, data.to_yaml(pins))
        live.write(RUN, info.to_yaml())
    except BaseException:
        live.release(ws)
        raise
    return Launched(live, info, started, resolved, tuple(warnings))
