"""gitexp's launch and commit costs (DESIGN.md §8), as medians over repeats.

    make bench            # or: .venv/bin/python benchmarks/run.py [--quick]

Measures, in scratch repositories under a temporary directory:
- `gitexp run -- python -c pass` against a bare `python -c pass` (whole processes), and
  what the start-up hook alone costs the command;
- one record commit with 10, 1,000 and 10,000 runs already on the branch, against a bare
  pygit2 commit of the same files on the same branch (the floor).
Prints a Markdown table; nothing here is a pass/fail test.
"""

from __future__ import annotations

import argparse
import functools
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


# A realistic environment: the same for every run, as on one cluster.
PACKAGES = "".join(f"- package{i}==1.{i}.0\n" for i in range(180))
ENV_YAML = f"python:\n  version: 3.11.7\nvariables: {{}}\npackages:\n{PACKAGES}".encode()


def record(run_id: str, n: int, snapshot: str = "0" * 40) -> dict[str, bytes]:
    """The files of a small, valid run record: one point of a 100 lr x 100 seed sweep."""
    started = f"2026-01-01T00:{n // 60 % 60:02d}:{n % 60:02d}.000Z"
    run = (
        f"schema: 1\nid: {run_id}\nname: run{n}\nstatus: succeeded\nexit_code: 0\n"
        f"started: '{started}'\nduration_s: 1.5\ncommand:\n- python\n- train.py\n"
        "cwd: .\ntags: [bench]\nhost: h\nuser: u\n"
    )
    return {
        "run.yaml": run.encode(),
        "config.yaml": f"argv:\n  lr: 0.{n % 100}\nbatch: 32\n".encode(),
        "code.yaml": f"commit: {snapshot}\nsnapshot: {snapshot}\ndirty: false\n".encode(),
        "data.yaml": b"datasets: []\n",
        "env.yaml": ENV_YAML,
        "seeds.yaml": f"seed: {n // 100}\n".encode(),
        "summary.yaml": f"loss:\n  last: 0.{n}\n  last_step: 9\n  count: 10\n".encode(),
        "output.log": b"epoch 0\n" * 8,
    }


def median_ms(action: Callable[[], object], repeats: int) -> float:
    action()  # warm the page cache and any lazily built state
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        action()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def interleaved_ms(
    first: Callable[[], object], second: Callable[[], object], repeats: int
) -> tuple[float, float]:
    """Medians of two actions timed in turn, so that drift in the machine (page cache, a
    growing repository) weighs on both alike."""
    first()
    second()
    times: tuple[list[float], list[float]] = ([], [])
    for _ in range(repeats):
        for action, spent in zip((first, second), times, strict=True):
            start = time.perf_counter()
            action()
            spent.append((time.perf_counter() - start) * 1000)
    return statistics.median(times[0]), statistics.median(times[1])


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


def hook_overhead(base: Path, repeats: int) -> tuple[float, float]:
    """`python -c pass` and an argparse script, each with the start-up hook of `gitexp run`
    against without it: what observing the training process costs it."""
    from gitexp import boot

    folder = base / "hook-run"
    folder.mkdir()
    hooked = {**ENV, "PYTHONPATH": boot.child_pythonpath(ENV), "GITEXP_RUN_DIR": str(folder)}
    parse = "import argparse; p = argparse.ArgumentParser(); p.add_argument('--lr'); p.parse_args()"
    costs = []
    for code in ("pass", parse):
        times: dict[str, list[float]] = {"bare": [], "hooked": []}
        for _ in range(repeats):  # in turn, so that drift weighs on both
            for name, env in (("bare", ENV), ("hooked", hooked)):
                start = time.perf_counter()
                subprocess.run([sys.executable, "-c", code], check=True, env=env)
                times[name].append((time.perf_counter() - start) * 1000)
        costs.append(statistics.median(times["hooked"]) - statistics.median(times["bare"]))
    return costs[0], costs[1]


