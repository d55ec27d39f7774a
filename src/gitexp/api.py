"""The Python API for training scripts: `gitexp.init`, `Run.log`, `gitexp.current`.

Standalone (`python train.py`), `init` captures code, config, environment and seeds exactly
as `gitexp run` does and commits the record when the run finishes. Under `gitexp run`, it
joins the run the wrapper started: one record, metrics from inside, outcome from outside.
"""

from __future__ import annotations

import argparse
import atexit
import dataclasses
import os
import signal
import sys
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import FrameType, TracebackType
from typing import TYPE_CHECKING, Any

from gitexp import observed, ranks, seeds, yamlio
from gitexp.atomic import replace_file
from gitexp.errors import GitexpError
from gitexp.metrics import RANKS, MetricWriter
from gitexp.record import CONFIG, DATA, ENV, FROM_CODE, RUN, SEEDS, Status

if TYPE_CHECKING:
    from gitexp.workspace import Workspace

OUTPUTS = "outputs"
_active: Run | None = None


def config_mapping(config: Any) -> dict[str, Any]:
    """A plain mapping from a dict, argparse.Namespace, dataclass or OmegaConf/Hydra config."""
    if config is None:
        return {}
    if type(config).__module__.startswith("omegaconf"):
        from omegaconf import OmegaConf

        config = OmegaConf.to_container(config, resolve=True)
    elif isinstance(config, argparse.Namespace):
        config = vars(config)
    elif dataclasses.is_dataclass(config) and not isinstance(config, type):
        config = dataclasses.asdict(config)
    if not isinstance(config, Mapping):
        raise TypeError(
            "config must be a dict, argparse.Namespace, dataclass instance or OmegaConf "
            f"config, not {type(config).__name__}"
        )
    plain = _plain(config)
    assert isinstance(plain, dict)
    return plain


def _plain(value: Any) -> Any:
    """Values YAML can hold: mappings, lists and scalars; anything else as its text."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        items = sorted(value, key=repr) if isinstance(value, (set, frozenset)) else value
        return [_plain(v) for v in items]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if hasattr(value, "item") and getattr(value, "ndim", None) == 0:
        return value.item()  # numpy and torch scalars
    return str(value)


def _outputs_dir(workdir: Path, git_dir: Path, run_id: str) -> Path:
    """`outputs/<id>/` in the working tree, kept out of git through .git/info/exclude."""
    exclude = git_dir / "info" / "exclude"
    rule = f"/{OUTPUTS}/"
    try:
        lines = exclude.read_text().splitlines() if exclude.exists() else []
        if rule not in lines:
            exclude.parent.mkdir(parents=True, exist_ok=True)
            with open(exclude, "a") as f:
                f.write(f"# gitexp: run outputs (run.dir)\n{rule}\n")
    except OSError:
        pass  # a read-only .git: outputs still go where asked
    folder = workdir / OUTPUTS / run_id
    folder.mkdir(parents=True, exist_ok=True)
    return folder


class Run:
    """A run. Use it as a context manager, or call `finish()` yourself.

    This class itself records nothing (what ranks other than 0 get under torch.distributed);
    `gitexp.init` gives rank 0 a subclass that records.
    """

    def __init__(self, run_id: str, config: Mapping[str, Any]) -> None:
        self.id = run_id
        self.config: Mapping[str, Any] = config
        self.finished = False

    @property
    def dir(self) -> Path:
        """Where to write this run's outputs: `outputs/<id>/`, ignored by git."""
        return Path(OUTPUTS) / (self.id or "rank")

    def log(self, metrics: Mapping[str, Any], step: int | None = None) -> None:
        """Record scalar metrics at `step` (the previous step + 1 when omitted)."""

    def log_artifact(
        self,
        path: Path | str,
        role: str | None = None,
        step: int | None = None,
        metrics: Mapping[str, Any] | None = None,
    ) -> None:
        """Store a checkpoint or output in the DVC cache now, and record it with the run."""

    def finish(self, status: Status = "succeeded", error: str | None = None) -> None:
        """End the run and record it; later calls do nothing."""
        self.finished = True

    def __enter__(self) -> Run:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if error is None or (isinstance(error, SystemExit) and error.code in (0, None)):
            self.finish("succeeded")
        elif isinstance(error, KeyboardInterrupt):
            self.finish("interrupted", "KeyboardInterrupt")
        else:
            self.finish("failed", _describe(error))

    def __repr__(self) -> str:
        return f"<gitexp.Run {self.id}>"


def _describe(error: BaseException) -> str:
    if isinstance(error, SystemExit):
        return f"SystemExit: exit status {error.code}"
    message = str(error)
    return f"{type(error).__name__}: {message}" if message else type(error).__name__


