"""The Python API against its peers (DESIGN.md §8), each in a fresh process.

    .venv/bin/python benchmarks/api.py [--quick]    # `make bench` runs it via bench.py

1. `run.log()` of 3 scalars per call: gitexp, the floor (a buffered `json.dumps` + write of
   one line), W&B offline, MLflow with a file store and with SQLite, DVCLive (3
   `log_metric` and a `next_step`, its unit of one step).
2. A whole `python train.py` process that records one run with 20 params and 5 metrics,
   minus `python -c pass`.
3. 1,000,000 logged steps: time in the loop, peak memory, and the time to write the record
   at the end; the peers' loops scaled down to a few seconds each.
Trackers are timed in turn, round after round; a tracker that fails says why.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import textwrap
from collections.abc import Callable, Mapping
from pathlib import Path

from fixtures import scratch_repository
from timing import Action, Figure, Outcome, interleaved, process, python, seal

PARAMS = {f"param_{i}": i * 0.5 for i in range(20)}
GITEXP, FLOOR = "gitexp", "floor (json.dumps + write)"

# Each snippet sets up its tracker, then `log(i)` logs 3 scalars at step i, and `end()`
# finishes the run. {tmp} is the tracker's own scratch folder.
TRACKERS = {
    FLOOR: """
        import json
        f = open("{tmp}/floor.jsonl", "w")
        def log(i): f.write(json.dumps({{"step": i, "loss": 0.5, "acc": 0.9, "lr": 1e-3}}) + "\\n")
        def end(): f.close()
    """,
    GITEXP: """
        import gitexp
        run = gitexp.init()
        def log(i): run.log({{"loss": 0.5, "acc": 0.9, "lr": 1e-3}}, step=i)
        def end(): run.finish()
    """,
    "W&B offline": """
        import wandb
        run = wandb.init(mode="offline", dir="{tmp}", project="bench")
        def log(i): run.log({{"loss": 0.5, "acc": 0.9, "lr": 1e-3}}, step=i)
        def end(): run.finish()
    """,
    "MLflow file store": """
        import mlflow
        mlflow.set_tracking_uri("file://{tmp}/mlruns")
        mlflow.start_run()
        def log(i): mlflow.log_metrics({{"loss": 0.5, "acc": 0.9, "lr": 1e-3}}, step=i)
        def end(): mlflow.end_run()
    """,
    "MLflow SQLite": """
        import mlflow
        mlflow.set_tracking_uri("sqlite:///{tmp}/mlflow.db")
        mlflow.start_run()
        def log(i): mlflow.log_metrics({{"loss": 0.5, "acc": 0.9, "lr": 1e-3}}, step=i)
        def end(): mlflow.end_run()
    """,
    # DVCLive writes each metric as it is logged and its summary at each step: a step is
    # its unit, so 3 log_metric and one next_step are one call here. No DVC repository in
    # its folder: it only writes its files.
    "DVCLive": """
        from dvclive import Live
        live = Live(dir="{tmp}/dvclive", save_dvc_exp=False)
        def log(i):
            live.log_metric("loss", 0.5); live.log_metric("acc", 0.9)
            live.log_metric("lr", 1e-3); live.next_step()
        def end(): live.end()
    """,
}
# Calls per process: about a second of logging for each.
CALLS = {
    FLOOR: 200_000,
    GITEXP: 200_000,
    "W&B offline": 3000,
    "MLflow file store": 300,
    "MLflow SQLite": 30,
    "DVCLive": 150,
}

# A whole training process: 20 params, 5 metrics, one run recorded.
METRICS5 = '{{"loss": 0.5, "acc": 0.9, "lr": 1e-3, "grad": 1.0, "epoch": 0}}'
PROCESSES = {
    GITEXP: f"""
        import gitexp
        with gitexp.init(config={{params}}) as run:
            run.log({METRICS5})
    """,
    "W&B offline": f"""
        import wandb
        run = wandb.init(mode="offline", dir="{{tmp}}", project="bench", config={{params}})
        run.log({METRICS5})
        run.finish()
    """,
    "MLflow file store": f"""
        import mlflow
        mlflow.set_tracking_uri("file://{{tmp}}/mlruns")
        with mlflow.start_run():
            mlflow.log_params({{params}})
            mlflow.log_metrics({METRICS5})
    """,
    "MLflow SQLite": f"""
        import mlflow
        mlflow.set_tracking_uri("sqlite:///{{tmp}}/mlflow.db")
        with mlflow.start_run():
            mlflow.log_params({{params}})
            mlflow.log_metrics({METRICS5})
    """,
    "DVCLive": f"""
        from dvclive import Live
        with Live(dir="{{tmp}}/dvclive", save_dvc_exp=False) as live:
            live.log_params({{params}})
            for name, value in {METRICS5}.items():
                live.log_metric(name, value)
            live.next_step()
    """,
}

# Many steps: the loop's time, the peak RSS at each tenth of it, the time to finish.
STEPS = """
    import json, resource, time
    peaks = []
    start = time.perf_counter()
    for i in range({steps}):
        log(i)
        if i % ({steps} // 10) == {steps} // 10 - 1:
            peaks.append(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024)
    loop = time.perf_counter() - start
    start = time.perf_counter()
    end()
    finish = time.perf_counter() - start
    print(json.dumps({{"loop_s": loop, "finish_s": finish, "peaks_mb": peaks}}))
"""


def folder(tmp: Path, name: str) -> Path:
    """The scratch folder a tracker runs in: the git repository for gitexp (and the floor,
    for the same disk), a folder of its own for each peer."""
    if name in (GITEXP, FLOOR):
        return tmp / "repo" if (tmp / "repo").exists() else scratch_repository(tmp / "repo")
    own = tmp / "".join(c if c.isalnum() else "-" for c in name)
    own.mkdir(exist_ok=True)
    return own


def log_cost_us(name: str, calls: int, tmp: Path) -> float:
    """Microseconds per log call, the run's own finish excluded, in a fresh process."""
    cwd = folder(tmp, name)
    setup = textwrap.dedent(TRACKERS[name]).format(tmp=cwd)
    code = setup + textwrap.dedent(f"""
        import time
        for i in range(min(100, {calls})): log(i)
        start = time.perf_counter()
        for i in range(100, 100 + {calls}): log(i)
        elapsed = time.perf_counter() - start
        end()
        print(elapsed / {calls} * 1e6)
    """)
    return float(python(code, cwd).split()[-1])


def calls(name: str, scale: float) -> int:
    return max(10, int(CALLS[name] * scale))


def log_costs(
    tmp: Path, repeats: int, scale: float = 1.0, skip: Mapping[str, str] | None = None
) -> dict[str, Outcome]:
    """µs per `run.log()` of each tracker (but those `skip` says why not), one process per
    sample, trackers in turn; `scale`: of the calls per process."""

    def action(name: str) -> Action:
        return (skip or {}).get(name) or (lambda: log_cost_us(name, calls(name, scale), tmp))

    return interleaved({name: action(name) for name in TRACKERS}, repeats, "µs", warm=False)


# What any git-native tracker in Python pays before its own work: DESIGN.md §8 sets the
# budget of a one-run process at 1.5x the first of these on a slower machine than ours.
FLOORS = {
    "floor: a bare pygit2 commit process": """
        import pygit2
        repo = pygit2.Repository(pygit2.discover_repository("."))
        files = repo.TreeBuilder()
        for i in range(8):
            blob = repo.create_blob(b"x: %d\\n" % i)
            files.insert(f"f{i}.yaml", blob, pygit2.enums.FileMode.BLOB)
        ref = repo.references.get("refs/heads/bare-floor")
        who = pygit2.Signature("bench", "bench@example.com")
        parents = [ref.target] if ref is not None else []
        repo.create_commit("refs/heads/bare-floor", who, who, "floor", files.write(), parents)
    """,
    "floor: importing click, pygit2 and ruamel.yaml": "import click, pygit2, ruamel.yaml",
}


def floors(tmp: Path) -> dict[str, Callable[[], None]]:
    """Actions: the floor processes, in a folder of the scratch repository."""
    cwd = folder(tmp, GITEXP)  # the scratch repository gitexp records its run in
    return {
        name: process([sys.executable, "-c", textwrap.dedent(code)], cwd)
        for name, code in FLOORS.items()
    }


def one_run(name: str, tmp: Path) -> Callable[[], None]:
    """An action: a whole process of `name` that records one run, in its own folder."""
    cwd = folder(tmp, name)
    code = textwrap.dedent(PROCESSES[name]).format(tmp=cwd, params=repr(PARAMS))
    return process([sys.executable, "-c", code], cwd)


def steps(name: str, count: int, tmp: Path) -> dict[str, float | list[int]]:
    """`count` logged steps of `name` in a fresh process: loop_s, finish_s, peaks_mb."""
    cwd = folder(tmp, name)
    code = textwrap.dedent(TRACKERS[name]).format(tmp=cwd)
    code += textwrap.dedent(STEPS.format(steps=count))
    found: dict[str, float | list[int]] = json.loads(python(code, cwd).splitlines()[-1])
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats and steps")
    args = parser.parse_args()
    repeats = 2 if args.quick else 5
    with tempfile.TemporaryDirectory(prefix="gitexp-bench-") as scratch:
        tmp = Path(scratch)
        seal(tmp / "home")
        print(f"## run.log() of 3 scalars, µs per call, {repeats} processes each\n")
        costs = log_costs(tmp, repeats, 0.1 if args.quick else 1.0)
        ours = costs[GITEXP]
        assert isinstance(ours, Figure), ours
        for name, cost in costs.items():
            ratio = f"{cost.median / ours.median:.1f}x" if isinstance(cost, Figure) else ""
            print(f"- {name}: {cost} {ratio}")
        print("\n## one whole run (20 params, 5 metrics), whole process\n")
        bare = {"python -c pass": process([sys.executable, "-c", "pass"])}
        runs = {name: one_run(name, tmp) for name in PROCESSES}
        for name, figure in interleaved({**bare, **runs}, repeats).items():
            print(f"- {name}: {figure}")
        count = 100_000 if args.quick else 1_000_000
        found = steps(GITEXP, count, tmp)
        print(f"\n## {count:,} logged steps of 3 scalars (gitexp)\n\n{found}")


if __name__ == "__main__":
    main()
