"""The web view at 10,000 runs: how long `gitexp ui` takes to answer each page, and
`gitexp report --html` to write its file, in a scratch repository (`make bench` does not
run it; it has no peer to be measured beside):

    .venv/bin/python benchmarks/ui.py [--runs 10000] [--repeats 5]

The branch holds `--runs` small records (fixtures.fill) and, after them, a sweep of three
learning rates by three seeds recorded by `gitexp run` with curves of 200 steps. Each page
is asked for once cold (the server's first read of the index) and then `--repeats` times;
the figures are medians (min-max) of the wall time of one HTTP request, body read.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from fixtures import fill, scratch_repository
from timing import seal

TRAIN = """\
import argparse, random
import gitexp
parser = argparse.ArgumentParser()
parser.add_argument("--lr", type=float, default=0.1)
args = parser.parse_args()
with gitexp.init(config=vars(args)) as run:
    rng, loss = random.Random(), 2.0
    for step in range(200):
        loss = loss * (1 - args.lr) + 0.05 * rng.random()
        run.log({"loss": loss, "acc": 1 - loss / 3}, step=step)
"""


def _gitexp(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "gitexp", *args], cwd=root, check=True,
                          capture_output=True, text=True)  # fmt: skip


def _timed(url: str) -> float:
    start = time.perf_counter()
    with urllib.request.urlopen(url, timeout=600) as answer:
        answer.read()
    return time.perf_counter() - start


def _figure(samples: list[float]) -> str:
    return (f"{statistics.median(samples) * 1000:,.0f} ms "
            f"({min(samples) * 1000:,.0f}-{max(samples) * 1000:,.0f})")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="gitexp-bench-ui-") as tmp:
        seal(Path(tmp))
        root = scratch_repository(Path(tmp) / "repo", {"train.py": TRAIN})
        fill(root, args.runs)
        for lr in (0.01, 0.05, 0.2):
            for seed in (1, 2, 3):
                _gitexp(root, "run", "--name", f"lr{lr}", "--seed", str(seed), "--",
                        sys.executable, "train.py", "--lr", str(lr))  # fmt: skip
        listed = json.loads(_gitexp(root, "log", "-n", "9", "--json").stdout)
        sweep = [run["id"] for run in listed]
        server = subprocess.Popen([sys.executable, "-m", "gitexp", "ui", "--port", "0"],
                                  cwd=root, stderr=subprocess.PIPE, text=True)  # fmt: skip
        try:
            assert server.stderr is not None
            base = ""
            for line in server.stderr:
                found = re.search(r"(http://127\.0\.0\.1:\d+/[\w-]+)/$", line.strip())
                if found:
                    base = found[1]
                    break
            pages = {
                f"runs table, first page of {args.runs + 9:,}": "/",
                "runs table, where config.lr=0.05": "/?where=config.lr%3D0.05",
                "runs table, sorted by loss": "/?sort=summary.loss.last",
                "one run's page (2 curves of 200 steps)": f"/run/{sweep[0]}",
                "comparison of the 9 runs (3 bands)": "/compare?" + "&".join(
                    f"run={run_id}" for run_id in sweep),
                "comparison of 2 runs (diff's verdict)": f"/compare?run={sweep[0]}&run={sweep[3]}",
            }  # fmt: skip
            print(f"| page ({args.runs + 9:,} runs on the branch) | cold | warm, median (min-max) "
                  "|")  # fmt: skip
            print("|---|---|---|")
            for what, path in pages.items():
                cold = _timed(base + path)
                warm = [_timed(base + path) for _ in range(args.repeats)]
                print(f"| {what} | {cold * 1000:,.0f} ms | {_figure(warm)} |")
        finally:
            server.terminate()
            server.wait(timeout=60)
        report = Path(tmp) / "report.html"
        written = []
        for _ in range(max(args.repeats // 2, 1)):
            start = time.perf_counter()
            _gitexp(root, "report", "--html", str(report), *sweep)
            written.append(time.perf_counter() - start)
        size = report.stat().st_size
        print(f"| `report --html` of the 9 runs, whole process ({size / 1024:,.0f} KiB) | "
              f"| {_figure(written)} |")  # fmt: skip


if __name__ == "__main__":
    main()
