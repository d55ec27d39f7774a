"""Who writes record commits. (Signing them the way git does comes with DESIGN.md §3.)"""

from __future__ import annotations

import getpass

import pygit2


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
