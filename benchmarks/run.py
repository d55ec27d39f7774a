"""gitexp's launch and commit costs (DESIGN.md §8), as medians over repeats.

    make bench            # or: .venv/bin/python benchmarks/run.py [--quick]

Measures, in scratch repositories under a temporary directory:
- `gitexp run -- python -c pass` against a bare `python -c pass` (whole processes);
- one record commit with 10, 1,000 and 10,000 runs already on the branch, against a bare
  pygit2 commit of the same files on the same branch (the floor).
Prints a Markdown table; nothing here is a pass/fail test.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import pygit2
from pygit2.enums import FileMode

from gitexp import store
from gitexp.workspace import open_workspace

GITEXP = str(Path(sys.executable).parent / "gitexp")  # the one installed beside this Python
ENV = {key: value for key, value in os.environ.items() if key != "PYTHONDONTWRITEBYTECODE"}
RECORD = {
    name: (f"{name}: a typical small record file\n" * 8).encode()
    for name in ("run.yaml", "config.yaml", "code.yaml", "env.yaml", "seeds.yaml", "output.log")
}


def median_ms(action: Callable[[], object], repeats: int) -> float:
    action()  # warm the page cache and any lazily built state
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        action()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def scratch_repository(root: Path) -> Path:
    root.mkdir(parents=True)
    for args in (
        ["init", "-q", "-b", "main"],
        ["config", "user.name", "bench"],
        ["config", "user.email", "bench@example.com"],
    ):
        subprocess.run(["git", *args], cwd=root, check=True)
    (root / "train.py").write_text("pass\n")
    subprocess.run(["git", "add", "-A"], cwd=root, check=True)
    subprocess.run(["git", "commit", "-q", "-m", "init"], cwd=root, check=True)
    return root


def launch_overhead(base: Path, repeats: int) -> tuple[float, float]:
    root = scratch_repository(base / "launch")
    bare = median_ms(lambda: subprocess.run([sys.executable, "-c", "pass"], check=True), repeats)
    tracked = median_ms(
        lambda: subprocess.run(
            [GITEXP, "run", "--", sys.executable, "-c", "pass"],
            cwd=root,
            check=True,
            stderr=subprocess.DEVNULL,
            env=ENV,
        ),
        repeats,
    )
    return bare, tracked


def fill(root: Path, runs: int) -> None:
    """Put `runs` records on the branch quickly: one commit, as a long history would leave."""
    ws = open_workspace(root)
    repo = ws.repo
    tip = store.ensure_branch(ws)
    experiments = repo.TreeBuilder()
    for i in range(runs):
        folder = repo.TreeBuilder()
        for name, data in RECORD.items():
            folder.insert(name, repo.create_blob(data + str(i).encode()), FileMode.BLOB)
        experiments.insert(f"20260101-000000-{i:07d}", folder.write(), FileMode.TREE)
    top = repo.TreeBuilder(tip.tree)
    top.insert("experiments", experiments.write(), FileMode.TREE)
    who = repo.default_signature
    oid = repo.create_commit(None, who, who, "fill", top.write(), [tip.id])
    repo.references[ws.runs_ref].set_target(oid)
    subprocess.run(["git", "gc", "-q"], cwd=root, check=True)


def commit_cost(base: Path, runs: int, repeats: int) -> tuple[float, float]:
    root = scratch_repository(base / f"commit-{runs}")
    fill(root, runs)
    ws = open_workspace(root)
    repo = ws.repo
    counter = iter(range(10**9))

    def gitexp_commit() -> None:
        n = next(counter)
        store.write_run(ws, f"29990101-000000-{n:07d}", RECORD, ("bench", ""))

    def bare_commit() -> None:
        """The floor: the same tree surgery with no locking, checks or packing."""
        n = next(counter)
        ref = repo.references[ws.runs_ref]
        parent = repo[ref.target].peel(pygit2.Commit)
        folder = repo.TreeBuilder()
        for name, data in RECORD.items():
            folder.insert(name, repo.create_blob(data), FileMode.BLOB)
        listing = repo.TreeBuilder(parent.tree["experiments"].peel(pygit2.Tree))
        listing.insert(f"29990101-000000-b{n:06d}", folder.write(), FileMode.TREE)
        top = repo.TreeBuilder(parent.tree)
        top.insert("experiments", listing.write(), FileMode.TREE)
        who = repo.default_signature
        oid = repo.create_commit(None, who, who, "bare", top.write(), [parent.id])
        ref.set_target(oid)

    return median_ms(bare_commit, repeats), median_ms(gitexp_commit, repeats)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats, for a smoke test")
    args = parser.parse_args()
    repeats = 5 if args.quick else 21
    with tempfile.TemporaryDirectory(prefix="gitexp-bench-") as tmp:
        base = Path(tmp)
        bare, tracked = launch_overhead(base, repeats)
        print("| measurement | median |")
        print("|---|---|")
        print(f"| `python -c pass` | {bare:.0f} ms |")
        print(f"| `gitexp run -- python -c pass` | {tracked:.0f} ms |")
        print(f"| gitexp run overhead | {tracked - bare:.0f} ms |")
        costs = {}
        for runs in (10, 1_000, 10_000):
            costs[runs] = commit_cost(base, runs, repeats)
            floor, ours = costs[runs]
            print(
                f"| record commit, {runs:,} runs on branch | {ours:.1f} ms "
                f"(bare pygit2 commit {floor:.1f} ms) |"
            )
        print(
            f"| commit at 10,000 / at 10 runs | {costs[10_000][1] / costs[10][1]:.2f}x "
            "(budget: <= 5x) |"
        )


if __name__ == "__main__":
    main()
