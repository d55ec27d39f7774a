"""The errors a user can act on, each with the exit status DESIGN.md §5 gives it."""

from __future__ import annotations

import os
import sys
from pathlib import Path


class GitexpError(Exception):
    """A problem the user can fix; the CLI shows it as one line and exits 1."""

    exit_code = 1


class UsageError(GitexpError):
    """The command line or a file it names asks for something gitexp cannot take."""

    exit_code = 2


class Refused(GitexpError):
    """gitexp could do it, but policy says the result would mislead."""

    exit_code = 3


class VerificationFailed(GitexpError):
    """A record is not what its signed commit wrote."""

    exit_code = 4


class Unreadable(GitexpError):
    """A record that breaks the safety rules of a record (DESIGN.md §9): too large, malformed,
    of the wrong types, naming paths outside the repository, or with objects missing."""

    exit_code = 4


class NotReproduced(GitexpError):
    """A reproduction whose outcome does not match the original's."""

    exit_code = 5


def crash_log(error: BaseException) -> Path:
    """Write the traceback of an unexpected error where the user can attach it to a report."""
    import tempfile  # only when something went wrong: start-up time matters
    import traceback

    from gitexp import __version__

    fd, name = tempfile.mkstemp(prefix="gitexp-error-", suffix=".log")
    with os.fdopen(fd, "w") as f:
        f.write(f"gitexp {__version__}, python {sys.version.split()[0]}\n")
        f.write(f"argv: {sys.argv!r}\n\n")
        f.write("".join(traceback.format_exception(error)))
    return Path(name)
