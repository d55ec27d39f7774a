"""`gitexp ui` as a process: who gets in, what every answer carries, what it never writes,
its errors, and Ctrl-C. Plain HTTP from this test, no browser."""

from __future__ import annotations

import http.client
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from ..conftest import git, gitexp_process
from .conftest import Server, Sweep, record_sweep, start_server

pytestmark = pytest.mark.slow


def fetch(server: Server, path: str, *, token: str | None = "printed", host: str | None = None,
          method: str = "GET") -> tuple[int, http.client.HTTPMessage, str]:  # fmt: skip
    """One request for `path` below the printed address (`token`: another first part of the
    path; None: `path` as it is), from `host` (default: the address the server printed)."""
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
    headers = {"Host": host or f"127.0.0.1:{server.port}"}
    if token is not None:
        path = f"/{server.token if token == 'printed' else token}{path}"
    connection.request(method, path, headers=headers)
    answer = connection.getresponse()
    body = answer.read().decode()
    connection.close()
    return answer.status, answer.headers, body


def test_only_the_printed_address_lets_a_browser_in(server: Server, sweep: Sweep) -> None:
    for path in ("/", f"/run/{sweep.ids[(0.2, 1)]}", f"/?token={server.token}",
                 f"/x/{server.token}/", f"/{server.token[:-1]}/"):  # fmt: skip
        status, headers, body = fetch(server, path, token=None)
        assert status == 403 and "open the address `gitexp ui` printed" in body
        assert str(sweep.root) not in body and "lr0.2" not in body  # nothing of the runs
        assert "set-cookie" not in headers
    assert fetch(server, "/", token="guessed")[0] == 403
    status, headers, _ = fetch(server, "", token="printed")  # the address without its slash
    assert status == 308 and headers["location"] == f"/{server.token}/"
    status, headers, body = fetch(server, "/")
    assert status == 200 and body.count('<tr data-run="') == 9
    assert "set-cookie" not in headers  # the token is in no cookie a browser would share


def test_another_host_name_and_a_write_are_refused(server: Server) -> None:
    # A page elsewhere that points its own name at 127.0.0.1 (DNS rebinding) is not served.
    assert fetch(server, "/", host=f"attacker.example:{server.port}")[0] == 421
    assert fetch(server, "/", host=f"localhost:{server.port}")[0] == 200
    assert fetch(server, "/", method="POST")[0] == 405


def test_every_answer_forbids_scripts_framing_and_caching(server: Server, sweep: Sweep) -> None:
    for path in ("/", f"/run/{sweep.ids[(0.01, 1)]}", f"/compare?run={sweep.ids[(0.01, 1)]}",
                 "/run/nosuchrun"):  # fmt: skip
        _, headers, body = fetch(server, path)
        policy = headers["content-security-policy"]
        assert policy.startswith("default-src 'none'; style-src 'sha256-")
        assert "unsafe" not in policy and "script-src" not in policy
        assert "frame-ancestors 'none'" in policy
        assert headers["cache-control"] == "no-store"
        assert headers["x-content-type-options"] == "nosniff"
        assert "<script" not in body and "http://" not in body.replace("http://www.w3.org", "")


def test_errors_are_one_sentence_pages(server: Server) -> None:
    status, _, body = fetch(server, "/run/nosuchrun")
    assert status == 404 and "no run &#39;nosuchrun&#39;; see `gitexp log`" in body
    status, _, body = fetch(server, "/?where=config.lr%3C%3Dfast")
    assert status == 400 and "is not a number" in body
    status, _, body = fetch(server, "/compare")
    assert status == 400 and "select the runs to compare" in body
    assert "Traceback" not in body


def test_the_view_commits_nothing_not_even_a_run_left_behind(ui_home: Path) -> None:
    root = ui_home / "left-behind"  # its own: the run left behind is recorded at the end
    (first,) = record_sweep(root, [("--", sys.executable, "train.py", "--lr", "0.5")])
    # A run whose gitexp was killed with its command: any other command would record it.
    process = gitexp_process(
        ["run", "--", sys.executable, "-c",
         "import os, time; print(os.getpid(), flush=True); time.sleep(600)"],
        root, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    assert process.stdout is not None
    command = int(process.stdout.readline())
    process.kill()
    process.wait(timeout=60)
    process.stdout.close()
    os.kill(command, signal.SIGKILL)
    server = start_server(root)
    try:
        before = git(root, "for-each-ref"), git(root, "count-objects", "-v"), git(root, "status")
        for path in ("/", f"/run/{first}", f"/compare?run={first}"):
            assert fetch(server, path)[0] == 200
        assert "1 run has ended without being recorded" in fetch(server, "/")[2]
        after = git(root, "for-each-ref"), git(root, "count-objects", "-v"), git(root, "status")
        assert after == before
    finally:
        server.stop()
    done = subprocess.run([sys.executable, "-m", "gitexp", "recover"], cwd=root,
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == 0 and "crashed" in done.stdout + done.stderr  # others may write


def test_ctrl_c_stops_it_and_a_taken_port_is_said(sweep: Sweep) -> None:
    first = start_server(sweep.root)
    try:
        assert f"(ssh -L {first.port}:127.0.0.1:{first.port} THIS_HOST)" in first.said
        again = [sys.executable, "-m", "gitexp", "ui", "--port", str(first.port)]
        taken = subprocess.run(again, cwd=sweep.root, capture_output=True, text=True, timeout=60)
        assert taken.returncode == 1
        assert taken.stderr == (f"Error: port {first.port} on 127.0.0.1 is in use; choose "
                                "another with --port (0 takes any free port)\n")  # fmt: skip
    finally:
        status, rest = first.stop()
    assert (status, rest) == (0, "gitexp ui: stopped\n")