def data_launch_overhead(base: Path, repeats: int, gigabytes: float) -> float:
    """`gitexp run -- python -c pass` in a repository with a DVC-pinned dataset of that size."""
    root = scratch_repository(base / "data")
    subprocess.run([GITEXP, "init"], cwd=root, check=True, capture_output=True, env=ENV)
    (root / "data").mkdir()
    chunk = os.urandom(1 << 20)
    with open(root / "data" / "big.bin", "wb") as f:
        for _ in range(int(gigabytes * 1024)):
            f.write(chunk)
    dvc = [sys.executable, "-m", "dvc", "add", "-q", "data/big.bin"]
    subprocess.run(dvc, cwd=root, check=True, env=ENV)
    subprocess.run(["git", "add", "-A"], cwd=root, check=True)
    subprocess.run(["git", "commit", "-q", "-m", "data"], cwd=root, check=True)
    return median_ms(
        lambda: subprocess.run(
            [GITEXP, "run", "--", sys.executable, "-c", "pass"],
            cwd=root, check=True, stderr=subprocess.DEVNULL, env=ENV,
        ),
        repeats,
    )  # fmt: skip


def fill(root: Path, runs: int) -> None:
    """Put `runs` records on the branch quickly: one commit, as a long history would leave."""
    ws = open_workspace(root)
    repo = ws.repo
    tip = store.ensure_branch(ws)
    head = str(repo.head.target)
    experiments = repo.TreeBuilder()
    for i in range(runs):
        run_id = f"20260101-000000-{i:07d}"
        folder = repo.TreeBuilder()
        for name, data in record(run_id, i, head).items():
            folder.insert(name, repo.create_blob(data), FileMode.BLOB)
        experiments.insert(run_id, folder.write(), FileMode.TREE)
    top = repo.TreeBuilder(tip.tree)
    top.insert("experiments", experiments.write(), FileMode.TREE)
    who = repo.default_signature
    oid = repo.create_commit(None, who, who, "fill", top.write(), [tip.id])
    repo.references[ws.runs_ref].set_target(oid)
    subprocess.run(["git", "gc", "-q"], cwd=root, check=True)


def log_ms(root: Path, repeats: int) -> tuple[float, float]:
    """`gitexp log`, whole process: building the index once, then warm."""
    command = [GITEXP, "log", "-n", "20"]
    start = time.perf_counter()
    subprocess.run(command, cwd=root, check=True, capture_output=True, env=ENV)
    cold = (time.perf_counter() - start) * 1000
    warm = median_ms(
        lambda: subprocess.run(command, cwd=root, check=True, capture_output=True, env=ENV),
        repeats,
    )
    return cold, warm


def listing_ms(root: Path, repeats: int) -> dict[str, float]:
    """Whole `gitexp log` processes that print every one of 10,000 runs, warm index."""
    commands = {
        "`gitexp log`": ["log"],
        "`gitexp log --json`": ["log", "--json"],
        "`gitexp log --columns … --where … --sort …`": [
            "log", "--columns", "config.argv.lr,summary.loss.last", "--where",
            "config.argv.lr>=0.5", "--sort", "-summary.loss.last",
        ],
    }  # fmt: skip

    def run(args: list[str]) -> None:
        subprocess.run([GITEXP, *args], cwd=root, check=True, capture_output=True, env=ENV)

    return {
        name: median_ms(functools.partial(run, args), repeats) for name, args in commands.items()
    }


def diff_ms(root: Path, repeats: int) -> dict[str, float]:
    """`gitexp diff`, whole process, at 10,000 runs: one axis, and refused (two axes)."""
    plain = [GITEXP, "diff", "--no-pager", "20260101-000000-0000000", "20260101-000000-0000001"]
    refused = [GITEXP, "diff", "20260101-000000-0000000", "20260101-000000-0000101"]

    def run(command: list[str]) -> None:
        subprocess.run(command, cwd=root, capture_output=True, env=ENV, check=False)

    start = time.perf_counter()
    run(refused)  # the first refusal reads every run's inputs into the index
    first = (time.perf_counter() - start) * 1000
    return {
        "one axis": median_ms(lambda: run(plain), repeats),
        "refused, first": first,
        "refused": median_ms(lambda: run(refused), repeats),
    }


