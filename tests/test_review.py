"""`gitexp report` on a real, signed sweep: Markdown that renders as GitHub would (checked
with markdown-it, the CommonMark parser with GitHub's table extension) and reads as text."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path

import pytest
from markdown_it import MarkdownIt

from gitexp.review.report import web_base

from .conftest import git, gitexp, run_ids, sealed, ssh_key
from .test_outcomes import Sweep, make_sweep


class _Tables(HTMLParser):
    """Every table of an HTML page as rows of cell texts, and every tag seen."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: list[list[list[str]]] = []
        self.tags: list[str] = []
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        if tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self.tables[-1].append([])
        elif tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cell is not None:
            self.tables[-1][-1].append("".join(self._cell).strip())
            self._cell = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


def rendered(markdown: str) -> _Tables:
    """The HTML a GitHub-flavoured renderer makes of `markdown`, parsed."""
    html = MarkdownIt("commonmark").enable(["table", "strikethrough"]).render(markdown)
    found = _Tables()
    found.feed(html)
    return found


def trust_ada(root: Path) -> None:
    public = ssh_key(root.parent, "ada")
    allowed = root.parent / "allowed_signers"
    allowed.write_text(f"ada@example.com {public.read_text()}")
    git(root, "config", "gpg.format", "ssh")
    git(root, "config", "user.signingkey", str(public))
    git(root, "config", "gpg.ssh.allowedSignersFile", str(allowed))


@pytest.fixture(scope="module")
def sweep(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sweep]:
    with pytest.MonkeyPatch.context() as mp, sealed(tmp_path_factory.mktemp("home"), mp):
        yield make_sweep(tmp_path_factory.mktemp("sweep") / "project", mp, trust_ada)


@pytest.mark.slow
def test_report_renders_its_tables_and_marks_noise(sweep: Sweep) -> None:
    result = gitexp("report", "-m", "loss", "--baseline", sweep["0.1-1"])
    assert result.exit_code == 0, result.output
    page = rendered(result.stdout)
    metrics, runs, verification = page.tables
    assert metrics[0] == ["run", "epochs", "lr", "status", "loss", "Δ loss"]
    rows = {row[0]: row for row in metrics[1:]}
    assert len(rows) == 3  # three seed groups of two runs
    base = metrics[1]  # the baseline comes first
    assert (
        base[0] == f"{sweep['0.1-0']} (2 seeds, baseline)"
        or base[0] == f"{sweep['0.1-1']} (2 seeds, baseline)"
    )
    assert base[1:4] == ["5", "0.1", "succeeded"] and base[5] == ""
    lr, epochs = (
        next(r for r in metrics[2:] if r[1:3] == cells) for cells in (["5", "0.2"], ["6", "0.1"])
    )
    assert lr[4] == "0.31 ± 0.014 (n=2)"
    assert lr[5].startswith("-0.2 (-39.2%) p=") and not lr[5].startswith("≈")
    assert epochs[5].startswith("≈ +0.001")  # within seed noise, and marked so
    assert len(runs) == 7 and len(verification) == 7  # a header and the six runs
    assert {row[1] for row in verification[1:]} == {"✓ verified"}
    assert {row[2] for row in verification[1:]} == {"ada@example.com"}
    paths = {row[3].split(" at ")[0] for row in verification[1:]}
    assert paths == {f"experiments/{run_id}/" for run_id in sweep.values()}
    text = result.stdout
    assert "- `" in text and "`config.lr: 0.1 → 0.2`" in text
    assert "`config.epochs: 5 → 6`" in text
    assert "outside seed noise" in text and "within seed noise" in text
    assert "All 6 records verify" in text


@pytest.mark.slow
def test_report_tables_read_as_aligned_text(sweep: Sweep) -> None:
    text = gitexp("report", "-m", "loss").stdout
    tables = re.findall(r"(?m)(?:^\|.*\|\n)+", text)
    assert len(tables) == 3
    for table in tables:
        widths = {len(line) for line in table.splitlines()}
        assert len(widths) == 1, table  # every line of a table as wide: columns line up


