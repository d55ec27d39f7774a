"""The air gap and the cluster, end to end, with no network: runs on a cluster's clone, a
bundle carried on a stick, imported on a workstation that verifies, restores and
reproduces them; several nodes' runs merged with none lost."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import dvc, git, run_ids

SCRIPT = """\
import argparse, random
import gitexp
parser = argparse.ArgumentParser()
parser.add_argument("--lr", type=float, default=0.1)
parser.add_argument("--seed", type=int, default=0)
args = parser.parse_args()
random.seed(args.seed)
rows = [float(x) for x in open("data/train.csv").read().split()]
loss = args.lr * sum(rows) + random.random()
open("model.bin", "w").write(f"weights {loss!r}\\n")
with gitexp.init() as run:
    run.log({"loss": loss})
"""

_NOWHERE = "http://127.0.0.1:9"  # the discard port: nothing answers


def _no_network() -> list[str]:
    """A prefix that runs a command with no network at all (a network namespace of its
    own), or [] where this machine cannot make one: then proxies point nowhere."""
    unshare = shutil.which("unshare")
    if unshare is None:
        return []
    prefix = [unshare, "--net"] + ([] if os.geteuid() == 0 else ["--map-root-user"])
    works = subprocess.run([*prefix, "true"], capture_output=True, check=False)
    return prefix if works.returncode == 0 else []


OFFLINE = _no_network()
OFFLINE_ENV = {
    **{name: _NOWHERE for name in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY")},
    "GIT_SSH_COMMAND": "false",
}


def gitexp_offline(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`gitexp ARGS` as a process with no network."""
    env = {**os.environ, **OFFLINE_ENV}
    return subprocess.run([*OFFLINE, sys.executable, "-m", "gitexp", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, check=False)  # fmt: skip


def _ok(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_the_sandbox_has_no_network(tmp_path: Path) -> None:
    probe = "import socket; socket.create_connection(('1.1.1.1', 53), timeout=2)"
    done = subprocess.run([*OFFLINE, sys.executable, "-c", probe], capture_output=True,
                          env={**os.environ, **OFFLINE_ENV}, check=False)  # fmt: skip
    assert done.returncode != 0 or not OFFLINE  # where no namespace can be made: proxies only


def _node(root: Path, signing_key: Path | None) -> Path:
    """A repository that trains: DVC data committed, the script, gitexp set up."""
    root.mkdir()
    git(root, "init", "-q", "-b", "main")
    (root / "fit.py").write_text(SCRIPT)
    (root / "data").mkdir()
    (root / "data" / "train.csv").write_text("1\n2\n3\n")
    _ok(gitexp_offline(root, "init"))
    dvc(root, "add", "data/train.csv")
    (root / ".gitignore").write_text("/model.bin\n")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "trainer")
    if signing_key is not None:
        git(root, "config", "gpg.format", "ssh")
        git(root, "config", "user.signingkey", str(signing_key))
    return root


@pytest.mark.slow
def test_across_the_air_gap_runs_verify_restore_and_reproduce(
    project: Path, signing: Path, tmp_path: Path
) -> None:
    allowed = git(project, "config", "gpg.ssh.allowedSignersFile").strip()
    cluster = _node(tmp_path / "cluster", signing)
    for lr in ("0.1", "0.2"):
        _ok(gitexp_offline(cluster, "run", "--output", "model.bin", "--", sys.executable,
                           "fit.py", "--lr", lr, "--seed", "4"))  # fmt: skip
    stick = tmp_path / "stick"
    stick.mkdir()
    _ok(gitexp_offline(cluster, "bundle", "create", str(stick / "runs.gxb")))

    workstation = tmp_path / "workstation"
    git(tmp_path, "clone", "-q", str(cluster), str(workstation))
    git(workstation, "remote", "remove", "origin")  # no way back but the stick
    git(workstation, "config", "gpg.ssh.allowedSignersFile", allowed)
    imported = _ok(gitexp_offline(workstation, "bundle", "import", str(stick / "runs.gxb")))
    assert imported.startswith("imported 2 new runs")
    listed = _ok(gitexp_offline(workstation, "log"))
    assert all(run_id in listed for run_id in run_ids(cluster))
    _ok(gitexp_offline(workstation, "verify", "--all"))
    newest = run_ids(workstation)[0]
    _ok(gitexp_offline(workstation, "checkout", newest, "--artifacts"))
    made = (cluster / "model.bin").read_text()  # the last run's checkpoint, on the cluster
    assert (workstation / "model.bin").read_text() == made
    again = _ok(gitexp_offline(workstation, "reproduce", newest))
    assert again.splitlines()[-1].endswith(f"reproduces run {newest}: every metric exactly")


@pytest.mark.slow
def test_runs_of_many_nodes_merge_through_bundles_with_none_lost(tmp_path: Path) -> None:
    base = _node(tmp_path / "base", None)
    nodes = []
    for name in ("node-a", "node-b"):
        node = tmp_path / name
        git(tmp_path, "clone", "-q", str(base), str(node))
        shutil.copy(base / "data" / "train.csv", node / "data" / "train.csv")  # its DVC data
        for lr in ("0.1", "0.3"):
            _ok(gitexp_offline(node, "run", "--", sys.executable, "fit.py", "--lr", lr))
        _ok(gitexp_offline(node, "bundle", "create", str(tmp_path / f"{name}.gxb")))
        nodes.append(node)
    everyone = sorted({*run_ids(nodes[0]), *run_ids(nodes[1])})
    assert len(everyone) == 4
    for order, name in ((("node-a", "node-b"), "w1"), (("node-b", "node-a"), "w2")):
        workstation = tmp_path / name
        git(tmp_path, "clone", "-q", str(base), str(workstation))
        for source in order:
            bundle = str(tmp_path / f"{source}.gxb")
            _ok(gitexp_offline(workstation, "bundle", "import", "--unverified", bundle))
        assert sorted(run_ids(workstation)) == everyone
        git(workstation, "fsck", "--strict")
    # A node that takes in the other's bundle sees every run too.
    _ok(gitexp_offline(nodes[0], "bundle", "import", "--unverified", str(tmp_path / "node-b.gxb")))
    assert sorted(run_ids(nodes[0])) == everyone