def verify_s(base: Path, runs: int) -> tuple[float, float]:
    """`gitexp verify --all` of `runs` ssh-signed runs, one commit each: (seconds, per run ms).

    Every creating commit is checked by `git verify-commit`, which runs ssh-keygen: that
    process per run is the cost.
    """
    root = scratch_repository(base / f"verify-{runs}")
    key = base / "signing-key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    allowed = base / "allowed_signers"
    allowed.write_text("bench@example.com " + key.with_suffix(".pub").read_text())
    for name, value in (
        ("gpg.format", "ssh"),
        ("user.signingkey", str(key.with_suffix(".pub"))),
        ("gpg.ssh.allowedSignersFile", str(allowed)),
    ):
        subprocess.run(["git", "config", name, value], cwd=root, check=True)
    ws = open_workspace(root)
    head = str(ws.repo.head.target)
    for n in range(runs):
        run_id = f"20260101-000000-{n:07d}"
        message = (f"gitexp: run {run_id} succeeded", "")
        store.write_run(ws, run_id, record(run_id, n, head), message, snapshot=head)
    start = time.perf_counter()
    subprocess.run([GITEXP, "verify", "--all"], cwd=root, check=True, capture_output=True, env=ENV)
    seconds = time.perf_counter() - start
    return seconds, seconds * 1000 / runs


def commit_cost(base: Path, runs: int, repeats: int) -> tuple[float, float]:
    root = base / f"commit-{runs}"
    if not root.exists():
        scratch_repository(root)
        fill(root, runs)
    ws = open_workspace(root)
    repo = ws.repo
    counter = iter(range(10**9))

    def gitexp_commit() -> None:
        n = next(counter)
        run_id = f"29990101-000000-{n:07d}"
        store.write_run(ws, run_id, record(run_id, n), ("bench", ""))

    def bare_commit() -> None:
        """The floor: the same tree surgery with no locking, checks or packing."""
        n = next(counter)
        ref = repo.references[ws.runs_ref]
        parent = repo[ref.target].peel(pygit2.Commit)
        folder = repo.TreeBuilder()
        for name, data in record(f"b{n}", n).items():
            folder.insert(name, repo.create_blob(data), FileMode.BLOB)
        listing = repo.TreeBuilder(parent.tree["experiments"].peel(pygit2.Tree))
        listing.insert(f"29990101-000000-b{n:06d}", folder.write(), FileMode.TREE)
        top = repo.TreeBuilder(parent.tree)
        top.insert("experiments", listing.write(), FileMode.TREE)
        who = repo.default_signature
        oid = repo.create_commit(None, who, who, "bare", top.write(), [parent.id])
        ref.set_target(oid)

    return interleaved_ms(bare_commit, gitexp_commit, repeats)


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
        empty, parsing = hook_overhead(base, repeats * 3)
        print(f"| start-up hook in `python -c pass` | {empty:+.1f} ms |")
        print(f"| start-up hook in a script that parses its arguments | {parsing:+.1f} ms |")
        gigabytes = 0.1 if args.quick else 1.0
        with_data = data_launch_overhead(base, repeats, gigabytes)
        print(
            f"| `gitexp run -- python -c pass`, {gigabytes:g} GB DVC-pinned dataset | "
            f"{with_data:.0f} ms ({(with_data - bare) / (tracked - bare):.2f}x the overhead "
            "without data; budget: <= 2x) |"
        )
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
        cold, warm = log_ms(base / "commit-10000", repeats)
        print(f"| `gitexp log -n 20`, 10,000 runs, first call (builds the index) | {cold:.0f} ms |")
        print(f"| `gitexp log -n 20`, 10,000 runs, warm | {warm:.0f} ms (budget: <= 300 ms) |")
        for name, ms in listing_ms(base / "commit-10000", repeats).items():
            print(f"| {name}, all 10,000 runs, warm | {ms:.0f} ms (budget: <= 300 ms) |")
        diffs = diff_ms(base / "commit-10000", repeats)
        print(f"| `gitexp diff A B`, one axis, 10,000 runs | {diffs['one axis']:.0f} ms "
              "(budget: <= 300 ms) |")  # fmt: skip
        print(f"| `gitexp diff A B` refused with its single-axis neighbours, 10,000 runs | "
              f"{diffs['refused']:.0f} ms (first call, indexing inputs: "
              f"{diffs['refused, first']:.0f} ms) |")  # fmt: skip
        signed = 200 if args.quick else 1_000
        seconds, per_run = verify_s(base, signed)
        print(f"| `gitexp verify --all`, {signed:,} ssh-signed runs | {seconds:.1f} s "
              f"({per_run:.1f} ms per run) |")  # fmt: skip


if __name__ == "__main__":
    main()
