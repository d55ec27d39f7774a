"""Record commits signed the way git signs, with real keys made in each test."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from .conftest import git, gitexp, gitexp_process, run_ids, ssh_key


def _run() -> None:
    result = gitexp("run", "--", sys.executable, "train.py")
    assert result.exit_code == 0, result.output


def test_records_are_signed_with_ssh_and_git_accepts_them(project: Path, signing: Path) -> None:
    _run()
    _run()

    git(project, "verify-commit", "gitexp/runs")  # raises unless good and trusted
    shown = git(project, "log", "--show-signature", "--first-parent", "gitexp/runs")
    assert shown.count('Good "git" signature for ada@example.com') == 3  # two runs, the root


@pytest.fixture
def gnupg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A throw-away GnuPG home, used by gpg and gpgsm alike."""
    home = tmp_path / "gnupg"
    home.mkdir(mode=0o700)
    monkeypatch.setenv("GNUPGHOME", str(home))
    yield home
    subprocess.run(["gpgconf", "--kill", "all"], check=False, capture_output=True)


def _tool(name: str) -> None:
    if shutil.which(name) is None:
        pytest.skip(f"{name} is not installed")


@pytest.mark.slow
def test_records_are_signed_with_openpgp(project: Path, gnupg: Path) -> None:
    _tool("gpg")
    subprocess.run(
        ["gpg", "--batch", "--passphrase", "", "--quick-gen-key", "Ada <ada@example.com>",
         "ed25519", "sign", "never"],
        check=True, capture_output=True,
    )  # fmt: skip
    listed = subprocess.run(
        ["gpg", "--with-colons", "--list-secret-keys"], check=True, capture_output=True, text=True
    ).stdout
    fingerprint = next(line.split(":")[9] for line in listed.splitlines() if line.startswith("fpr"))
    git(project, "config", "user.signingkey", fingerprint)

    _run()

    git(project, "verify-commit", "gitexp/runs")
    assert "Good signature from" in git(project, "log", "--show-signature", "-1", "gitexp/runs")
    result = gitexp("verify")
    assert result.exit_code == 0
    assert f"good signature by Ada <ada@example.com> (key {fingerprint[-16:]})" in result.stdout


def test_records_are_signed_with_x509(project: Path, gnupg: Path) -> None:
    _tool("gpgsm")
    (gnupg / "gpgsm.conf").write_text("disable-crl-checks\n")  # no CA to ask, offline
    (gnupg / "params").write_text(
        "Key-Type: RSA\nKey-Length: 2048\nKey-Usage: sign\nSerial: random\n"
        "Name-DN: CN=Ada Lovelace,O=Lab\nName-Email: ada@example.com\n"
    )  # a Serial makes gpgsm write a self-signed certificate
    made = subprocess.run(
        ["gpgsm", "--batch", "--pinentry-mode", "loopback", "--passphrase", "", "--gen-key",
         str(gnupg / "params")],
        check=True, capture_output=True,
    )  # fmt: skip
    subprocess.run(["gpgsm", "--import"], input=made.stdout, check=True, capture_output=True)
    listed = subprocess.run(
        ["gpgsm", "--with-colons", "--list-keys"], check=True, capture_output=True, text=True
    ).stdout
    fingerprint = next(line.split(":")[9] for line in listed.splitlines() if line.startswith("fpr"))
    (gnupg / "trustlist.txt").write_text(f"{fingerprint} S relax\n")  # trust it as a root
    git(project, "config", "gpg.format", "x509")
    git(project, "config", "user.signingkey", f"0x{fingerprint[-16:]}")

    _run()

    git(project, "verify-commit", "gitexp/runs")
    result = gitexp("verify")
    assert result.exit_code == 0, result.output
    assert "good signature by /CN=Ada Lovelace/O=Lab" in result.stdout


