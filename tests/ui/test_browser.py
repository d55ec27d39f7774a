"""The view as a person uses it, in headless Chromium (issue #20's done-when): the nine runs of
three learning rates by three seeds listed, filtered to one lr, sorted; a run's curves and
diff; three runs as three curves; all nine as three seed bands; the report from a file with
no request beyond itself. Each page's screenshot is kept."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest
from selenium.webdriver.common.by import By

from .conftest import LRS, Server, Sweep, needs_browser, requests_made, screenshot

pytestmark = [needs_browser, pytest.mark.slow]


def _visit(driver: Any, server: Server, path: str = "/") -> None:
    """Open `path` below the address `gitexp ui` printed."""
    driver.get(server.base + path)


def _follow(driver: Any, element: Any) -> None:
    """Click a link or button, and wait for the page it leads to (a comparison is computed
    before it answers: the old page must not be read meanwhile)."""
    from selenium.webdriver.support.ui import WebDriverWait

    before = driver.find_element(By.TAG_NAME, "html")
    element.click()
    WebDriverWait(driver, 60).until(
        lambda d: (
            d.find_element(By.TAG_NAME, "html") != before
            and d.execute_script("return document.readyState") == "complete"
        )
    )


def _rows(driver: Any) -> list[Any]:
    return driver.find_elements(By.CSS_SELECTOR, "#runs tbody tr")


def _column(driver: Any, key: str) -> list[str]:
    heads = driver.find_elements(By.CSS_SELECTOR, "#runs thead th")
    keys = [next((a.get_attribute("data-key") for a in th.find_elements(By.TAG_NAME, "a")), None)
            for th in heads]  # fmt: skip
    at = keys.index(key)
    return [row.find_elements(By.TAG_NAME, "td")[at].text for row in _rows(driver)]


def _charts(driver: Any) -> dict[str, tuple[int, int]]:
    """Each metric's first chart: how many curves and bands it draws, counted in its SVG."""
    found = {}
    for figure in driver.find_elements(By.CSS_SELECTOR, "figure.chart"):
        curves = figure.find_elements(By.CSS_SELECTOR, "g.series path.curve, g.series .dot")
        bands = figure.find_elements(By.CSS_SELECTOR, "g.series path.band")
        found.setdefault(figure.get_attribute("data-metric"), (len(curves), len(bands)))
    return found


def test_the_table_lists_the_sweep_filters_to_one_lr_and_sorts(
    server: Server, sweep: Sweep, browser: Any
) -> None:
    browser.get(server.address)
    assert len(_rows(browser)) == 9
    assert "9 runs" in browser.find_element(By.ID, "count").text
    screenshot(browser, "runs")

    where = browser.find_elements(By.CSS_SELECTOR, "form.filters input[name=where]")[-1]
    where.send_keys("config.lr=0.05")
    _follow(browser, browser.find_element(By.ID, "filter"))
    assert sorted(_column(browser, "config.lr")) == ["0.05"] * 3
    assert {row.get_attribute("data-run") for row in _rows(browser)} == {
        sweep.ids[(0.05, seed)] for seed in (1, 2, 3)
    }
    screenshot(browser, "runs-filtered")

    _follow(browser, browser.find_element(By.LINK_TEXT, "clear"))
    _follow(browser, browser.find_element(By.LINK_TEXT, "0.2"))  # a value filters by itself
    assert sorted(_column(browser, "config.lr")) == ["0.2"] * 3

    _visit(browser, server)
    heading = (By.CSS_SELECTOR, "a[data-key='summary.loss.last']")
    _follow(browser, browser.find_element(*heading))
    losses = [float(v) for v in _column(browser, "summary.loss.last")]
    assert losses == sorted(losses) and len(losses) == 9
    _follow(browser, browser.find_element(*heading))  # again: descending
    assert [float(v) for v in _column(browser, "summary.loss.last")] == sorted(losses)[::-1]


