"""The pages `gitexp ui` serves, as a Starlette application: three read-only views behind a
guard that lets in only this machine's browser holding the token that `gitexp ui` printed.

The guard, in order:
- a Host header other than 127.0.0.1, localhost or ::1 is refused: a web page elsewhere
  cannot reach the view through a DNS name it points at this machine (DNS rebinding);
- only GET and HEAD over HTTP (no websocket): nothing here changes anything;
- the token, compared in constant time, is the first part of every path
  (`/<token>/run/<id>`), as printed. Not a cookie: a browser sends a 127.0.0.1 cookie to
  every port of 127.0.0.1, so any other user's local server would receive it. Other users
  of a shared machine reach the port but not the runs.
Every answer forbids scripts and outside requests (html.policy), referrers and caching.
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Awaitable, Callable, MutableMapping
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from gitexp import workspace
from gitexp.errors import GitexpError, UsageError, crash_log
from gitexp.ui import html, pages

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})


class Guard:
    """ASGI middleware: the host check, GET only, the token, and the headers of every answer."""

    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app, self.token = app, token.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self.app(scope, receive, send)
            return
        if scope["type"] != "http":  # a websocket: there is none here
            await send({"type": "websocket.close", "code": 1008})
            return
        request = Request(scope)
        first, slash, rest = scope["path"][1:].partition("/")
        refusal = self._refusal(request, first)
        if refusal is not None:
            await refusal(scope, receive, send)
            return
        if not slash:  # `/<token>`: the pages' relative links need the slash
            await _secured(RedirectResponse(f"/{first}/", status_code=308))(scope, receive, send)
            return

        async def send_secured(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers += [(k.encode(), v.encode()) for k, v in _headers().items()]
                message["headers"] = headers
            await send(message)

        await self.app({**scope, "path": "/" + rest}, receive, send_secured)

    def _refusal(self, request: Request, token: str) -> Response | None:
        host = urlsplit("//" + request.headers.get("host", "")).hostname or ""
        if host not in LOCAL_HOSTS:
            return _secured(_plain(421, "this view answers only at 127.0.0.1 or localhost"))
        if request.method not in ("GET", "HEAD"):
            return _secured(_plain(405, "this view is read-only"))
        if not secrets.compare_digest(token.encode(errors="surrogateescape"), self.token):
            return _secured(_plain(403, "open the address `gitexp ui` printed: it carries the "
                                        "token that lets you in"))  # fmt: skip
        return None


@cache
def _headers() -> dict[str, str]:
    return {
        "content-security-policy": html.policy(header=True),
        "x-content-type-options": "nosniff",
        "referrer-policy": "no-referrer",
        "x-frame-options": "DENY",
        "cache-control": "no-store",
        "cross-origin-resource-policy": "same-origin",
    }


def _secured(response: Response) -> Response:
    response.headers.update(_headers())
    return response


def _plain(status: int, message: str) -> Response:
    # Before the token is checked: nothing of the repository, not even its path.
    return Response(f"gitexp ui: {message}\n", status_code=status, media_type="text/plain")


def application(root: Path, token: str) -> ASGIApp:
    """The view of the repository at `root`, for the holder of `token`."""
    links = html.Links(prefix=f"/{token}")
    where = str(workspace.open_workspace(root, read_only=True).workdir)
    # One request at a time reads the repository: libgit2 objects and the index are not
    # shared between threads, and one person's browser asks little at once.
    lock = threading.Lock()

    def page(template: str, status: int = 200, **context: Any) -> HTMLResponse:
        text = html.render(template, links=links, where=where, **context)
        return HTMLResponse(text, status_code=status)

    def guarded(make: Callable[[Request, workspace.Workspace], HTMLResponse]
                ) -> Callable[[Request], HTMLResponse]:  # fmt: skip
        def endpoint(request: Request) -> HTMLResponse:
            try:
                with lock:
                    return make(request, workspace.open_workspace(root, read_only=True))
            except UsageError as e:
                return page("error.html", 400, title="cannot show that", message=str(e))
            except GitexpError as e:
                return page("error.html", 404, title="cannot show that", message=str(e))
            except Exception as e:  # a bug: the page says where its details went
                log = crash_log(e)
                return page("error.html", 500, title="unexpected error",
                            message=f"unexpected {type(e).__name__}; the details are in {log}, "
                            "please attach it to a bug report")  # fmt: skip

        return endpoint

    def runs(request: Request, ws: workspace.Workspace) -> HTMLResponse:
        params = request.query_params
        page_number = params.get("page", "1")[:9]  # a page past 10^9 is the last one anyway
        query = pages.TableQuery(
            where=tuple(w for w in params.getlist("where") if w.strip()),
            statuses=tuple(s for s in params.getlist("status") if s),
            tags=tuple(t for t in params.getlist("tag") if t.strip()),
            name=params.get("name", "").strip(),
            sort=tuple(s for s in params.getlist("sort") if s.strip()),
            columns=params.get("columns", ""),
            archived=bool(params.get("all")),
            page=int(page_number) if page_number.isascii() and page_number.isdigit() else 1,
        )
        found = pages.runs_page(ws, query)
        return page("runs.html", 400 if found.error else 200, page=found)

    def run(request: Request, ws: workspace.Workspace) -> HTMLResponse:
        return page("run.html", page=pages.run_page(ws, request.path_params["ref"]))

    def compare(request: Request, ws: workspace.Workspace) -> HTMLResponse:
        refs = [ref for ref in request.query_params.getlist("run") if ref.strip()]
        if not refs:
            return page("error.html", 400, title="nothing to compare",
                        message="select the runs to compare in the runs table, then press "
                        "Compare selected")  # fmt: skip
        metrics = [m for m in request.query_params.getlist("metric") if m.strip()]
        baseline = request.query_params.get("baseline") or None
        return page("compare.html", page=pages.compare_page(ws, refs, metrics, baseline))

    app = Starlette(routes=[
        Route("/", guarded(runs), methods=["GET"]),
        Route("/run/{ref:path}", guarded(run), methods=["GET"]),
        Route("/compare", guarded(compare), methods=["GET"]),
    ])  # fmt: skip
    return Guard(app, token)