def test_require_signed_refuses_before_the_command_runs(project: Path) -> None:
    (project / ".gitexp.yaml").write_text("require_signed: true\n")

    result = gitexp("run", "--", sys.executable, "train.py")

    assert result.exit_code == 3
    assert "training" not in result.stdout
    assert result.stderr.startswith(
        "Error: this repository requires signed records (require_signed in .gitexp.yaml) but "
        "git has no signing key: configure a key as for signed git commits, e.g. "
    )
    assert git(project, "branch", "--list", "gitexp/runs") == ""


def test_a_run_that_cannot_be_signed_is_kept_for_recover(
    project: Path, signing: Path, tmp_path: Path
) -> None:
    git(project, "config", "user.signingkey", str(tmp_path / "gone.pub"))

    result = gitexp("run", "--", sys.executable, "train.py")

    assert result.exit_code == 0  # the command's status: schedulers see the truth
    line = result.stderr.splitlines()[-1]  # after the command's own output
    assert line.startswith(f"Error: could not sign with ssh key {tmp_path / 'gone.pub'} (")
    assert line.endswith("is kept, and `gitexp recover` will record it")
    assert gitexp("log").exit_code == 0  # other commands still work meanwhile

    git(project, "config", "user.signingkey", str(signing))
    recovered = gitexp("recover")

    assert recovered.exit_code == 0, recovered.output
    assert len(run_ids(project)) == 1
    assert gitexp("verify").exit_code == 0


def test_a_key_whose_passphrase_nobody_gives_fails_cleanly(project: Path, signing: Path,
                                                           tmp_path: Path) -> None:  # fmt: skip
    locked = ssh_key(tmp_path, "locked", passphrase="secret words")
    git(project, "config", "user.signingkey", str(locked))
    env = {
        k: v for k, v in os.environ.items() if k not in ("DISPLAY", "SSH_ASKPASS", "SSH_AUTH_SOCK")
    }

    # A new session has no terminal to ask on, as under a batch scheduler.
    process = gitexp_process(["run", "--", sys.executable, "train.py"], project, env=env,
                             start_new_session=True, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)  # fmt: skip
    _, err = process.communicate(timeout=60)

    assert process.returncode == 0  # train.py's own status
    assert err.splitlines()[-1].startswith(f"Error: could not sign with ssh key {locked} (")
    assert "Traceback" not in err
    assert len(list((project / ".git" / "gitexp" / "pending").iterdir())) == 1


@pytest.fixture
def agent(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A running ssh-agent of our own, for keys that live only in an agent."""
    socket = tmp_path / "agent.sock"
    # Without -D the agent forks once its socket is ready, and prints its pid.
    started = subprocess.run(["ssh-agent", "-s", "-a", str(socket)], check=True,
                             capture_output=True, text=True).stdout  # fmt: skip
    pid = int(started.split("SSH_AGENT_PID=")[1].split(";")[0])
    monkeypatch.setenv("SSH_AUTH_SOCK", str(socket))
    yield
    os.kill(pid, signal.SIGTERM)


def test_a_key_held_by_an_agent_signs(project: Path, signing: Path, agent: None) -> None:
    subprocess.run(["ssh-add", "-q", str(signing.with_suffix(""))], check=True)
    private = signing.with_suffix("")
    private.rename(private.with_suffix(".away"))  # only the agent can sign now
    git(project, "config", "user.signingkey", f"key::{signing.read_text().strip()}")

    _run()

    git(project, "verify-commit", "gitexp/runs")


def test_a_recovered_run_keeps_the_outcome_it_had(
    project: Path, signing: Path, tmp_path: Path
) -> None:
    git(project, "config", "user.signingkey", str(tmp_path / "gone.pub"))
    assert "is kept" in gitexp("run", "--", sys.executable, "train.py").stderr  # not signed
    git(project, "config", "user.signingkey", str(signing))

    recovered = gitexp("recover")

    (run_id,) = run_ids(project)
    assert recovered.stdout == f"recovered run {run_id} as succeeded\n"
    run = git(project, "show", f"gitexp/runs:experiments/{run_id}/run.yaml")
    assert "status: succeeded\n" in run and "exit_code: 0\n" in run