class _NoRun(Run):
    """What ranks other than 0 get under torch.distributed: the same id, nothing recorded."""


class _RankRun(Run):
    """A rank other than 0 under `gitexp run`, asked to log too (`init(all_ranks=True)`): its
    metrics go to a stream of its own in the run's folder, which the record gets under
    `rank<N>/` (metrics.record)."""

    def __init__(self, run_id: str, config: Mapping[str, Any], folder: Path) -> None:
        super().__init__(run_id, config)
        folder.mkdir(parents=True, exist_ok=True)
        self._writer = MetricWriter(folder, time.time())
        self._writer.start()
        self.log = self._writer.log  # type: ignore[method-assign]
        atexit.register(self.finish)

    def finish(self, status: Status = "succeeded", error: str | None = None) -> None:
        if not self.finished:
            self.finished = True
            self._writer.stop()


class _LiveRun(Run):
    """The shared machinery of a recording run: metrics, environment, outputs."""

    # The torchrun that started a run of its own, if one did: its command and environment.
    _launcher: tuple[list[str], dict[str, str]] | None = None

    def __init__(
        self, run_id: str, config: Mapping[str, Any], folder: Path, ws: Workspace, started: float
    ) -> None:
        super().__init__(run_id, config)
        self.folder = folder
        self.ws = ws
        self._writer = MetricWriter(folder, started)
        self._writer.start()  # what `log` accepts is on disk within a second
        self._dir: Path | None = None
        # Joined to `gitexp run`, the start-up hook describes this process for the wrapper's
        # record; a run of its own is described by us, at the end (when torch is imported),
        # with what is read around it (GPUs) meanwhile.
        self._around: dict[str, Any] = {}
        self._env: threading.Thread | None = None
        if not observed.hooked() or not isinstance(self, _JoinedRun):
            self._env = threading.Thread(target=self._read_around, name="gitexp-env", daemon=True)
            self._env.start()
        # The writer's own method, bound here: no extra Python call on every step.
        self.log = self._writer.log  # type: ignore[method-assign]

    def _read_around(self) -> None:
        from gitexp import environment

        # Under torchrun, the variables the user launched with, not those torchrun sets for
        # its workers (WORLD_SIZE, OMP_NUM_THREADS): what `gitexp run -- torchrun` records.
        variables = self._launcher[1] if self._launcher is not None else os.environ
        try:
            self._around = environment.outside(
                variables, self.ws.workdir, self.ws.settings.env_allow
            )
        except Exception:
            pass  # a record without GPUs and variables beats no record

    def _describe_env(self) -> None:
        from gitexp import environment

        if self._env is None:
            return
        self._env.join()
        try:
            found = environment.assemble(
                environment.INSIDE, observed.boot().describe(), self._around
            )
        except Exception as e:  # a record without its environment beats no record
            found = {"captured_by": f"nobody: reading the environment failed ({e})"}
        try:
            self._write(ENV, yamlio.dump(found))
        except OSError:
            pass  # the run's state is gone; the metrics writer says so

    def _write(self, name: str, data: bytes) -> None:
        replace_file(self.folder / name, data)

    @property
    def dir(self) -> Path:
        if self._dir is None:
            self._dir = _outputs_dir(self.ws.workdir, self.ws.state_dir.parent, self.id)
        return self._dir

    def log_artifact(
        self,
        path: Path | str,
        role: str | None = None,
        step: int | None = None,
        metrics: Mapping[str, Any] | None = None,
    ) -> None:
        from gitexp import artifacts

        artifacts.log(self.ws, self.folder, path, role=role, step=step, metrics=metrics)

    def _settle(self) -> None:
        """Everything the run knows, on disk: metrics, seeds, environment."""
        self._writer.stop()
        try:
            self._write(SEEDS, seeds.record(None, os.environ, seeds.current(), _seen()))
        except OSError:
            pass  # the run's state is gone; the metrics writer has said so
        self._describe_env()


def _seen() -> dict[str, Any] | None:
    """The seeds this process was seen to set, unless the start-up hook reports them."""
    return None if observed.hooked() else observed.boot().seeds_seen()


@dataclass(frozen=True)
class _Asked:
    """What the training code passed to `gitexp.init`."""

    config: Mapping[str, Any]
    name: str | None
    tags: tuple[str, ...]
    notes: str | None
    data: tuple[str, ...] | None
    allow_unpinned_data: bool
    hydra: Mapping[str, Any] | None = None  # the Hydra job this run is, if any


