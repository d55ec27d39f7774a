"""gitexp's launch, commit, listing and verification costs (DESIGN.md §8).

    .venv/bin/python benchmarks/run.py [--quick]    # `make bench` runs all of it via bench.py

The functions here each time gitexp against the floor it is compared with, and take the
peers' actions from bench.py to time in the same rounds. Alone, this script prints
gitexp's own figures as Markdown, medians (min-max) over repeats; nothing here is a
pass/fail test.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path

import pygit2
from fixtures import SshKey, fill, record, run_id, scratch_repository, signed_runs
from pygit2.enums import FileMode
from timing import GITEXP, Action, Figure, Outcome, interleaved, process, run, seal

from gitexp import store
from gitexp.workspace import open_workspace

Peers = Mapping[str, Action]
PYTHON_PASS = [sys.executable, "-c", "pass"]
COUNTER = iter(range(10**9))  # run ids never repeat, however often a repository is measured


def launch(
    root: Path, repeats: int, peers: Peers | None = None, warm: bool = True
) -> dict[str, Outcome]:
    """`gitexp run -- python -c pass` and a bare `python -c pass`, whole processes."""
    actions = {
        "python -c pass": process(PYTHON_PASS),
        "gitexp": process([GITEXP, "run", "--", *PYTHON_PASS], root),
        **(peers or {}),
    }
    return interleaved(actions, repeats, warm=warm)


def hook_overhead(base: Path, repeats: int) -> tuple[float, float]:
    """`python -c pass` and an argparse script, each with the start-up hook of `gitexp run`
    against without it: what observing the training process costs it."""
    from gitexp import boot

    folder = base / "hook-run"
    folder.mkdir()
    env = dict(os.environ)
    hooked = {**env, "PYTHONPATH": boot.child_pythonpath(env), "GITEXP_RUN_DIR": str(folder)}
    parse = "import argparse; p = argparse.ArgumentParser(); p.add_argument('--lr'); p.parse_args()"
    costs = []
    for code in ("pass", parse):
        times: dict[str, list[float]] = {"bare": [], "hooked": []}
        for _ in range(repeats):  # in turn, so that drift weighs on both
            for name, environ in (("bare", env), ("hooked", hooked)):
                start = time.perf_counter()
                subprocess.run([sys.executable, "-c", code], check=True, env=environ)
                times[name].append((time.perf_counter() - start) * 1000)
        costs.append(statistics.median(times["hooked"]) - statistics.median(times["bare"]))
    return costs[0], costs[1]


def pinned_repository(root: Path, files: int, pinned_mb: float) -> Path:
    """A repository with `files` small tracked files, set up by `gitexp init` (DVC too), and
    two DVC-pinned files of `pinned_mb` MB each."""
    scratch_repository(root)
    for i in range(files):
        folder = root / "src" / f"m{i // 1000:03d}"
        if i % 1000 == 0:
            folder.mkdir(parents=True)
        (folder / f"f{i:06d}.py").write_text(f"X = {i}\n")
    run([GITEXP, "init"], root)
    (root / "data").mkdir()
    for name in ("a.bin", "b.bin"):
        (root / "data" / name).write_bytes(os.urandom(int(pinned_mb * (1 << 20))))
    run([sys.executable, "-m", "dvc", "add", "-q", "data/a.bin", "data/b.bin"], root)
    run(["git", "add", "-A"], root)
    run(["git", "commit", "-q", "-m", "files and data"], root)
    return root


def data_launch_overhead(base: Path, repeats: int, gigabytes: float) -> Figure:
    """`gitexp run -- python -c pass` in a repository with a DVC-pinned dataset of that size."""
    root = pinned_repository(base / "data", 0, gigabytes * 1024 / 2)
    found = interleaved({"gitexp": process([GITEXP, "run", "--", *PYTHON_PASS], root)}, repeats)
    assert isinstance(found["gitexp"], Figure), found["gitexp"]
    return found["gitexp"]


def commit_cost(root: Path, repeats: int) -> dict[str, Outcome]:
    """One record commit through gitexp's store, timed in turn with the floor: a bare pygit2
    commit of the same files on the same branch (no locking, checks or packing)."""
    ws = open_workspace(root)
    repo = ws.repo
    head = str(repo.head.target)  # a snapshot that exists: `diff` reads every run's

    def gitexp_commit() -> None:
        n = next(COUNTER)
        rid = f"29990101-000000-{n:07d}"
        store.write_run(ws, rid, record(rid, n, head), ("bench", ""))

    def bare_commit() -> None:
        n = next(COUNTER)
        rid = f"29990101-000000-b{n:06d}"
        ref = repo.references[ws.runs_ref]
        parent = repo[ref.target].peel(pygit2.Commit)
        folder = repo.TreeBuilder()
        for name, data in record(rid, n, head).items():
            folder.insert(name, repo.create_blob(data), FileMode.BLOB)
        listing = repo.TreeBuilder(parent.tree["experiments"].peel(pygit2.Tree))
        listing.insert(rid, folder.write(), FileMode.TREE)
        top = repo.TreeBuilder(parent.tree)
        top.insert("experiments", listing.write(), FileMode.TREE)
        who = repo.default_signature
        oid = repo.create_commit(None, who, who, "bare", top.write(), [parent.id])
        ref.set_target(oid)

    return interleaved({"bare pygit2 commit": bare_commit, "gitexp": gitexp_commit}, repeats)


def listing(
    root: Path, repeats: int, peers: Peers | None = None, warm: bool = True
) -> dict[str, Outcome]:
    """Whole `gitexp log` processes that print every run, once the index is built."""
    actions = {
        "gitexp log": process([GITEXP, "log"], root),
        "gitexp log --json": process([GITEXP, "log", "--json"], root),
        **(peers or {}),
    }
    return interleaved(actions, repeats, warm=warm)


def cold_ms(command: list[str], root: Path, timeout: float | None = None) -> Outcome:
    """One whole process, the first gitexp command on a repository (it builds the index)."""
    start = time.perf_counter()
    try:
        run(command, root, timeout)
    except Exception as e:
        return str(e)
    return Figure([(time.perf_counter() - start) * 1000], "ms")


def diff(
    root: Path, a: str, b: str, repeats: int, peers: Peers | None = None, warm: bool = True
) -> dict[str, Outcome]:
    """`gitexp diff A B` of two runs one axis apart, whole process."""
    actions = {"gitexp diff": process([GITEXP, "diff", "--no-pager", a, b], root), **(peers or {})}
    return interleaved(actions, repeats, warm=warm)


def signed_repository(root: Path, runs: int) -> tuple[Path, list[str]]:
    """A repository whose branch holds `runs` runs, one ssh-signed commit each, and which
    trusts that key in `gitexp verify`."""
    scratch_repository(root)
    key = SshKey(root.parent)
    key.configure(root)
    return root, signed_runs(root, runs, key)


def verify(root: Path, one: str, repeats: int, timeout: Callable[[], float]) -> dict[str, Outcome]:
    """`gitexp verify` of one run, cold (the first command: it builds the index) then warm,
    then of all runs twice (the second may reuse what the first found). Each process is
    stopped after `timeout()` seconds, asked anew for each."""
    one_cold = cold_ms([GITEXP, "verify", one], root, timeout())
    warm = interleaved({"ONE_ID, warm": process([GITEXP, "verify", one], root, timeout())}, repeats)
    return {
        "ONE_ID, cold": one_cold,
        **warm,
        "--all, first": cold_ms([GITEXP, "verify", "--all"], root, timeout()),
        "--all, again": cold_ms([GITEXP, "verify", "--all"], root, timeout()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats, for a smoke test")
    args = parser.parse_args()
    repeats = 3 if args.quick else 11
    runs = 1_000 if args.quick else 10_000
    with tempfile.TemporaryDirectory(prefix="gitexp-bench-") as tmp:
        base = Path(tmp)
        seal(base / "home")
        lines = []
        found = launch(scratch_repository(base / "launch"), repeats)
        lines.append(f"| `python -c pass` | {found['python -c pass']} |")
        lines.append(f"| `gitexp run -- python -c pass` | {found['gitexp']} |")
        empty, parsing = hook_overhead(base, repeats * 3)
        lines.append(f"| start-up hook in `python -c pass` | {empty:+.1f} ms |")
        lines.append(f"| start-up hook in a script that parses its arguments | {parsing:+.1f} ms |")
        gigabytes = 0.1 if args.quick else 1.0
        with_data = data_launch_overhead(base, repeats, gigabytes)
        lines.append(f"| gitexp run, {gigabytes:g} GB DVC-pinned | {with_data} |")
        for size in (10, runs):
            root = scratch_repository(base / f"commit-{size}")
            fill(root, size)
            for name, figure in commit_cost(root, repeats).items():
                lines.append(f"| record commit, {size:,} runs on the branch: {name} | {figure} |")
        cold = cold_ms([GITEXP, "log", "-n", "20"], root)
        lines.append(f"| `gitexp log -n 20`, {runs:,} runs, first call | {cold} |")
        for name, figure in listing(root, repeats).items():
            lines.append(f"| `{name}`, {runs:,} runs, warm | {figure} |")
        for name, figure in diff(root, run_id(0), run_id(1), repeats).items():
            lines.append(f"| `{name} A B`, one axis, {runs:,} runs | {figure} |")
        root, ids = signed_repository(base / "signed" / "repo", runs // 10)
        for name, figure in verify(root, ids[len(ids) // 2], repeats, lambda: 600).items():
            lines.append(f"| `gitexp verify {name}`, {len(ids):,} signed runs | {figure} |")
    print("| measurement | median (min\u2013max) |\n|---|---|")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
