"""Real repositories per test, sealed from the developer's own git configuration."""

from __future__ import annotations

import contextlib
import os
import pty
import socket
import subprocess
import sys
import threading
import warnings
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

import pygit2
import pytest
from click.testing import CliRunner, Result
from pygit2.enums import ConfigLevel

from gitexp.cli import cli

_LEVELS = (ConfigLevel.GLOBAL, ConfigLevel.XDG, ConfigLevel.SYSTEM)


@contextmanager
def sealed(home: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """git, gitexp and DVC see only `home`'s configuration while this lasts."""
    (home / ".gitconfig").write_text(
        "[user]\n\tname = Ada Lovelace\n\temail = ada@example.com\n"
        "[init]\n\tdefaultBranch = main\n[gc]\n\tautoDetach = false\n"
    )
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    monkeypatch.delenv("GIT_DIR", raising=False)
    monkeypatch.delenv("PYTHONHASHSEED", raising=False)
    monkeypatch.delenv("GITEXP_SEED", raising=False)
    monkeypatch.setenv("NO_COLOR", "1")
    monkeypatch.setenv("DVC_NO_ANALYTICS", "1")  # no network, and no report sent
    # libgit2 looked HOME up once, at import: repoint it too.
    saved = {level: pygit2.settings.search_path[level] for level in _LEVELS}
    for level in _LEVELS:
        pygit2.settings.search_path[level] = str(home)
    try:
        yield home
    finally:
        for level, path in saved.items():
            pygit2.settings.search_path[level] = path


@pytest.fixture
def torchrun_port(monkeypatch: pytest.MonkeyPatch) -> int:
    """A free port for torchrun's rendezvous (its --master-port, read from PET_MASTER_PORT):
    two torchruns at once, in tests on two workers, would both take 29500 and could join
    each other's jobs."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    monkeypatch.setenv("PET_MASTER_PORT", str(port))
    return port


@pytest.fixture(autouse=True)
def hermetic_git(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Path]:
    with sealed(tmp_path_factory.mktemp("home"), monkeypatch) as home:
        # One cache for the whole session (detect-secrets' rules, read once): not the user's.
        monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.getbasetemp() / "cache"))
        yield home


def git(cwd: Path, *args: str) -> str:
    """Run real git, the way a user would check what gitexp did."""
    done = subprocess.run(
        ["git", *args], cwd=cwd, capture_output=True, text=True, errors="replace", check=True
    )
    return done.stdout


TRAIN = """\
import os, sys
print("training", " ".join(sys.argv[1:]))
print("a warning", file=sys.stderr)
sys.exit(int(os.environ.get("EXIT", "0")))
"""


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A git repository with one commit holding train.py, as the current directory."""
    root = tmp_path / "project"
    root.mkdir()
    (root / "train.py").write_text(TRAIN)
    (root / ".gitignore").write_text("*.ckpt\n")
    git(root, "init", "-q")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "initial")
    monkeypatch.chdir(root)
    return root


@contextlib.contextmanager
def _inside(folder: Path) -> Iterator[None]:
    """This process working in `folder` for a while (contextlib.chdir is Python 3.11+)."""
    before = os.getcwd()
    os.chdir(folder)
    try:
        yield
    finally:
        os.chdir(before)


def dvc(root: Path, *args: str) -> None:
    """Real DVC's command line, `dvc ARGS` in `root`, run in this process: a `dvc` process
    costs a second to start, and the tests make hundreds."""
    from dvc.cli import main

    with warnings.catch_warnings(), _inside(root):
        warnings.simplefilter("ignore", DeprecationWarning)  # DVC's own, of pygtrie
        assert main(list(args)) == 0, f"dvc {' '.join(args)} failed"


def with_data_and_script(project: Path, script: str) -> Path:
    """The project after `gitexp init`, with data/train.csv tracked by DVC and `script` as
    fit.py, all committed."""
    assert gitexp("init").exit_code == 0
    (project / "data").mkdir()
    (project / "data" / "train.csv").write_text("1\n2\n3\n")
    dvc(project, "add", "data/train.csv")
    (project / "fit.py").write_text(script)
    git(project, "add", "-A")
    git(project, "commit", "-q", "-m", "trainer")
    return project


def gitexp(*args: str) -> Result:
    """Invoke the CLI in-process, as a user would type it."""
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def gitexp_process(args: Sequence[str], cwd: Path, **kwargs: object) -> subprocess.Popen[str]:
    """`gitexp ARGS` as a real process, for exit codes and signals."""
    given = kwargs.pop("env", os.environ)
    env = {**given, "PYTHONUNBUFFERED": "1"}  # type: ignore[dict-item]
    return subprocess.Popen(  # type: ignore[call-overload, no-any-return]
        [sys.executable, "-m", "gitexp", *args], cwd=cwd, env=env, text=True, **kwargs
    )


def run_ids(root: Path) -> list[str]:
    """Run ids on the branch, newest first, read with git itself."""
    out = git(root, "ls-tree", "--name-only", "gitexp/runs:experiments")
    return sorted(out.split(), reverse=True)  # ids sort by start time


def ssh_key(directory: Path, name: str, passphrase: str = "") -> Path:
    """A new ed25519 key pair; returns the public key's path."""
    key = directory / name
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", passphrase, "-C", name, "-f", str(key)],
        check=True,
    )
    return key.with_suffix(".pub")


@pytest.fixture
def signing(project: Path, tmp_path: Path) -> Path:
    """The project signing with a fresh ssh key that its allowed signers file trusts."""
    public = ssh_key(tmp_path, "ada")
    allowed = tmp_path / "allowed_signers"
    allowed.write_text(f"ada@example.com {public.read_text()}")
    git(project, "config", "gpg.format", "ssh")
    git(project, "config", "user.signingkey", str(public))
    git(project, "config", "gpg.ssh.allowedSignersFile", str(allowed))
    return public


def read_fifo(path: Path, process: subprocess.Popen[str]) -> str:
    """What the run's command writes into the FIFO `path`; '' if gitexp ends first."""
    done = threading.Event()

    def unblock() -> None:  # gitexp died before its command opened the FIFO: stop waiting
        process.wait()
        if not done.is_set():
            with open(path, "w"):
                pass

    threading.Thread(target=unblock, daemon=True).start()
    with open(path) as fifo:
        text = fifo.read()
    done.set()
    return text


def on_terminal(
    args: Sequence[str], cwd: Path, env: Mapping[str, str], errors: bool = False
) -> str:
    """What `gitexp ARGS` shows with its stdout (and with `errors`, its stderr) on a terminal."""
    leader, follower = pty.openpty()
    stderr = follower if errors else subprocess.DEVNULL
    process = subprocess.Popen([sys.executable, "-m", "gitexp", *args], cwd=cwd, env=env,
                               stdout=follower, stderr=stderr)  # fmt: skip
    os.close(follower)
    chunks = []
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # the terminal closed: the process and its pager are done
            break
        if not chunk:
            break
        chunks.append(chunk)
    process.wait()
    os.close(leader)
    return b"".join(chunks).decode()