class _JoinedRun(_LiveRun):
    """Inside `gitexp run`: the wrapper owns the record and commits it when the command ends."""

    taken = False  # a process joins the wrapper's run once: each later run is one of its own

    def __init__(self, asked: _Asked) -> None:
        _JoinedRun.taken = True
        from gitexp import secrets_scan, workspace
        from gitexp.config import merge_strict
        from gitexp.liveness import parse_utc

        folder = Path(os.environ["GITEXP_RUN_DIR"])
        ws = workspace.open_workspace(Path(os.environ.get("GITEXP_WORKDIR", os.getcwd())))
        wrapper = yamlio.load((folder / CONFIG).read_bytes(), CONFIG) or {}
        # The wrapper's config is already redacted: compare and record the code's likewise.
        given, redacted = secrets_scan.redact_config(asked.config, ws.settings.secrets)
        merged = merge_strict(wrapper, given) if asked.config else wrapper
        run = yamlio.load((folder / RUN).read_bytes(), RUN) or {}
        started = parse_utc(str(run["started"])).timestamp()
        super().__init__(os.environ["GITEXP_RUN_ID"], merged, folder, ws, started)
        if asked.config:  # the record's config: the command's options are not counted twice
            self._write(observed.CODE_CONFIG, yamlio.dump(given))
        if observed.hooked():
            observed.boot().note_init()
        allowed = asked.allow_unpinned_data or os.environ.get("GITEXP_ALLOW_UNPINNED_DATA") == "1"
        self._inputs: list[str] = []
        if asked.data:
            self._pin_more(asked.data, allowed)
        from gitexp.integrations.hydra import redacted as hydra_redacted

        hydra, hidden = hydra_redacted(asked.hydra, ws.settings.secrets)
        self._given = {
            "name": asked.name, "tags": list(asked.tags), "notes": asked.notes, "error": None,
            "inputs": self._inputs,
            "redacted": [dataclasses.asdict(r) for r in (*redacted, *hidden)], "hydra": hydra,
        }  # fmt: skip
        self._write(FROM_CODE, yamlio.dump(self._given))
        atexit.register(self._settle)

    def _pin_more(self, datasets: tuple[str, ...], allow_unpinned: bool) -> None:
        """Add the datasets named in code to those `gitexp run` pinned."""
        from gitexp import catalog, data

        ws = self.ws
        found = data.pin(
            ws, Path.cwd(), datasets, allow_unpinned, lambda: catalog.artifact_makers(ws)
        )
        self._inputs = sorted({p.made_by for p in found if p.made_by})
        pins = {p.path: p for p in found}
        existing = self.folder / DATA
        if existing.exists():
            for entry in (yamlio.load(existing.read_bytes(), DATA) or {}).get("datasets", []):
                pins.setdefault(entry["path"], data.DataPin(**entry))
        self._write(DATA, data.to_yaml(list(pins.values())))

    def finish(self, status: Status = "succeeded", error: str | None = None) -> None:
        if self.finished:
            return
        self.finished = True
        # The outcome as the script saw it: the record's, should `gitexp run` die first.
        self._given.update(error=error, ended=status)
        try:
            self._write(FROM_CODE, yamlio.dump(self._given))
        except OSError:
            pass  # the run's state is gone (see _settle); training must not die of it
        self._settle()


class _OwnRun(_LiveRun):
    """Started by `gitexp.init` in a plain `python train.py`: it commits its own record."""

    def __init__(self, asked: _Asked) -> None:
        from gitexp import launch, workspace

        ws = workspace.open_workspace()
        self._launcher = ranks.launched_by()
        program = os.path.basename(sys.executable) or "python"
        command = (program, *sys.argv)
        if self._launcher is not None:  # started by torchrun: its command, as typed
            command = tuple(self._launcher[0])
        request = launch.RunRequest(
            command=command,
            name=asked.name,
            notes=asked.notes,
            tags=asked.tags,
            data=asked.data,
            allow_unpinned_data=asked.allow_unpinned_data,
            hydra=asked.hydra,
        )
        # This process as the start-up hook would report it under `gitexp run`: its words,
        # and, with no config given, the options its parser read, which are then the config.
        script = observed.Report(
            pid=os.getpid(), argv=tuple(getattr(sys, "orig_argv", sys.argv)), cwd=os.getcwd(),
            namespace=None if asked.config else observed.script_options(),
        )  # fmt: skip
        self._launched = launch.begin(
            ws, request, Path.cwd(), extra_config=asked.config, role="script", script=script
        )
        live = self._launched.live
        super().__init__(
            live.run_id, self._launched.config, live.folder, ws, self._launched.started.timestamp()
        )
        self._write(SEEDS, seeds.record(None, os.environ, seeds.current()))
        for warning in self._launched.warnings:
            print(f"gitexp: warning: {warning}", file=sys.stderr)
        self._hook_exits()

    def _hook_exits(self) -> None:
        """Record the run however the interpreter ends: normally, by exception, by SIGTERM."""
        atexit.register(self.finish)
        previous_hook = sys.excepthook

        def on_uncaught(
            kind: type[BaseException], error: BaseException, tb: TracebackType | None
        ) -> None:
            if isinstance(error, KeyboardInterrupt):
                self.finish("interrupted", "KeyboardInterrupt")
            else:
                self.finish("failed", _describe(error))
            previous_hook(kind, error, tb)

        sys.excepthook = on_uncaught
        on_main_thread = threading.current_thread() is threading.main_thread()
        if on_main_thread and signal.getsignal(signal.SIGTERM) == signal.SIG_DFL:
            signal.signal(signal.SIGTERM, self._on_sigterm)

    def _on_sigterm(self, signum: int, frame: FrameType | None) -> None:
        self.finish("interrupted", "SIGTERM")
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGTERM)  # die the way SIGTERM kills, as schedulers expect

    def finish(self, status: Status = "succeeded", error: str | None = None) -> None:
        from datetime import datetime, timezone

        global _active
        if self.finished:
            return
        self.finished = True
        self._settle()
        seen = observed.boot().seeds_seen()
        given = seeds.current().seed
        rngs = {**seeds.current().rngs, **seen.get("seeds", {})}
        drawn = seen.get("drawn_before_seeding", ())
        for warning in seeds.warnings(given, rngs, drawn, seen.get("later_seeds")):
            print(f"gitexp: warning: {warning}", file=sys.stderr)
        launched = self._launched
        ended = launched.info.finish(
            status, datetime.now(timezone.utc), launched.started, error=error
        )
        launched.live.write(RUN, ended.to_yaml())
        launched.live.commit(self.ws, ended, None)
        print(
            f"gitexp: run {self.id} {status}, recorded on {self.ws.settings.branch}",
            file=sys.stderr,
        )
        if _active is self:
            _active = None


