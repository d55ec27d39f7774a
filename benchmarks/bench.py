"""`make bench`: every benchmark in one go, gitexp beside its peers, into benchmarks/RESULTS.md.

    make bench                      # full, <= 15 min on 2 cores; also refreshes README.md
    make bench QUICK=1              # = .venv/bin/python benchmarks/bench.py --quick (<= 2 min)
    .venv/bin/python benchmarks/bench.py --quick --only 6,9 --out /tmp/r.md   # some rows

One row per line of DESIGN.md §8's budgets table (and a few more), each timed with its peers
in turn (A B A B ...), medians (min-max) over fresh processes in scratch folders, telemetry
off and no network. A measurement that fails or runs out of time says so in its row; the
rest go on. Measurement functions live in run.py, api.py, reliability.py and cuda_log.py;
fixtures.py builds the large runs branches.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import os
import platform
import random
import re
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import api
import cuda_log
import pygit2
import reliability
import run as gitexp_run
from fixtures import SshKey, fill, record, run_id, scratch_repository
from timing import (
    GITEXP,
    Action,
    Failed,
    Figure,
    Outcome,
    interleaved,
    number,
    process,
    python,
    seal,
)
from timing import run as command

from gitexp import store
from gitexp.workspace import open_workspace

HERE = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent
DVC, MLFLOW, WANDB = str(BIN / "dvc"), str(BIN / "mlflow"), str(BIN / "wandb")
DASH = "\u2013"  # between a minimum and a maximum


@dataclass
class Row:
    """One line of the report."""

    number: str
    what: str
    ours: Outcome
    budget: str = "—"
    met: bool | None = None
    peers: Mapping[str, Outcome] = field(default_factory=dict)
    ratios: bool = True  # whether peer / gitexp means anything for this row
    note: str = ""  # what exactly was measured, under the table

    def cells(self) -> list[str]:
        ours = self.ours if isinstance(self.ours, Figure) else f"n/a: {self.ours}"
        met = {True: "yes", False: "**no**", None: "—"}[self.met]
        peers = [f"{name}: {self.peer(name)}" for name in self.peers]
        return [self.number, self.what, str(ours), self.budget, met, "<br>".join(peers) or "—"]

    def ratio(self, name: str) -> float | None:
        theirs, ours = self.peers[name], self.ours
        if not self.ratios or not isinstance(theirs, Figure) or not isinstance(ours, Figure):
            return None
        return theirs.median / ours.median if ours.median > 0 else None

    def peer(self, name: str) -> str:
        theirs = self.peers[name]
        if not isinstance(theirs, Figure):
            return f"n/a ({theirs})"
        ratio = self.ratio(name)
        return f"{theirs}" + (f", **{number(ratio)}x**" if ratio is not None else "")


class Bench:
    """Sizes, repeats, the scratch folder and the fixtures rows share."""

    def __init__(self, quick: bool, base: Path, budget_s: float) -> None:
        self.quick, self.base = quick, base
        self.deadline = time.monotonic() + budget_s
        # Rounds of a row with peers: seconds each, for MLflow's 3 s import alone. No untimed
        # round first: row 1 has warmed the page cache for every peer, and the rows warm
        # gitexp's own first-call state themselves.
        self.rounds = 1 if quick else 3
        self.repeats = 5 if quick else 21  # samples of a gitexp-only figure (milliseconds)
        self.runs = 1_000 if quick else 10_000
        self.signed = 200 if quick else 10_000
        self.scale = 1_000 if quick else 100_000
        self.files = 2_000 if quick else 100_000
        self.growth = 200 if quick else 1_000
        self.dvc_experiments = 2 if quick else 30
        self.mlflow_runs = {"file": 50, "sqlite": 0} if quick else {"file": 1000, "sqlite": 250}
        # --quick leaves out the slowest peers' duplicates, to fit in its 2 minutes.
        self.skips = {"MLflow SQLite", "`mlflow --help`"} if quick else set()
        self._filled: Path | None = None
        self._dvc: Path | None = None
        self._mlflow: dict[str, str] | None = None

    def skipped(self, names: Iterable[str]) -> dict[str, str]:
        return {name: "skipped in --quick" for name in names if name in self.skips}

    def skip(self, actions: Mapping[str, Action]) -> dict[str, Action]:
        """`actions`, those --quick leaves out replaced by the words saying so."""
        return {**actions, **self.skipped(actions)}

    def left(self, reserve: float = 0.0) -> float:
        """Seconds a long measurement may take, keeping `reserve` for the rows after it."""
        return max(5.0, self.deadline - time.monotonic() - reserve)

    def filled(self) -> Path:
        """The repository whose branch holds `runs` runs (rows 6 to 8)."""
        if self._filled is None:
            self._filled = scratch_repository(self.base / f"filled-{self.runs}")
            fill(self._filled, self.runs)
        return self._filled

    def dvc(self) -> Path:
        """A DVC repository with a trivial stage and `dvc_experiments` experiments of it,
        made in one process (a `dvc exp run` process each would take 3 s)."""
        if self._dvc is None:
            root = scratch_repository(
                self.base / "dvc",
                {
                    "params.yaml": "lr: 0.1\n",
                    "dvc.yaml": "stages:\n  train:\n    cmd: python -c pass\n"
                    "    params:\n    - lr\n",
                },
            )
            command([DVC, "init", "-q"], root)
            command([DVC, "config", "core.analytics", "false"], root)
            command(["git", "add", "-A"], root)
            command(["git", "commit", "-q", "-m", "dvc init"], root)
            python(
                "from dvc.repo import Repo\nrepo = Repo('.')\n"
                f"for i in range({self.dvc_experiments}):\n"
                "    repo.experiments.run(params=[f'lr=0.{i + 10}'])\n",
                root,
            )
            self._dvc = root
        return self._dvc

    def experiments(self) -> list[str]:
        """The DVC experiments' names, now."""
        refs = command(["git", "for-each-ref", "--format=%(refname)", "refs/exps"], self.dvc())
        return [line.rsplit("/", 1)[-1] for line in refs.split() if "/exec/" not in line]

    def mlflow(self) -> dict[str, str]:
        """MLflow tracking URIs (file store, SQLite) holding `mlflow_runs` finished runs of
        20 params and 5 metrics each, written through MlflowClient in one process each."""
        if self._mlflow is None:
            folder = self.base / "mlflow"
            folder.mkdir()
            self._mlflow = {"file": f"file://{folder}/mlruns", "sqlite": f"sqlite:///{folder}/m.db"}
            for store_, uri in self._mlflow.items():
                if self.mlflow_runs[store_]:
                    python(MLFLOW_FILL.format(uri=uri, runs=self.mlflow_runs[store_]), folder)
        return self._mlflow