def test_a_run_page_shows_its_curves_config_diff_and_output(
    server: Server, sweep: Sweep, browser: Any
) -> None:
    run_id = sweep.ids[(0.2, 2)]
    _visit(browser, server)
    _follow(browser, browser.find_element(By.LINK_TEXT, run_id))
    assert browser.current_url == f"{server.base}/run/{run_id}"
    assert _charts(browser) == {"acc": (1, 0), "loss": (1, 0)}
    config = browser.find_element(By.ID, f"{run_id}-config").find_element(
        By.XPATH, "following-sibling::pre[1]"
    )
    assert "lr: 0.2" in config.text
    added = [line.text for line in browser.find_elements(By.CSS_SELECTOR, "pre.diff .add")]
    assert "+# tried with 30 steps" in added
    assert "lr 0.2: loss" in browser.find_element(By.CSS_SELECTOR, "pre.output").text
    assert browser.find_element(By.CSS_SELECTOR, "[data-verdict]").text == "unsigned"
    screenshot(browser, "run")


def test_three_selected_runs_are_three_curves(server: Server, sweep: Sweep, browser: Any) -> None:
    chosen = {sweep.ids[(lr, 1)] for lr in LRS}
    _visit(browser, server)
    for row in _rows(browser):
        if row.get_attribute("data-run") in chosen:
            row.find_element(By.CSS_SELECTOR, "input[name=run]").click()
    _follow(browser, browser.find_element(By.ID, "compare"))
    assert browser.current_url.startswith(f"{server.base}/compare?")
    assert _charts(browser) == {"acc": (3, 0), "loss": (3, 0)}
    legend = browser.find_element(By.CSS_SELECTOR, "figure.chart ul.legend").text
    assert all(f"lr={lr}" in legend for lr in LRS)
    screenshot(browser, "compare-three")


def test_the_whole_sweep_compares_as_three_seed_bands(
    server: Server, sweep: Sweep, browser: Any
) -> None:
    _visit(browser, server)
    for box in browser.find_elements(By.CSS_SELECTOR, "input[name=run]"):
        box.click()
    _follow(browser, browser.find_element(By.ID, "compare"))
    assert _charts(browser) == {"acc": (3, 3), "loss": (3, 3)}
    rows = browser.find_elements(By.CSS_SELECTOR, "table.compare tr")[1:]
    assert len(rows) == 3 and all("n=3" in row.text for row in rows)
    axes = browser.find_elements(By.XPATH, "//h2[starts-with(., 'Axes')]/following::table[1]//tr")
    assert [row.find_elements(By.TAG_NAME, "td")[1].text for row in axes[1:]] == ["config.lr"] * 2
    screenshot(browser, "compare-bands")


def test_two_runs_show_diffs_one_axis_verdict_and_its_diff(
    server: Server, sweep: Sweep, browser: Any
) -> None:
    a, b = sweep.ids[(0.01, 1)], sweep.ids[(0.2, 1)]
    _visit(browser, server, f"/compare?run={a}&run={b}")
    verdict = browser.find_element(By.ID, "verdict")
    assert "One axis" in verdict.text and "config.lr" in verdict.text
    diff = browser.find_element(By.CSS_SELECTOR, "pre.diff").text
    assert "-lr: 0.01" in diff and "+lr: 0.2" in diff
    _visit(browser, server, f"/compare?run={a}&run={sweep.ids[(0.2, 2)]}")
    verdict = browser.find_element(By.ID, "verdict")
    assert "Confounded" in verdict.text and "config.lr, seed" in verdict.text
    screenshot(browser, "compare-confounded")


def test_the_report_opens_from_a_file_with_no_request_beyond_itself(
    sweep: Sweep, browser: Any, tmp_path: Any
) -> None:
    page = tmp_path / "report.html"
    done = subprocess.run([sys.executable, "-m", "gitexp", "report", "--html", str(page)],
                          cwd=sweep.root, capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stderr == f"wrote the report on 9 runs to {page}\n"
    requests_made(browser)  # forget what came before
    browser.get(page.as_uri())
    assert requests_made(browser) == [page.as_uri()]
    assert _charts(browser)["loss"] == (3, 3)  # the comparison, then each run's own page
    assert len(browser.find_elements(By.CSS_SELECTOR, "section.run")) == 9
    browser.find_element(By.LINK_TEXT, sweep.ids[(0.05, 3)]).click()
    assert browser.current_url.endswith(f"#run-{sweep.ids[(0.05, 3)]}")
    assert not [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    screenshot(browser, "report")