@pytest.mark.slow
def test_report_writes_a_file_with_plots_linked_beside_it(sweep: Sweep, tmp_path: Path) -> None:
    out = tmp_path / "pr" / "report.md"
    out.parent.mkdir()
    result = gitexp("report", sweep["0.1-0"], sweep["0.2-0"], "-o", str(out),
                    "--plots", str(tmp_path / "pr" / "plots"))  # fmt: skip
    assert result.exit_code == 0, result.output
    assert result.stdout == ""
    text = out.read_text()
    images = re.findall(r"!\[([^\]]*)\]\(([^)]+)\)", text)
    assert images == [("loss", "plots/loss.png")]
    assert (out.parent / "plots" / "loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "img" in rendered(text).tags


@pytest.mark.slow
def test_report_json_and_links_to_the_remote(sweep: Sweep) -> None:
    root = Path.cwd()
    git(root, "remote", "add", "origin", "https://token@github.com/lab/vision.git")
    try:
        result = gitexp("report", sweep["0.1-0"], "--json")
    finally:
        git(root, "remote", "remove", "origin")
    found = json.loads(result.stdout)
    (run,) = found["runs"]
    assert run["verified"] == "ok" and run["record"] == f"experiments/{sweep['0.1-0']}/"
    assert (
        run["link"]
        == f"https://github.com/lab/vision/tree/{run['commit']}/experiments/{sweep['0.1-0']}/"
    )
    assert found["table"]["rows"][0]["runs"] == [sweep["0.1-0"]]


def test_web_base_drops_credentials_and_refuses_paths() -> None:
    assert (
        web_base("https://user:secret@github.com/lab/vision.git") == "https://github.com/lab/vision"
    )
    assert web_base("git@gitlab.com:lab/vision.git") == "https://gitlab.com/lab/vision"
    assert (
        web_base("ssh://git@git.example.org:2222/lab/vision")
        == "https://git.example.org/lab/vision"
    )
    assert (
        web_base("https://git.example.org:8443/lab/vision")
        == "https://git.example.org:8443/lab/vision"
    )
    assert web_base("/srv/git/vision.git") is None
    assert web_base("file:///srv/git/vision.git") is None
    assert web_base("https://github.com/lab/vision)](javascript:alert(1)") is None


def test_report_shows_record_text_and_never_obeys_it(project: Path, signing: Path) -> None:
    notes = "<img src=x onerror=alert(1)> **bold** [link](http://evil) @lab/team |"
    result = gitexp(
        "run", "--name", "a|b", "--notes", notes, "--tag", "`x`", "--", "python", "train.py"
    )
    assert result.exit_code == 0, result.output
    text = gitexp("report").stdout
    page = rendered(text)
    assert not {"img", "a", "strong"} & set(page.tags)  # no image, link or markup made
    runs = page.tables[1]
    assert runs[0] == ["run", "name", "status", "tags", "notes"]
    assert runs[1][1] == "a|b" and runs[1][3] == "`x`"
    assert runs[1][4].replace("\u2060", "") == notes.strip(" |") + " |"
    assert "@lab" not in runs[1][4]  # a word joiner after the @: nobody is mentioned


def test_report_marks_records_that_do_not_verify(project: Path) -> None:
    for _ in range(2):
        assert gitexp("run", "--", "python", "train.py").exit_code == 0
    result = gitexp("report")
    assert result.exit_code == 0, result.output
    verification = rendered(result.stdout).tables[-1]
    assert {row[1] for row in verification[1:]} == {"✗ unsigned"}
    assert "**2 of 2 records do not verify**" in result.stdout


# --- the runs branch as a reviewer finds it --------------------------------------------------


def test_runs_branch_has_readme_and_attributes_that_collapse_series(project: Path) -> None:
    assert gitexp("run", "--", "python", "train.py").exit_code == 0
    (run_id,) = run_ids(project)
    root = git(project, "rev-list", "--max-parents=0", "gitexp/runs").split()
    assert git(project, "ls-tree", "--name-only", root[0]).split() == [
        ".gitattributes",
        "README.md",
    ]
    readme = git(project, "show", "gitexp/runs:README.md")
    assert "git show --first-parent" in readme and "git log --first-parent gitexp/runs" in readme
    checkout = project.parent / "runs-checkout"
    git(project, "worktree", "add", "-q", "--detach", str(checkout), "gitexp/runs")
    said = git(checkout, "check-attr", "linguist-generated", "--",
               f"experiments/{run_id}/metrics.tsv", f"experiments/{run_id}/output.log",
               f"experiments/{run_id}/config.yaml")  # fmt: skip
    assert said.splitlines() == [
        f"experiments/{run_id}/metrics.tsv: linguist-generated: true",
        f"experiments/{run_id}/output.log: linguist-generated: true",
        f"experiments/{run_id}/config.yaml: linguist-generated: unspecified",
    ]
    shown = git(project, "show", "--first-parent", "--format=", "--name-only", "gitexp/runs")
    assert {line.split("/")[1] for line in shown.split()} == {run_id}


def test_a_branch_started_without_attributes_gets_them_once(project: Path) -> None:
    blob = subprocess.run(["git", "hash-object", "-w", "--stdin"], input="old readme\n",
                          capture_output=True, text=True, check=True).stdout.strip()  # fmt: skip
    tree = subprocess.run(["git", "mktree"], input=f"100644 blob {blob}\tREADME.md\n",
                          capture_output=True, text=True, check=True).stdout.strip()  # fmt: skip
    root = git(project, "commit-tree", "-m", "gitexp: start the runs branch", tree).strip()
    git(project, "update-ref", "refs/heads/gitexp/runs", root)
    assert gitexp("run", "--", "python", "train.py").exit_code == 0
    assert git(project, "show", "gitexp/runs:README.md") == "old readme\n"  # never rewritten
    first = git(project, "show", "gitexp/runs:.gitattributes")
    assert "metrics.tsv linguist-generated=true" in first
    assert gitexp("run", "--", "python", "train.py").exit_code == 0
    touched = git(
        project, "log", "--format=%h", "--first-parent", "gitexp/runs", "--", ".gitattributes"
    )
    assert len(touched.split()) == 1  # written once


def test_report_makes_no_link_a_host_would_add_by_itself(project: Path, signing: Path) -> None:
    notes = "see https://evil.example and www.evil.example, mail bob@evil.example, fixes #123"
    assert gitexp("run", "--notes", notes, "--", "python", "train.py").exit_code == 0
    cell = rendered(gitexp("report").stdout).tables[1][1][4]
    assert cell.replace("\u2060", "") == notes
    # GitHub links bare addresses, e-mail addresses and issue references in plain text.
    for linked in (r"https?://", r"www\.", r"\w@\w", r"#\d"):
        assert not re.search(linked, cell), linked


def test_report_rows_carry_every_name_and_the_baseline_may_be_outside_the_choice(
    project: Path, signing: Path
) -> None:
    for name, seed, lr in (("alpha", "0", "0.1"), ("alpha", "1", "0.1"), ("beta", "2", "0.1"),
                           ("gamma", "0", "0.2")):  # fmt: skip
        result = gitexp("run", "--name", name, "--seed", seed, "--", "python", "train.py",
                        "--lr", lr)  # fmt: skip
        assert result.exit_code == 0, result.output
    # alpha names two runs, neither chosen: the baseline is their row, beta's too.
    text = gitexp("report", "gamma", "beta", "--baseline", "alpha").stdout
    metrics = rendered(text).tables[0]
    assert [row[0] for row in metrics[1:]] == ["alpha, beta (3 seeds, baseline)", "gamma"]
    assert "the baseline is `alpha`, `beta` (3 seeds)." in text


def test_report_plots_a_metric_whose_name_no_file_system_takes(
    project: Path, tmp_path: Path
) -> None:
    name = "x" * 300
    script = f"import gitexp\nwith gitexp.init() as run:\n    run.log({{{name!r}: 1.0}}, step=0)\n"
    script += f"    run.log({{{name!r}: 2.0}}, step=1)\n"
    (project / "long.py").write_text(script)
    assert gitexp("run", "--", sys.executable, "long.py").exit_code == 0
    result = gitexp("report", "-o", str(tmp_path / "r.md"), "--plots", str(tmp_path / "plots"))
    assert result.exit_code == 0, result.output
    (image,) = (tmp_path / "plots").iterdir()
    assert image.name == "x" * 80 + ".png"
    assert f"](plots/{image.name})" in (tmp_path / "r.md").read_text()