MLFLOW_FILL = """
import time, mlflow
from mlflow.entities import Metric, Param
mlflow.set_tracking_uri("{uri}")
experiment = mlflow.set_experiment("bench").experiment_id
client, now = mlflow.MlflowClient(), int(time.time() * 1000)
for i in range({runs}):
    run = client.create_run(experiment).info.run_id
    client.log_batch(
        run,
        metrics=[Metric(k, 0.5, now, 0) for k in ("loss", "acc", "lr", "grad", "epoch")],
        params=[Param(f"param_{{j}}", str(j)) for j in range(20)],
    )
    client.set_terminated(run)
"""
MLFLOW_SEARCH = (
    "import mlflow\nmlflow.set_tracking_uri('{uri}')\n"
    "assert len(mlflow.search_runs(experiment_names=['bench'])) == {runs}\n"
)


def minus(found: dict[str, Outcome], name: str) -> tuple[Figure, dict[str, Outcome]]:
    """The figure `name` (a bare process), and every other less its median."""
    bare = found.pop(name)
    if not isinstance(bare, Figure):
        raise Failed(f"{name}: {bare}")
    return bare, {k: v.minus(bare.median) if isinstance(v, Figure) else v for k, v in found.items()}


def within(figure: Outcome, limit: float) -> bool | None:
    """Whether a figure's median is within a budget in its own unit; None without a figure."""
    return figure.median <= limit if isinstance(figure, Figure) else None


def seconds(figure: Outcome) -> Outcome:
    """Milliseconds of a second or more as seconds, for reading."""
    if isinstance(figure, Figure) and figure.unit == "ms" and figure.median >= 1000:
        return Figure([s / 1000 for s in figure.samples], "s")
    return figure


def under_300ms(figure: Outcome) -> bool | None:
    return within(figure, 0.3 if isinstance(figure, Figure) and figure.unit == "s" else 300)


def row1(b: Bench) -> list[Row]:
    scale = 0.1 if b.quick else 1.0
    costs = api.log_costs(b.base / "api", b.rounds, scale, b.skipped(api.TRACKERS))
    ours, floor, wandb = costs.pop(api.GITEXP), costs[api.FLOOR], costs["W&B offline"]
    met = None
    if isinstance(ours, Figure) and isinstance(floor, Figure) and isinstance(wandb, Figure):
        met = ours.median <= max(floor.samples) and wandb.median / ours.median >= 25
    counts = ", ".join(f"{name} {api.calls(name, scale):,}" for name in api.CALLS)
    note = (
        f"µs per call inside one process (its start and finish excluded), {b.rounds} "
        f"process(es) each, trackers in turn; calls per process: {counts}. DVCLive's call is "
        "one step, 3 `log_metric` and `next_step()` (it rewrites its summary each step); "
        "MLflow's is one `log_metrics` of the 3."
    )
    budget = f"≤ floor (within its min{DASH}max); ≥ 25x cheaper than W&B offline"
    return [Row("1", "`run.log()` of 3 scalars, per call", ours, budget, met, costs, note=note)]


