"""The one door to HTML: a Jinja environment that escapes every value, the style sheet, and
the Content-Security-Policy that forbids every script and every request a page could make.

Pages carry no JavaScript at all: charts are SVG drawn on the server, filters and sorting are
links and forms. The policy then holds a hostile record's markup inert twice over (escaped,
and forbidden to run), in the served pages and in a report opened from a file alike.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from importlib.resources import files
from typing import Any
from urllib.parse import quote, urlencode

import jinja2

from gitexp import __version__
from gitexp.cells import number
from gitexp.reader import terminal_safe


def visible(value: Any) -> str:
    """A record's value as text a page can show: control and direction-changing characters
    shown as escapes (the template then escapes markup)."""
    if isinstance(value, str):
        text = value
    elif value is None:
        text = ""
    elif isinstance(value, float):
        text = number(value)
    elif isinstance(value, (list, tuple)):
        text = ", ".join(visible(v) for v in value)
    elif isinstance(value, Mapping):
        text = json.dumps(value, sort_keys=True, default=str)
    else:
        text = str(value)
    return terminal_safe(text, lines=True)


@dataclass(frozen=True)
class Links:
    """Where a page's links lead: the pages served under `prefix` (the token's path), or
    (`inside`) anchors of the one report file that holds those runs."""

    prefix: str = ""
    inside: frozenset[str] | None = None

    @property
    def home(self) -> str:
        return f"{self.prefix}/" if self.inside is None else "#top"

    @property
    def compare_url(self) -> str | None:
        return f"{self.prefix}/compare" if self.inside is None else None

    def run(self, run_id: str) -> str | None:
        if self.inside is None:
            return f"{self.prefix}/run/" + quote(run_id, safe="")
        return f"#run-{run_id}" if run_id in self.inside else None

    def compare(self, run_ids: Sequence[str]) -> str | None:
        """The comparison of these runs; in a report, none (it holds only its own)."""
        if self.inside is not None:
            return None
        return f"{self.prefix}/compare?" + urlencode([("run", run_id) for run_id in run_ids])


@cache
def style() -> str:
    return (files("gitexp.ui") / "templates" / "style.css").read_text(encoding="utf-8")


@cache
def policy(header: bool = False) -> str:
    """No scripts, no fonts, frames or connections; the one style sheet, by its hash; images
    only inline (SVG is markup of the page, not an image request). `frame-ancestors` only in
    a header: a page's own <meta> cannot say it."""
    digest = base64.b64encode(hashlib.sha256(style().encode()).digest()).decode()
    rules = [
        "default-src 'none'",
        f"style-src 'sha256-{digest}'",
        "img-src data:",
        "form-action 'self'",
        "base-uri 'none'",
        *(["frame-ancestors 'none'"] if header else []),
    ]
    return "; ".join(rules)


@cache
def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("gitexp.ui", "templates"),
        autoescape=True,  # every template, whatever its name: records are untrusted
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.globals.update(version=__version__)
    env.filters["visible"] = visible
    return env


def render(template: str, **context: Any) -> str:
    """The page `template` makes of `context`, with the style sheet and policy."""
    page = _environment().get_template(template)
    return page.render(style=style(), policy=policy(), **context)
