"""`gitexp ui`: serve the view on 127.0.0.1 with uvicorn until Ctrl-C.

The socket is bound here, before uvicorn starts, so that the port printed is the port
served (no race with another server taking it between a check and the start).
"""

from __future__ import annotations

import errno
import secrets
import socket
from collections.abc import Callable
from pathlib import Path

from gitexp.errors import GitexpError

DEFAULT_PORT = 8765
_TRIES = 20  # ports tried upward from the default when it is taken, as Jupyter does


def listen(port: int | None) -> socket.socket:
    """A socket listening on 127.0.0.1: on `port`, or from DEFAULT_PORT on, the first free."""
    wanted = [port] if port is not None else range(DEFAULT_PORT, DEFAULT_PORT + _TRIES)
    for candidate in wanted:
        try:
            return socket.create_server(("127.0.0.1", candidate))
        except OSError as e:
            if e.errno != errno.EADDRINUSE or port is not None:
                what = "is in use" if e.errno == errno.EADDRINUSE else f"cannot be used: {e}"
                raise GitexpError(f"port {candidate} on 127.0.0.1 {what}; choose another "
                                  "with --port (0 takes any free port)") from None  # fmt: skip
    raise GitexpError(f"ports {DEFAULT_PORT}-{DEFAULT_PORT + _TRIES - 1} are all in use; "
                      "choose one with --port (0 takes any free port)")  # fmt: skip


def serve(root: Path, port: int | None, say: Callable[[str], None]) -> None:
    """Serve the repository at `root` until interrupted; `say` tells the user where."""
    import uvicorn

    from gitexp.ui.app import application

    token = secrets.token_urlsafe(32)
    sock = listen(port)
    bound = sock.getsockname()[1]
    app = application(root, token)
    say(f"gitexp ui: serving {root} (read-only) until Ctrl-C. Open the address below in a "
        "browser on this machine; from another one, forward the port first "
        f"(ssh -L {bound}:127.0.0.1:{bound} THIS_HOST) and open it there.\n\n"
        f"    http://127.0.0.1:{bound}/{token}/\n")  # fmt: skip
    # Ctrl-C waits for the pages being made at most this long (a second Ctrl-C, not at all).
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off",
                            server_header=False, timeout_graceful_shutdown=3)  # fmt: skip
    with sock:
        try:
            uvicorn.Server(config).run(sockets=[sock])
        except KeyboardInterrupt:
            pass  # Ctrl-C before uvicorn took over the signal: stopped all the same