def row2(b: Bench) -> list[Row]:
    what = "`run.log()` of a CUDA loss every step: steps/s vs no logging"
    missing = cuda_log.no_cuda()
    if missing:
        return [Row("2", what, missing, "≥ -0.5 %", peers={"`float(loss)` per step": missing})]
    steps, repeats = (200, 2) if b.quick else (500, 3)
    device, found = cuda_log.measure(steps, repeats)
    rows = []
    for size, modes in found.items():
        none = modes[cuda_log.MODES[0]]  # steps/s logging nothing, in the same rounds
        ours, peer = (
            Figure([(s / n - 1) * 100 for s, n in zip(modes[mode], none, strict=True)], "%")
            for mode in (cuda_log.MODES[2], cuda_log.MODES[1])
        )
        note = f"{device}, {steps} steps, {repeats} processes of each mode, modes in turn"
        rows.append(
            Row(
                f"2{size[0]}",
                f"{what}, {size} MLP",
                ours,
                "≥ -0.5 %",
                ours.median >= -0.5,
                {"`float(loss)` per step": peer},
                False,
                note,
            )
        )
    return rows


def row3(b: Bench) -> list[Row]:
    tmp = b.base / "api"
    actions: dict[str, Action] = {"python -c pass": process([sys.executable, "-c", "pass"])}
    actions.update({name: api.one_run(name, tmp) for name in api.PROCESSES})
    actions.update(api.floors(tmp))
    bare, found = minus(interleaved(b.skip(actions), b.rounds, warm=False), "python -c pass")
    ours = found.pop(api.GITEXP)
    note = (
        f"whole processes, {b.rounds} round(s) in turn, less the median of `python -c pass` "
        f"({bare}) timed in the same rounds; DVCLive with `save_dvc_exp=False` (no DVC "
        "repository there: it writes its files). The floors: a process that commits 8 small "
        "files with pygit2 and nothing else, and one that only imports gitexp's three "
        "libraries"
    )
    what = "a whole process recording one run (20 params, 5 metrics), minus `python -c pass`"
    return [Row("3", what, ours, LAUNCH_BUDGET, launch_met(ours, found), found, note=note)]


LAUNCH_BUDGET = "≤ 150 ms, or ≤ 1.5x a bare pygit2 commit process"


def launch_met(ours: Outcome, found: Mapping[str, Outcome]) -> bool | None:
    """Within 150 ms, or within 1.5x the bare pygit2 commit process timed beside it (the
    budget's own terms, for a machine slower than the one it was set on)."""
    floor = found.get(next(iter(api.FLOORS)))
    if not isinstance(ours, Figure):
        return None
    relative = isinstance(floor, Figure) and ours.median <= 1.5 * floor.median
    return ours.median <= 150 or relative


def row4(b: Bench) -> list[Row]:
    root = b.dvc()  # gitexp runs there too: the same small repository for both

    def dvc_exp_run() -> None:
        command([DVC, "exp", "run", "-q", "-S", f"lr=0.{next(gitexp_run.COUNTER) + 500}"], root)

    peers: dict[str, Action] = {
        "`dvc exp run`": dvc_exp_run,
        "W&B, MLflow": "no wrapper for an arbitrary command (`mlflow run` needs an MLproject)",
        **api.floors(b.base / "api"),
    }
    command([GITEXP, "run", "--", *gitexp_run.PYTHON_PASS], root)  # its first-run setup
    _, found = minus(gitexp_run.launch(root, b.rounds, peers, warm=False), "python -c pass")
    ours = found.pop("gitexp")
    note = (
        "whole processes in one small git + DVC repository; the closest peer is `dvc exp "
        "run` of a one-stage pipeline whose command is `python -c pass` (a new parameter "
        "value each time, so that the stage runs and an experiment is recorded)"
    )
    what = "`gitexp run -- python -c pass` minus `python -c pass`"
    return [Row("4", what, ours, LAUNCH_BUDGET, launch_met(ours, found), found, note=note)]