def init(
    config: Any = None,
    *,
    name: str | None = None,
    tags: Iterable[str] = (),
    notes: str | None = None,
    data: Iterable[str] | None = None,
    seed: int | None = None,
    deterministic: bool = False,
    allow_unpinned_data: bool = False,
    all_ranks: bool = False,
) -> Run:
    """Start recording this training run, or join the one `gitexp run` started.

    Under torch.distributed rank 0 records; with `all_ranks`, under `gitexp run`, every other
    rank's metrics are recorded too, under `rank<N>/`."""
    global _active
    if _active is not None and not _active.finished:
        raise GitexpError(
            f"a run is already active in this process ({_active.id}); use gitexp.current(), "
            "or finish() it before starting another"
        )
    datasets = tuple(data) if data is not None else None
    given = config_mapping(config)
    wrapper_text = os.environ.get("GITEXP_SEED")
    if wrapper_text is not None:
        wrapper_seed = seeds.parse(wrapper_text, "GITEXP_SEED")
        if seed is not None and seed != wrapper_seed:
            raise GitexpError(
                f"seed={seed} in code but --seed {wrapper_seed} on `gitexp run`; give one"
            )
        seed = wrapper_seed
    if not observed.hooked():
        observed.boot().watch()  # seeds set from here on are seen, whoever sets them
    if seed is not None:
        seeds.seed_everything(seed, deterministic)

    rank = ranks.rank() if "torch" in sys.modules else 0
    if rank != 0:
        shared = ranks.share_run_id(os.environ.get("GITEXP_RUN_ID"))
        wrapper = os.environ.get("GITEXP_RUN_DIR")
        if all_ranks and wrapper and shared == os.environ.get("GITEXP_RUN_ID"):
            _active = _RankRun(shared or "", given, Path(wrapper) / RANKS / str(rank))
        else:
            if all_ranks:
                print(f"gitexp: warning: rank {rank}'s metrics are recorded under `gitexp run` "
                      "only: this rank logs nothing", file=sys.stderr)  # fmt: skip
            _active = _NoRun(shared or "", given)
        return _active
    # Under `gitexp run`, the first run of the process is the wrapper's; a later one (the
    # next job of a Hydra multirun) is a run of its own: one record per job.
    joined = (
        "GITEXP_RUN_DIR" in os.environ
        and Path(os.environ["GITEXP_RUN_DIR"]).is_dir()
        and not _JoinedRun.taken
    )
    hydra = None
    if "hydra" in sys.modules:
        from gitexp.integrations import hydra as hydra_app

        hydra = hydra_app.job()
    asked = _Asked(given, name, tuple(tags), notes, datasets, allow_unpinned_data, hydra)
    run: Run = _JoinedRun(asked) if joined else _OwnRun(asked)
    if "torch" in sys.modules:
        ranks.share_run_id(run.id)
    _active = run
    return run


def current() -> Run | None:
    """The run `gitexp.init` started in this process, if it is still active."""
    return _active if _active is not None and not _active.finished else None
