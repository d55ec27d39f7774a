"""`gitexp report --html` on the command line: what it refuses, and a file it cannot write."""

from __future__ import annotations

import os
import stat
import sys
from pathlib import Path

import pytest

from ..conftest import gitexp


def test_html_takes_the_place_of_the_other_outputs(project: Path, tmp_path: Path) -> None:
    assert gitexp("run", "--", sys.executable, "train.py").exit_code == 0
    for other in (["--json"], ["--output", "r.md"], ["--plots", "plots"]):
        done = gitexp("report", "--html", "r.html", *other)
        assert done.exit_code == 2
        assert f"--html writes the whole report to its file: give it or {other[0]}" in done.output
    assert not (project / "r.html").exists() and not (project / "r.md").exists()

    done = gitexp("report", "--html", str(tmp_path / "no" / "such" / "r.html"))
    assert done.exit_code == 1
    assert done.output.startswith(f"Error: cannot write {tmp_path / 'no' / 'such' / 'r.html'}")
    done = gitexp("report", "--html", str(tmp_path / "r.html"))
    assert done.exit_code == 0, done.output
    text = (tmp_path / "r.html").read_text()
    assert text.startswith("<!doctype html>") and text.rstrip().endswith("</html>")


def test_html_goes_to_a_new_or_regular_file_or_standard_output(
    project: Path, tmp_path: Path
) -> None:
    assert gitexp("run", "--", sys.executable, "train.py").exit_code == 0
    fifo, link = tmp_path / "fifo", tmp_path / "link.html"
    os.mkfifo(fifo)
    (tmp_path / "target.html").write_text("kept")
    link.symlink_to(tmp_path / "target.html")
    for path in (fifo, link, tmp_path):
        done = gitexp("report", "--html", str(path))
        assert done.exit_code in (1, 2), done.output
        assert "not a regular file" in done.output or "is a directory" in done.output
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode) and link.is_symlink()
    assert (tmp_path / "target.html").read_text() == "kept"
    done = gitexp("report", "--html", "")
    assert done.exit_code == 1 and done.output == "Error: cannot write '.': name a file\n"
    done = gitexp("report", "--html", "-")
    assert done.exit_code == 0 and done.stdout.startswith("<!doctype html>")


def test_a_large_choice_is_bounded_and_says_what_it_left_out(
    project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past the limits (40 curves a chart, 100 run pages; 1 of each here), the report says
    what it did not draw rather than growing with the history."""
    from gitexp.ui import pages, report

    (project / "fit.py").write_text(
        "import sys, gitexp\n"
        "with gitexp.init(config={'lr': float(sys.argv[1])}) as run:\n"
        "    run.log({'loss': 1.0}, step=0)\n"
    )
    for lr in ("0.1", "0.2"):
        done = gitexp("run", "--", sys.executable, "fit.py", lr)
        assert done.exit_code == 0
    monkeypatch.setattr(pages, "MAX_CURVES", 1)
    monkeypatch.setattr(report, "MAX_RUN_PAGES", 1)
    assert gitexp("report", "--html", str(tmp_path / "r.html")).exit_code == 0
    text = (tmp_path / "r.html").read_text()
    assert "2 curves are too many to draw on one chart (at most 1)" in text
    assert "the pages of 1 more runs are left out" in text
    assert text.count('<section class="run"') == 1
