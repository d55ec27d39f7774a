"""A hostile record in the view and in the report: markup in every field a run's author
controls (name, tags, notes, config keys and values, metric names, output, code diff) is
shown as text and never runs, in Chromium as in the HTML itself."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from selenium.webdriver.common.by import By

from .conftest import Server, needs_browser, once, record_sweep, start_server

pytestmark = pytest.mark.slow

MARK = "pwned"
PAYLOAD = (f"<script>document.body.dataset.{MARK}=1</script>"
           f"<img src=x onerror=\"document.body.dataset.{MARK}=1\">")  # fmt: skip
SCRIPT = f"""\
import gitexp
payload = {PAYLOAD!r}
with gitexp.init(config={{"lr": 0.1, payload: payload}}) as run:
    for step in range(5):
        run.log({{"loss": 1.0 / (step + 1), payload: float(step)}}, step=step)
    print(payload)
"""


@pytest.fixture(scope="session")
def hostile(ui_home: Path, tmp_path_factory: pytest.TempPathFactory, worker_id: str) -> Path:
    def make(root: Path) -> None:
        record_sweep(root, [
            ("--name", "plain", "--", sys.executable, "train.py", "--lr", "0.5"),
            ("--name", PAYLOAD, "--tag", PAYLOAD, "--notes", PAYLOAD, "--", sys.executable,
             "hostile.py"),
        ], {"hostile.py": SCRIPT})  # fmt: skip
        done = subprocess.run([sys.executable, "-m", "gitexp", "report", "--html",
                               str(root.parent / "hostile.html")], cwd=root,
                              capture_output=True, text=True, timeout=120)  # fmt: skip
        assert done.returncode == 0, done.stderr

    return once(tmp_path_factory, worker_id, "hostile", make)


@pytest.fixture(scope="session")
def hostile_server(hostile: Path) -> Iterator[Server]:
    running = start_server(hostile)
    try:
        yield running
    finally:
        running.stop()


def _inert(driver: Any) -> None:
    """Nothing of the payload became an element or ran; its text is on the page as text."""
    assert driver.execute_script(f"return document.body.dataset.{MARK}") is None
    assert driver.find_elements(By.TAG_NAME, "script") == []
    assert driver.find_elements(By.CSS_SELECTOR, "img") == []
    assert "<script>document.body.dataset" in driver.find_element(By.TAG_NAME, "body").text


def test_markup_in_a_record_is_shown_never_run(hostile_server: Server, browser: Any) -> None:
    browser.get(hostile_server.address)
    _inert(browser)
    browser.find_element(By.CSS_SELECTOR, "#runs tbody tr input[name=run]")
    links = browser.find_elements(By.CSS_SELECTOR, "#runs tbody td:nth-child(2) a")
    run_ids = [link.text for link in links]
    browser.get(f"{hostile_server.base}/run/{run_ids[0]}")  # newest first: the hostile one
    _inert(browser)
    assert PAYLOAD in browser.find_element(By.CSS_SELECTOR, "pre.output").text
    browser.get(f"{hostile_server.base}/compare?run={run_ids[0]}&run={run_ids[1]}")
    _inert(browser)


test_markup_in_a_record_is_shown_never_run = needs_browser(
    test_markup_in_a_record_is_shown_never_run
)


def test_the_html_holds_no_markup_of_the_record(hostile: Path) -> None:
    """Escaped in the bytes themselves, the policy aside: the report read by any viewer."""
    text = (hostile.parent / "hostile.html").read_text()
    assert "<script" not in text and "<img" not in text and 'onerror="' not in text
    assert "&lt;script&gt;document.body.dataset" in text
    assert text.count('http-equiv="Content-Security-Policy"') == 1


@needs_browser
def test_the_report_of_a_hostile_record_is_inert_in_chromium(hostile: Path, browser: Any) -> None:
    browser.get((hostile.parent / "hostile.html").as_uri())
    _inert(browser)