def row5(b: Bench) -> list[Row]:
    actions = {
        "gitexp": process([GITEXP, "--help"]),
        "`mlflow --help`": process([MLFLOW, "--help"]),
        "`import mlflow`": process([sys.executable, "-c", "import mlflow"]),
        "`wandb --help`": process([WANDB, "--help"]),
        "`dvc --version`": process([DVC, "--version"]),
    }
    found = interleaved(b.skip(actions), b.rounds, warm=False)  # row 1 warmed the page cache
    ours = found.pop("gitexp")
    what = "CLI start-up: `gitexp --help`, whole process"
    return [Row("5", what, ours, "≤ 150 ms", within(ours, 150), found)]


def row6(b: Bench) -> list[Row]:
    rows: list[Row] = []
    ours: dict[int, Outcome] = {}
    floors: dict[int, Outcome] = {}
    for letter, runs in zip("abc", (10, b.runs // 10, b.runs), strict=True):
        if runs == b.runs:
            root = b.filled()
        else:
            root = scratch_repository(b.base / f"commit-{runs}")
            fill(root, runs)
        found = gitexp_run.commit_cost(root, b.repeats)
        ours[runs], floors[runs] = found.pop("gitexp"), found["bare pygit2 commit"]
        what = f"one record commit, {runs:,} runs on the branch"
        rows.append(Row(f"6{letter}", what, ours[runs], peers=found))
    ratio: Outcome = "a commit failed"
    peers: dict[str, Outcome] = {}
    first, last, bare_first, bare_last = ours[10], ours[b.runs], floors[10], floors[b.runs]
    if isinstance(first, Figure) and isinstance(last, Figure):
        ratio = Figure([last.median / first.median], "x")
    if isinstance(bare_first, Figure) and isinstance(bare_last, Figure):
        peers["bare pygit2 commit"] = Figure([bare_last.median / bare_first.median], "x")
    note = (
        f"{b.repeats} commits of each, in turn with a bare pygit2 commit of the same files "
        "(no lock, checks or packing): the floor. Each branch was filled by one bulk commit "
        "(fixtures.fill)."
    )
    what = f"record commit at {b.runs:,} runs / at 10 runs"
    rows.append(Row("6d", what, ratio, "≤ 5x", within(ratio, 5), peers, False, note))
    return rows


def row7(b: Bench) -> list[Row]:
    root, dvc_root = b.filled(), b.dvc()
    cold = gitexp_run.cold_ms([GITEXP, "log", "-n", "20"], root, b.left())
    peers: dict[str, Action] = {}
    for store_, uri in b.mlflow().items():
        runs = b.mlflow_runs[store_]
        search = MLFLOW_SEARCH.format(uri=uri, runs=runs)
        name = f"MLflow `search_runs`, {store_}" + (f" ({runs:,} runs)" if runs else "")
        peers[name] = process([sys.executable, "-c", search]) if runs else "skipped in --quick"
    experiments = len(b.experiments())
    show = process([DVC, "exp", "show", "--no-pager"], dvc_root)
    peers[f"`dvc exp show` ({experiments} experiments)"] = show
    peers["W&B offline"] = "keeps no local index to list runs"
    found = gitexp_run.listing(root, b.rounds, peers, warm=False)  # warmed by the cold call
    ours = {name: found.pop(name) for name in ("gitexp log", "gitexp log --json")}
    rows = []
    for letter, (name, figure) in zip("ab", ours.items(), strict=True):
        what = f"`{name}` of {b.runs:,} runs, whole process, warm index"
        rows.append(Row(f"7{letter}", what, figure, "≤ 300 ms", within(figure, 300), found))
    rows[-1].note = (
        f"every run printed; the first `gitexp log` on the repository (building its index) "
        f"took {seconds(cold)}. MLflow: whole process, `mlflow.search_runs` of every run (a "
        "DataFrame), its import included; the runs were made beforehand through "
        "MlflowClient (20 params, 5 metrics each)."
    )
    return rows


def row8(b: Bench) -> list[Row]:
    root, dvc_root = b.filled(), b.dvc()
    names = b.experiments()
    peers: dict[str, Action] = {
        f"`dvc exp diff` ({len(names)} experiments)": process(
            [DVC, "exp", "diff", names[0], names[1]], dvc_root
        ),
        "MLflow, W&B": "no diff of two runs outside their web UIs",
    }
    command([GITEXP, "diff", "--no-pager", run_id(0), run_id(1)], root)  # indexes inputs
    found = gitexp_run.diff(root, run_id(0), run_id(1), b.rounds, peers, warm=False)
    ours = found.pop("gitexp diff")
    what = f"`gitexp diff A B` of two runs among {b.runs:,} (one axis apart)"
    return [Row("8", what, ours, "≤ 300 ms", within(ours, 300), found)]


def row9(b: Bench) -> list[Row]:
    start = time.monotonic()
    root, ids = gitexp_run.signed_repository(b.base / "signed" / "repo", b.signed)
    built = time.monotonic() - start
    # Each call may take a share of what is left once row 10's is set aside, so that together
    # they never overrun the budget however slow verify is: half for the cold and warm calls,
    # most for the first --all (the slowest), all of it for the last.
    shares, caps = iter((0.5, 0.5, 0.85, 1.0)), list[float]()

    def cap() -> float:
        caps.append(b.left(reserve=20 if b.quick else 60) * next(shares))
        return caps[-1]

    found = gitexp_run.verify(root, ids[len(ids) // 2], max(1, b.rounds - 2), cap)
    rows = []
    for letter, (name, figure) in zip("abcd", found.items(), strict=True):
        warm = name == "ONE_ID, warm"  # the budget's case: cold includes building the index
        what = f"`gitexp verify {name}` at {b.signed:,} ssh-signed runs, one commit each"
        figure = seconds(figure)
        budget, met = ("≤ 300 ms", under_300ms(figure)) if warm else ("—", None)
        rows.append(Row(f"9{letter}", what, figure, budget, met))
    rows[-1].note = (
        f"the branch was built in {built:.0f} s by fixtures.signed_runs (one pack; each run "
        "commit signed in-process: an Ed25519 SSHSIG that `git verify-commit` accepts with "
        "`gpg.format=ssh` and an allowedSignersFile). Cold: the first gitexp command on the "
        "repository (it builds the index); warm: after it. `--all` twice: the second may "
        f"reuse what the first checked. Each call was to stop after {number(min(caps))}"
        f"{DASH}{number(max(caps))} s (its share of the time left)."
    )
    return rows


def row10(b: Bench) -> list[Row]:
    root = scratch_repository(b.base / f"scale-{b.scale}")
    signed = 10
    fill(root, b.scale - signed)
    found = gitexp_run.commit_cost(root, max(3, b.rounds))
    ours = found.pop("gitexp")
    rows = [Row("10a", f"one record commit, {b.scale:,} runs on the branch", ours, peers=found)]
    key = SshKey(root.parent)
    key.configure(root)
    ws = open_workspace(root)
    head = str(ws.repo.head.target)
    ids = [run_id(n) for n in range(b.scale - signed, b.scale)]
    for n, rid in enumerate(ids, b.scale - signed):
        message = (f"gitexp: run {rid} succeeded", "")
        store.write_run(ws, rid, record(rid, n, head), message, snapshot=head)
    cold = gitexp_run.cold_ms([GITEXP, "log", "-n", "20"], root, b.left(10) / 2)
    what = f"first `gitexp log -n 20` at {b.scale:,} runs (it builds the index)"
    rows.append(Row("10b", what, seconds(cold)))
    limit = b.left(10) / 7  # each of the 6 calls below, with some to spare
    timed: dict[str, Action] = {
        "`gitexp log`": process([GITEXP, "log"], root, limit),
        "`gitexp diff A B`": process([GITEXP, "diff", "--no-pager", ids[0], ids[1]], root, limit),
        "`gitexp verify ONE_ID`": process([GITEXP, "verify", ids[-3]], root, limit),
    }
    if not isinstance(cold, Figure):  # each would only start building the index again
        timed = {name: "needs the index that 10b could not build" for name in timed}
    found = interleaved(timed, max(1, b.rounds - 2))
    for letter, (name, figure) in zip("cde", found.items(), strict=True):
        figure = seconds(figure)
        what = f"{name} at {b.scale:,} runs, whole process, warm"
        rows.append(Row(f"10{letter}", what, figure, "(≤ 300 ms at 10,000)", under_300ms(figure)))
    rows[-1].note = (
        f"the branch: one bulk commit of {b.scale - signed:,} unsigned runs, the commit row's "
        f"commits, then {signed} runs written by gitexp's store with ssh signing; `diff` and "
        "`verify` take two of those. A history of one commit per run would be O(N²) bytes "
        "at this size: each commit rewrites the flat experiments/ listing."
    )
    return rows


def row11(b: Bench) -> list[Row]:
    big = gitexp_run.pinned_repository(b.base / "big", b.files, 1)
    small = gitexp_run.pinned_repository(b.base / "small", 0, 1)
    launch = [GITEXP, "run", "--", *gitexp_run.PYTHON_PASS]
    peer = "small repository (train.py and the pins)"
    found = interleaved({"big": process(launch, big), peer: process(launch, small)}, b.rounds)
    ours = found.pop("big")
    what = (
        f"`gitexp run -- python -c pass` in a repository of {b.files:,} tracked files and 2 "
        "DVC-pinned files (1 MB each)"
    )
    note = "whole processes, in turn with the same launch in a repository with only the pins"
    return [Row("11", what, ours, peers=found, ratios=False, note=note)]


def row12(b: Bench) -> list[Row]:
    tmp, scale = b.base / "api", 0.1 if b.quick else 1.0
    counts = {api.GITEXP: 1_000_000, "W&B offline": 10_000, "MLflow file store": 2_000,
              "MLflow SQLite": 250, "DVCLive": 500}  # fmt: skip
    counts = {name: int(count * scale) for name, count in counts.items()}
    loops: dict[str, Outcome] = {}
    ends: dict[str, Outcome] = {}
    peaks: dict[str, Outcome] = {}
    tenths = ""
    # --quick times one peer here: each costs seconds of start-up for a figure row 1 has.
    skipped = {n: "skipped in --quick" for n in counts if n not in (api.GITEXP, "W&B offline")}
    for name, count in counts.items():
        if b.quick and name in skipped:
            loops[name] = ends[name] = peaks[name] = skipped[name]
            continue
        try:
            found = api.steps(name, count, tmp)
        except Failed as e:
            loops[name] = ends[name] = peaks[name] = str(e)
            continue
        loop, finish, peak = found["loop_s"], found["finish_s"], found["peaks_mb"]
        assert isinstance(loop, float) and isinstance(finish, float) and isinstance(peak, list)
        loops[name] = Figure([loop * counts[api.GITEXP] / count], "s")  # scaled to one count
        ends[name] = Figure([finish], "s")
        peaks[name] = Figure([float(peak[-1])], "MB")
        tenths = tenths or ", ".join(map(str, peak))
    steps = f"{counts[api.GITEXP]:,}"
    others = ", ".join(f"{name} {count:,}" for name, count in counts.items() if count != 0)
    ours = loops.pop(api.GITEXP), ends.pop(api.GITEXP), peaks.pop(api.GITEXP)
    return [
        Row("12a", f"{steps} logged steps of 3 scalars: time in the loop", ours[0], peers=loops,
            note=f"one process each; steps: {others}; the peers' loop times scaled to {steps}"),
        Row("12b", f"{steps} logged steps: finish() writing the record", ours[1], "≤ 5 s",
            within(ours[1], 5), ends, False, "the peers' figure: finishing their own counts"),
        Row("12c", f"{steps} logged steps: peak RSS", ours[2], "bounded", None, peaks, False,
            f"gitexp's peak RSS at each tenth of the loop, MB: {tenths}"),
    ]  # fmt: skip


def row13(b: Bench) -> list[Row]:
    root = scratch_repository(b.base / "growth")
    command(["git", "config", "gc.autoDetach", "false"], root)  # gitexp's own gc, finished
    ws = open_workspace(root)
    head = str(ws.repo.head.target)
    start = time.perf_counter()
    for n in range(b.growth):
        rid = run_id(n)
        message = (f"gitexp: run {rid} succeeded", "")
        store.write_run(ws, rid, record(rid, n, head), message, snapshot=head)
    spent = (time.perf_counter() - start) / b.growth * 1000

    def counted() -> dict[str, int]:
        text = command(["git", "count-objects", "-v"], root)
        return {k: int(v) for k, v in (line.split(": ") for line in text.splitlines())}

    before = counted()
    command(["git", "gc", "-q"], root)
    per_run = Figure([counted()["size-pack"] / b.growth], "KiB/run")
    what = f"repository growth after `git gc`, {b.growth:,} runs by gitexp's store"
    note = f"`git count-objects -v`: size-pack / runs; {spent:.1f} ms a record commit"
    loose = Figure([before["count"]], "objects")
    note_loose = (
        f"before `git gc`: {number(before['size'] / b.growth)} KiB a run loose on disk, and "
        f"{before['packs']} pack(s) that gitexp's own automatic packing made"
    )
    return [
        Row("13a", what, per_run, "≤ 10 KiB/run", within(per_run, 10), ratios=False, note=note),
        Row("13b", f"loose objects left before `git gc`, {b.growth:,} runs", loose,
            "packed automatically", None, ratios=False, note=note_loose),
    ]  # fmt: skip


def row14(b: Bench) -> list[Row]:
    seed = random.SystemRandom().randrange(2**32)
    trials = 1 if b.quick else 2
    rows = []
    for letter, (name, t) in zip("abc", reliability.measure(trials, seed).items(), strict=True):
        note = (
            f"{t.expected} expected, {t.found} found, {t.lost} lost, {t.phantoms} phantom, "
            f"{t.nonzero} non-zero exits, {t.kills} kills, {t.left} left pending, "
            f"{t.unsound} fsck/reflog failures"
        )
        ok = t.lost == t.unsound == t.phantoms == t.left == 0
        found = Figure([t.found], f"of {t.expected} runs found, {t.lost} lost")
        what = f"reliability: {name}, {trials} trial(s)"
        rows.append(Row(f"14{letter}", what, found, "0 lost, fsck clean", ok, {}, False, note))
    rows[-1].note += f" (seed {seed}: `reliability.py --trials N --seed S` repeats it)"
    return rows


ROWS: dict[int, tuple[str, Callable[[Bench], list[Row]]]] = {
    1: ("`run.log()` of 3 scalars, per call", row1),
    2: ("`run.log()` of a CUDA loss every step", row2),
    3: ("a whole one-run process minus `python -c pass`", row3),
    4: ("`gitexp run -- python -c pass` minus `python -c pass`", row4),
    5: ("CLI start-up", row5),
    6: ("record commit at 10 / 1,000 / 10,000 runs", row6),
    7: ("`gitexp log` of 10,000 runs", row7),
    8: ("`gitexp diff A B` among 10,000 runs", row8),
    9: ("`gitexp verify` at 10,000 signed runs", row9),
    10: ("scale: 100,000 runs", row10),
    11: ("launch in a repository of 100,000 files", row11),
    12: ("1,000,000 logged steps", row12),
    13: ("repository growth per run", row13),
    14: ("reliability", row14),
}
# Cheap rows first (row 1 also warms the page cache for every peer), the open-ended ones
# (verify, scale) last, so that what is left of the budget goes to them.
ORDER = (1, 2, 3, 5, 4, 6, 7, 8, 11, 12, 13, 14, 9, 10)


def machine() -> dict[str, str]:
    def field_of(path: str, key: str) -> str:
        try:
            text = Path(path).read_text()
        except OSError:
            return "?"
        found = re.search(rf"^{key}\s*[:=]\s*\"?(.+?)\"?$", text, re.M)
        return found.group(1).strip() if found else "?"

    ram = field_of("/proc/meminfo", "MemTotal").split()[0]
    ram_gib = f"{int(ram) / 2**20:.0f} GiB" if ram.isdigit() else "?"
    try:
        describe = command(["git", "describe", "--always", "--dirty", "--tags"], HERE).strip()
    except Failed:
        describe = "?"

    def version(package: str) -> str:
        try:
            return importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            return "not installed"

    return {
        "machine": f"{field_of('/proc/cpuinfo', 'model name')}, {os.cpu_count()} cores, "
        f"{ram_gib} RAM, {field_of('/etc/os-release', 'PRETTY_NAME')}, "
        f"{platform.system()} {platform.release()}",
        "Python": platform.python_version(),
        "gitexp": f"{version('gitexp')} ({describe})",
        "pygit2": f"{version('pygit2')} (libgit2 {pygit2.LIBGIT2_VERSION})",
        "git": command(["git", "--version"]).strip().removeprefix("git version "),
        "peers": ", ".join(
            f"{name} {version(package)}"
            for name, package in (
                ("MLflow", "mlflow"),
                ("wandb", "wandb"),
                ("dvc", "dvc"),
                ("dvclive", "dvclive"),
            )
        ),
    }


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def report(header: dict[str, str], rows: list[Row]) -> str:
    lines = [
        "# Benchmark results",
        "",
        "Generated by `make bench` (`benchmarks/bench.py`); do not edit by hand. Rows follow "
        "DESIGN.md §8; peers are timed in turn with gitexp, in fresh processes, telemetry "
        f"off. Peer cells: median (min{DASH}max), then **peer / gitexp** where the ratio means "
        "something (above 1: gitexp is faster).",
        "",
        "| | |",
        "|---|---|",
        *(f"| {key} | {value} |" for key, value in header.items()),
        "",
        f"| # | what | gitexp median (min{DASH}max) | budget (DESIGN §8) | met? | "
        f"peers: median (min{DASH}max), peer / gitexp |",
        "|---|---|---|---|---|---|",
        *("| " + " | ".join(c.replace("|", "\\|") for c in row.cells()) + " |" for row in rows),
        "",
        "## Notes",
        "",
        *(f"- **{row.number}**: {row.note}" for row in rows if row.note),
        "",
    ]
    return "\n".join(lines)


START, END = "<!-- bench:start -->", "<!-- bench:end -->"
README_ROWS = ("1", "3", "4", "5", "7a", "8", "12a")  # the rows README.md quotes


def readme_section(report: str) -> str:
    """A few lines for README.md, read back from a report: the ratios against the peers
    (README_ROWS), and the budgets met and missed."""
    header = dict(re.findall(r"^\| (date|mode) \| (.+) \|$", report, re.M))
    lines = [
        START,
        "## Performance",
        "",
        f"Measured by `make bench` on {header.get('date', '?').split()[0]} ({header.get('mode')} "
        "run, 2-core machine), gitexp timed in turn with its peers; every figure, the machine "
        "and the versions are in [benchmarks/RESULTS.md](benchmarks/RESULTS.md). Generated "
        "from that report by `benchmarks/bench.py`: do not edit.",
        "",
    ]
    met, missed = 0, []
    peer = re.compile(r"(?:^|<br>)([^:<]+?): [^<]*?\*\*([\d,.]+)x\*\*")
    for line in report.splitlines():
        cells = [c.strip().replace("\\|", "|") for c in re.split(r"(?<!\\)\|", line)[1:-1]]
        if len(cells) != 6 or not re.fullmatch(r"\d+[a-z]?", cells[0]):
            continue  # not a row of the results table
        row, what, ours, budget, verdict, peers = cells
        median = ours.split(" (")[0]
        ratios = [f"{name} {r}x" for name, r in peer.findall(peers) if "floor" not in name]
        if row in README_ROWS and ratios and not median.startswith("n/a"):
            ratios_ = ", ".join(ratios)
            lines.append(f"- {what}: gitexp {median}; the peers, in multiples of that: {ratios_}.")
        met += verdict == "yes"
        if verdict == "**no**":
            missed.append(f"{row} ({median}; budget {budget})")
    lines.append(
        f"- Budgets of DESIGN.md §8: {met} of {met + len(missed)} met"
        + (f"; missed: {', '.join(missed)}." if missed else ".")
    )
    return "\n".join([*lines, END])


def write_readme(section: str) -> None:
    readme = HERE.parent / "README.md"
    text = readme.read_text()
    if START in text and END in text:
        text = text[: text.index(START)] + section + text[text.index(END) + len(END) :]
    else:  # first time: before the development notes, after the reference sections
        text = text.replace("## Development\n", f"{section}\n\n## Development\n", 1)
    readme.write_text(text)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, few repeats (≤ 2 min)")
    parser.add_argument("--only", help="comma-separated row numbers, for working on a few")
    parser.add_argument("--out", type=Path, default=HERE / "RESULTS.md", help="report path")
    parser.add_argument(
        "--readme",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="refresh README.md's Performance section (default: on a full run)",
    )
    parser.add_argument(
        "--readme-only", action="store_true", help="only refresh README.md's from --out's report"
    )
    args = parser.parse_args()
    if args.readme_only:
        write_readme(readme_section(args.out.read_text()))
        return 0
    chosen = [int(n) for n in args.only.split(",")] if args.only else list(ORDER)
    readme = args.readme if args.readme is not None else not (args.quick or args.only)
    started, wall = time.strftime("%Y-%m-%d %H:%M %Z"), time.monotonic()
    before = load()
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="gitexp-bench-") as tmp:
        base = Path(tmp)
        seal(base / "home")
        (base / "api").mkdir()
        # 15 and 2 minutes in all, less `make bench`'s install step and the report's writing.
        bench = Bench(args.quick, base, budget_s=105 if args.quick else 840)
        bare = interleaved({"": process([sys.executable, "-c", "pass"])}, bench.repeats)[""]
        for number_ in (n for n in ORDER if n in chosen):
            title, make = ROWS[number_]
            start = time.monotonic()
            try:
                rows += make(bench)
            except Exception as e:  # one broken row must not cost the others
                reason = str(e).splitlines()[0] if str(e) else type(e).__name__
                rows.append(Row(str(number_), title, f"failed: {type(e).__name__}: {reason}"))
            print(
                f"bench: row {number_} ({title}) {time.monotonic() - start:.0f} s",
                file=sys.stderr,
                flush=True,
            )
    rows.sort(key=lambda row: (int(row.number.rstrip("abcdefghijklmnopqrstuvwxyz")), row.number))
    header = {
        "date": started,
        "mode": "--quick: small sizes, few repeats" if args.quick else "full",
        **machine(),
        "load average (1, 5, 15 min)": f"before {before}; after {load()}",
        "`python -c pass`": str(bare),
        "wall time": f"{time.monotonic() - wall:.0f} s",
    }
    args.out.write_text(report(header, rows))
    print(f"bench: wrote {args.out} in {number(time.monotonic() - wall)} s", file=sys.stderr)
    if readme:
        write_readme(readme_section(args.out.read_text()))
        print("bench: refreshed README.md's Performance section", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
