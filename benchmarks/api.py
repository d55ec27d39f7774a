"""The Python API against its peers (DESIGN.md §8), medians over repeats, in one run.

    make bench        # or: .venv/bin/python benchmarks/api.py [--quick]

1. `run.log()` of 3 scalars per call: gitexp, the floor (a buffered `json.dumps` + write of
   one line), W&B offline, MLflow with a file store and with SQLite.
2. A whole `python train.py` process that records one run with 20 params and 5 metrics,
   minus `python -c pass`: gitexp, W&B offline, MLflow file store.
3. 1,000,000 logged steps: peak memory, and the time to write the record at the end.
Peers missing from the environment (`pip install -e '.[bench]'`) are reported as such.
Each measurement runs in a fresh process in a scratch git repository.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

PARAMS = {f"param_{i}": i * 0.5 for i in range(20)}
# MLflow 3 keeps its file store only on request: it is the store the budget names.
ENV = {**os.environ, "MLFLOW_ALLOW_FILE_STORE": "true", "WANDB_SILENT": "true"}
# Installed packages come with their bytecode; let the source checkout's be cached too, as
# it is on any machine that does not forbid it.
ENV.pop("PYTHONDONTWRITEBYTECODE", None)

# Each snippet sets up its tracker, then `log(i)` logs 3 scalars at step i, and `end()`
# finishes the run. {tmp} is a scratch folder.
TRACKERS = {
    "floor (json.dumps + write)": """
        import json
        f = open("{tmp}/floor.jsonl", "w")
        def log(i): f.write(json.dumps({{"step": i, "loss": 0.5, "acc": 0.9, "lr": 1e-3}}) + "\\n")
        def end(): f.close()
    """,
    "gitexp": """
        import gitexp
        run = gitexp.init()
        def log(i): run.log({{"loss": 0.5, "acc": 0.9, "lr": 1e-3}}, step=i)
        def end(): run.finish()
    """,
    "W&B offline": """
        import os; os.environ["WANDB_SILENT"] = "true"
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
}
CALLS = {"W&B offline": 3000, "MLflow file store": 300, "MLflow SQLite": 30}
PEER_MODULE = {"W&B offline": "wandb", "MLflow file store": "mlflow", "MLflow SQLite": "mlflow"}

# A whole training process: 20 params, 5 metrics, one run recorded.
PROCESSES = {
    "gitexp": """
        import gitexp
        with gitexp.init(config={params}) as run:
            run.log({{"loss": 0.5, "acc": 0.9, "lr": 1e-3, "grad": 1.0, "epoch": 0}})
    """,
    "W&B offline": """
        import os; os.environ["WANDB_SILENT"] = "true"
        import wandb
        run = wandb.init(mode="offline", dir="{tmp}", project="bench", config={params})
        run.log({{"loss": 0.5, "acc": 0.9, "lr": 1e-3, "grad": 1.0, "epoch": 0}})
        run.finish()
    """,
    "MLflow file store": """
        import mlflow
        mlflow.set_tracking_uri("file://{tmp}/mlruns")
        with mlflow.start_run():
            mlflow.log_params({params})
            mlflow.log_metrics({{"loss": 0.5, "acc": 0.9, "lr": 1e-3, "grad": 1.0, "epoch": 0}})
    """,
}

MILLION = """
    import resource, time, gitexp
    run = gitexp.init()
    log = run.log
    peaks = []
    for i in range({steps}):
        log({{"loss": 0.5, "acc": 0.9, "lr": 1e-3}})
        if i % 100_000 == 99_999:
            peaks.append(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024)
    start = time.perf_counter()
    run.finish()
    print(json.dumps({{"finish_s": time.perf_counter() - start, "peaks_mb": peaks}}))
"""


def scratch_repository(root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for args in (
        ["init", "-q", "-b", "main"],
        ["config", "user.name", "bench"],
        ["config", "user.email", "bench@example.com"],
        ["commit", "-q", "--allow-empty", "-m", "init"],
    ):
        subprocess.run(["git", *args], cwd=root, check=True)
    return root


def available(module: str) -> bool:
    done = subprocess.run([sys.executable, "-c", f"import {module}"], capture_output=True)
    return done.returncode == 0


def python(code: str, cwd: Path) -> str:
    done = subprocess.run(
        [sys.executable, "-c", "import json\n" + textwrap.dedent(code)],
        cwd=cwd, capture_output=True, text=True, env=ENV,
    )  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(done.stderr[-2000:])
    return done.stdout


def log_cost_us(name: str, calls: int, repo: Path, tmp: Path) -> float:
    """Microseconds per log call, the run's own finish excluded, in a fresh process."""
    setup = textwrap.dedent(TRACKERS[name]).format(tmp=tmp)
    code = setup + textwrap.dedent(f"""
        import time
        for i in range(min(100, {calls})): log(i)
        start = time.perf_counter()
        for i in range(100, 100 + {calls}): log(i)
        elapsed = time.perf_counter() - start
        end()
        print(elapsed / {calls} * 1e6)
    """)
    return float(python(code, repo).split()[-1])


def process_ms(code: str, cwd: Path, repeats: int) -> float:
    subprocess.run([sys.executable, "-c", code], cwd=cwd, check=True, capture_output=True, env=ENV)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run(
            [sys.executable, "-c", code], cwd=cwd, check=True, capture_output=True, env=ENV
        )
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats and steps")
    args = parser.parse_args()
    repeats = 3 if args.quick else 7
    steps = 200_000 if args.quick else 1_000_000
    with tempfile.TemporaryDirectory(prefix="gitexp-bench-") as scratch:
        tmp = Path(scratch)
        repo = scratch_repository(tmp / "repo")

        print("## run.log() of 3 scalars, µs per call (median of", repeats, "processes)\n")
        print("| tracker | µs/call | vs gitexp |")
        print("|---|---|---|")
        costs: dict[str, float] = {}
        for name in TRACKERS:
            if name in PEER_MODULE and not available(PEER_MODULE[name]):
                print(f"| {name} | not installed | |")
                continue
            calls = CALLS.get(name, 200_000)
            costs[name] = statistics.median(
                log_cost_us(name, calls, repo, tmp) for _ in range(repeats)
            )
        for name, cost in costs.items():
            print(f"| {name} | {cost:.2f} | {cost / costs['gitexp']:.1f}x |")

        print("\n## one whole run (20 params, 5 metrics), ms beyond `python -c pass`\n")
        bare = process_ms("pass", repo, repeats * 2)
        print(f"`python -c pass`: {bare:.0f} ms\n")
        print("| tracker | ms beyond python -c pass |")
        print("|---|---|")
        for name, code in PROCESSES.items():
            if name in PEER_MODULE and not available(PEER_MODULE[name]):
                print(f"| {name} | not installed |")
                continue
            source = textwrap.dedent(code).format(tmp=tmp, params=repr(PARAMS))
            print(f"| {name} | {process_ms(source, repo, repeats * 2) - bare:.0f} |")

        print(f"\n## {steps:,} logged steps of 3 scalars (gitexp)\n")
        result = json.loads(python(MILLION.format(steps=steps), repo).splitlines()[-1])
        peaks = result["peaks_mb"]
        print(f"- peak RSS every 100,000 steps, MB: {peaks}")
        print(f"- record written at finish in {result['finish_s']:.2f} s")


if __name__ == "__main__":
    main()
