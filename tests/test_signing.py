"""Record commits signed the way git signs, with real keys made in each test."""

from __future__ import annotations

import os
import shutil
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
def gpg_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A throw-away gpg home holding one new key; yields its fingerprint."""
    if shutil.which("gpg") is None:
        pytest.skip("gpg is not installed")
    home = tmp_path / "gpg"
    home.mkdir(mode=0o700)
    monkeypatch.setenv("GNUPGHOME", str(home))
    subprocess.run(
        ["gpg", "--batch", "--passphrase", "", "--quick-gen-key", "Ada <ada@example.com>",
         "ed25519", "sign", "never"],
        check=True, capture_output=True,
    )  # fmt: skip
    listed = subprocess.run(
        ["gpg", "--with-colons", "--list-secret-keys"], check=True, capture_output=True, text=True
    ).stdout
    yield next(line.split(":")[9] for line in listed.splitlines() if line.startswith("fpr"))
    subprocess.run(["gpgconf", "--kill", "all"], check=False, capture_output=True)


def test_records_are_signed_with_openpgp(project: Path, gpg_home: str) -> None:
    git(project, "config", "user.signingkey", gpg_home)

    _run()

    git(project, "verify-commit", "gitexp/runs")
    assert "Good signature from" in git(project, "log", "--show-signature", "-1", "gitexp/runs")
    assert gitexp("verify").exit_code == 0


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

    assert result.exit_code == 1
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

    assert process.returncode == 1
    assert err.splitlines()[-1].startswith(f"Error: could not sign with ssh key {locked} (")
    assert "Traceback" not in err
    assert len(list((project / ".git" / "gitexp" / "pending").iterdir())) == 1
