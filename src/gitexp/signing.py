"""Who writes record commits, and their signatures, made the way git makes them (DESIGN.md §3).

git's own configuration decides: `gpg.format` (openpgp, ssh or x509), `user.signingkey`,
and the programs `gpg.program`, `gpg.ssh.program`, `gpg.x509.program`. Signing is on when
a key is configured (or `commit.gpgsign` is set, for gpg's default key).
"""

from __future__ import annotations

import getpass
import os
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass

import pygit2

from gitexp.errors import GitexpError, Refused

_FORMATS = ("openpgp", "ssh", "x509")
_DEFAULT_PROGRAMS = {"openpgp": "gpg", "ssh": "ssh-keygen", "x509": "gpgsm"}
_TIMEOUT_S = 120  # a pinentry or an agent may ask the user


def identity(repo: pygit2.Repository) -> pygit2.Signature:
    """git's `user.name` / `user.email`, or a stand-in naming the account when unset.

    A run must never be lost because a cluster account lacks a git identity.
    """
    try:
        return repo.default_signature
    except (KeyError, pygit2.GitError):
        user = _account()
        return pygit2.Signature(user, f"{user}@localhost")


def _account() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "gitexp"


class SigningFailed(GitexpError):
    """The configured key could not sign: wrong passphrase, no agent, a missing key file."""


def _config(repo: pygit2.Repository, key: str) -> str | None:
    try:
        value = repo.config[key]
    except (KeyError, pygit2.GitError):
        return None
    return str(value)


def _flag(repo: pygit2.Repository, key: str) -> bool:
    try:
        return repo.config.get_bool(key)
    except (KeyError, pygit2.GitError, ValueError):
        return False


@dataclass(frozen=True)
class Signer:
    """A signing key as git's configuration names it, and the program that uses it."""

    format: str
    key: str | None  # None: gpg's default key for the committer
    program: str

    def describe(self) -> str:
        return f"{self.format} key {self.key}" if self.key else f"{self.format} default key"

    def sign(self, payload: bytes) -> bytes:
        """A detached signature of `payload`, as git would make for a commit."""
        if self.format == "ssh":
            return self._sign_ssh(payload)
        command = [self.program, "--status-fd=2", "-bsa"]
        if self.key:
            command += ["-u", self.key]
        return self._run(command, payload)

    def _sign_ssh(self, payload: bytes) -> bytes:
        if not self.key:
            raise SigningFailed("gpg.format is ssh but user.signingkey is not set; set it")
        literal = self.key.removeprefix("key::")
        if literal != self.key or literal.startswith(("ssh-", "ecdsa-", "sk-")):
            # A public key written into the configuration: the agent holds the private half.
            import tempfile  # a key given in the config: rare, and not worth start-up time

            with tempfile.NamedTemporaryFile("w", suffix=".pub", delete=False) as f:
                f.write(literal + "\n")
            try:
                return self._run(
                    [self.program, "-Y", "sign", "-n", "git", "-f", f.name, "-U"], payload
                )
            finally:
                os.unlink(f.name)
        path = os.path.expanduser(self.key)
        return self._run([self.program, "-Y", "sign", "-n", "git", "-f", path], payload)

    def _run(self, command: Sequence[str], payload: bytes) -> bytes:
        try:
            done = subprocess.run(command, input=payload, capture_output=True, timeout=_TIMEOUT_S)
        except (OSError, subprocess.TimeoutExpired) as e:
            raise SigningFailed(f"could not sign with {self.describe()}: {e}") from None
        if done.returncode != 0 or not done.stdout.strip():
            reason = _reason(done.stderr)
            raise SigningFailed(f"could not sign with {self.describe()} ({reason})")
        return done.stdout


def _reason(stderr: bytes) -> str:
    """The line of a signing tool's output that says what went wrong."""
    lines = [
        line.strip()
        for line in stderr.decode(errors="replace").splitlines()
        if line.strip() and not line.startswith("[GNUPG:]") and "Signing data" not in line
    ]
    return lines[-1] if lines else "the signing program failed"


def signer(repo: pygit2.Repository) -> Signer | None:
    """The key git would sign commits with, or None when none is configured."""
    key = _config(repo, "user.signingkey")
    if key is None and not _flag(repo, "commit.gpgsign"):
        return None
    fmt = (_config(repo, "gpg.format") or "openpgp").lower()
    if fmt not in _FORMATS:
        raise GitexpError(f"gpg.format is {fmt!r}; git knows openpgp, ssh and x509")
    program = _config(repo, f"gpg.{fmt}.program")
    if program is None and fmt == "openpgp":
        program = _config(repo, "gpg.program")
    return Signer(fmt, key, program or _DEFAULT_PROGRAMS[fmt])


HOW_TO_SIGN = (
    "configure a key as for signed git commits, e.g. `git config gpg.format ssh` and "
    "`git config user.signingkey ~/.ssh/id_ed25519.pub`"
)


def required_signer(repo: pygit2.Repository, required: bool) -> Signer | None:
    """The signer, refusing (exit 3) when the repository requires signatures and git has none."""
    found = signer(repo)
    if found is None and required:
        raise Refused(
            "this repository requires signed records (require_signed in .gitexp.yaml) but "
            f"git has no signing key: {HOW_TO_SIGN}"
        )
    return found


def commit(
    repo: pygit2.Repository,
    message: str,
    tree: pygit2.Oid,
    parents: Sequence[pygit2.Oid],
    sign_with: Signer | None,
) -> pygit2.Oid:
    """Write a commit object by `identity`, signed when `sign_with` is given."""
    who = identity(repo)
    if sign_with is None:
        return repo.create_commit(None, who, who, message, tree, list(parents))
    # pygit2's stubs say Oid; libgit2 returns the commit's text, which is what gets signed.
    content = str(repo.create_commit_string(who, who, message, tree, list(parents)))
    signature = sign_with.sign(content.encode())
    return repo.create_commit_with_signature(content, signature.decode())
