"""Outputs are never code (DESIGN.md §1): what runs and DVC write leaves every run clean."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pygit2
import pytest

from gitexp import setup, snapshot, yamlio
from gitexp.api import Run
from gitexp.record import LeftOut
from gitexp.workspace import open_workspace

from .conftest import git, gitexp, run_ids

_RULE = "# gitexp: what runs write (run.dir) is never code\n/outputs/\n"


def _code_yaml(root: Path) -> dict[str, Any]:
    text = git(root, "show", f"gitexp/runs:experiments/{run_ids(root)[0]}/code.yaml")
    code = yamlio.load(text, "code.yaml")
    assert isinstance(code, dict)
    return code


def _left_out(code: dict[str, Any]) -> dict[str, str]:
    return {item["path"]: item["reason"] for item in code["left_out"]}


@pytest.fixture
def initialised(project: Path, tmp_path: Path) -> Path:
    """The project after `gitexp init --remote`, its files committed as init asks."""
    result = gitexp("init", "--remote", str(tmp_path / "dvc-remote"))
    assert result.exit_code == 0, result.output
    git(project, "add", "-A")
    git(project, "commit", "-q", "-m", "gitexp init")
    return project


# --- the rule in .gitignore -------------------------------------------------------------------


def test_the_outputs_rule_is_appended_to_an_existing_gitignore_once(project: Path) -> None:
    assert setup._ignore_outputs(project)
    assert (project / ".gitignore").read_text() == "*.ckpt\n\n" + _RULE
    assert not setup._ignore_outputs(project)  # there already: nothing added
    assert (project / ".gitignore").read_text() == "*.ckpt\n\n" + _RULE


def test_a_gitignore_that_ignores_outputs_already_is_left_alone(project: Path) -> None:
    (project / ".gitignore").write_bytes(b"*.ckpt\noutputs/\n\xff\n")  # not all UTF-8 either
    assert not setup._ignore_outputs(project)
    assert (project / ".gitignore").read_bytes() == b"*.ckpt\noutputs/\n\xff\n"


def test_a_gitignore_without_a_final_newline_keeps_its_last_rule(project: Path) -> None:
    (project / ".gitignore").write_text("*.ckpt")
    assert setup._ignore_outputs(project)
    assert (project / ".gitignore").read_text() == "*.ckpt\n\n" + _RULE


@pytest.mark.slow
def test_init_writes_the_rule_so_that_it_holds_in_a_fresh_clone(
    project: Path, tmp_path: Path
) -> None:
    result = gitexp("init")
    assert result.exit_code == 0, result.output
    assert "updated .gitignore\n" in result.stdout
    assert result.stdout.endswith("commit the files above to share them\n")
    git(project, "add", "-A")
    git(project, "commit", "-q", "-m", "gitexp init")
    assert "updated .gitignore" not in gitexp("init").stdout  # a second time changes nothing

    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(project), str(clone))
    assert (clone / ".git" / "info" / "exclude").read_text().count("outputs") == 0
    assert git(clone, "check-ignore", "outputs/r1/model.pt") == "outputs/r1/model.pt\n"


@pytest.mark.slow
def test_init_creates_a_gitignore_where_there_was_none(project: Path) -> None:
    git(project, "rm", "-q", ".gitignore")
    result = gitexp("init")
    assert result.exit_code == 0, result.output
    assert "created .gitignore\n" in result.stdout
    assert (project / ".gitignore").read_text() == _RULE


# --- the outputs folder -----------------------------------------------------------------------


def test_a_file_in_the_outputs_folder_is_left_out_and_the_run_is_clean(project: Path) -> None:
    folder = project / Run("r0", {}).dir  # where a script is told to write
    folder.mkdir(parents=True)  # no .gitignore rule here: the snapshot's own rule holds
    (folder / "model.pt").write_bytes(b"\0weights")
    assert gitexp("run", "--", sys.executable, "train.py").exit_code == 0

    code = _code_yaml(project)
    head = git(project, "rev-parse", "HEAD").strip()
    assert (code["dirty"], code["snapshot"]) == (False, head)
    assert _left_out(code) == {"outputs/r0/model.pt": "a run's output (in outputs/)"}
    diff = git(project, "show", f"gitexp/runs:experiments/{run_ids(project)[0]}/code.diff")
    assert diff == ""


def test_an_untracked_file_beside_an_output_still_makes_the_run_dirty(project: Path) -> None:
    (project / "outputs").mkdir()
    (project / "outputs" / "log.txt").write_text("epoch 1\n")
    (project / "model.py").write_text("class Net: pass\n")
    code = snapshot.capture(open_workspace(), "r1")
    tree = pygit2.Repository(str(project))[code.state.snapshot].peel(pygit2.Commit).tree
    assert code.state.dirty
    assert "model.py" in tree and "outputs" not in tree
    assert code.state.left_out == (LeftOut("outputs/log.txt", "a run's output (in outputs/)"),)


def test_a_tree_without_new_files_never_opens_the_index_of_runs(project: Path) -> None:
    assert gitexp("run", "--", "true").exit_code == 0  # a runs branch to look at
    index = project / ".git" / "gitexp" / "catalog.sqlite"
    index.unlink(missing_ok=True)
    (project / "train.py").write_text("print('edited')\n")  # modified: a commit holds it
    assert snapshot.capture(open_workspace(), "r1").state.dirty
    assert not index.exists()
    (project / "notes.txt").write_text("new\n")
    snapshot.capture(open_workspace(), "r2")
    assert index.exists()  # a new file: asked whether a run made it


# --- artifacts runs recorded ------------------------------------------------------------------


@pytest.mark.slow
def test_output_paths_of_a_run_do_not_make_the_next_run_dirty(initialised: Path) -> None:
    made = "echo weights > model.pt && mkdir -p ckpts/last && echo w > ckpts/last/w.bin"
    result = gitexp("run", "--output", "model.pt", "--output", "ckpts", "--", "sh", "-c", made)
    assert result.exit_code == 0, result.stderr
    assert gitexp("run", "--", sys.executable, "train.py").exit_code == 0

    code = _code_yaml(initialised)
    assert (code["dirty"], code["snapshot"]) == (False, code["commit"])
    recorded = "a run's output (an artifact a run recorded)"
    assert _left_out(code) == {"ckpts/last/w.bin": recorded, "model.pt": recorded}


JOB = """\
import gitexp
with gitexp.init(config={"lr": 0.1}) as run:
    (run.dir / "model.pt").write_bytes(b"\\0weights" * 100)
    run.log_artifact(run.dir / "model.pt", role="last")
    with open("preds.csv", "w") as f:
        f.write("id,p\\n1,0.9\\n")
    run.log_artifact("preds.csv", role="output")
"""


@pytest.mark.slow
def test_a_logged_artifact_does_not_make_the_next_run_dirty(initialised: Path) -> None:
    (initialised / "job.py").write_text(JOB)
    git(initialised, "add", "job.py")
    git(initialised, "commit", "-q", "-m", "job")
    done = subprocess.run([sys.executable, "job.py"], cwd=initialised, capture_output=True)
    assert done.returncode == 0, done.stderr
    assert gitexp("run", "--", sys.executable, "train.py").exit_code == 0

    code = _code_yaml(initialised)
    assert (code["dirty"], code["snapshot"]) == (False, code["commit"])
    assert _left_out(code) == {"preds.csv": "a run's output (an artifact a run recorded)"}


@pytest.mark.slow
def test_a_committed_file_logged_as_an_artifact_stays_code(initialised: Path) -> None:
    # Leaving it out would hide every later edit of it: code logged for provenance is code.
    (initialised / "job.py").write_text(
        "import gitexp\n"
        "with gitexp.init() as run:\n"
        "    run.log_artifact('train.py')\n"
        "    open('preds.csv', 'w').write('1\\n')\n"
        "    run.log_artifact('preds.csv')\n"
    )
    done = subprocess.run([sys.executable, "job.py"], cwd=initialised, capture_output=True)
    assert done.returncode == 0, done.stderr
    (initialised / "train.py").write_text("print('edited')\n")
    assert gitexp("run", "--", sys.executable, "train.py").exit_code == 0

    code = _code_yaml(initialised)
    assert code["dirty"]
    assert _left_out(code) == {"preds.csv": "a run's output (an artifact a run recorded)"}
    snap = git(initialised, "show", f"{code['snapshot']}:train.py")
    assert snap == "print('edited')\n"  # the edit is in the snapshot, not hidden
    assert "job.py" in git(initialised, "show", "--name-only", "--format=", code["snapshot"])


@pytest.mark.slow
def test_checkout_of_artifacts_on_a_fresh_clone_leaves_the_next_run_clean(
    initialised: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (initialised / "job.py").write_text(JOB)
    git(initialised, "add", "job.py")
    git(initialised, "commit", "-q", "-m", "job")
    done = subprocess.run([sys.executable, "job.py"], cwd=initialised, capture_output=True)
    assert done.returncode == 0, done.stderr
    git(tmp_path, "init", "-q", "--bare", "shared.git")
    git(initialised, "remote", "add", "origin", str(tmp_path / "shared.git"))
    git(initialised, "push", "-q", "origin", "main")
    assert gitexp("push").exit_code == 0
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(tmp_path / "shared.git"), str(clone))
    monkeypatch.chdir(clone)
    assert gitexp("pull").exit_code == 0

    restored = gitexp("checkout", "@", "--artifacts")
    assert restored.exit_code == 0, restored.stderr
    assert "restored preds.csv" in restored.stdout
    assert gitexp("run", "--", sys.executable, "train.py").exit_code == 0

    code = _code_yaml(clone)
    assert (code["dirty"], code["snapshot"]) == (False, code["commit"])
    assert _left_out(code) == {"preds.csv": "a run's output (an artifact a run recorded)"}
    assert git(clone, "status", "--porcelain") == "?? preds.csv\n"  # outputs/ ignored by rule


# --- DVC outputs ------------------------------------------------------------------------------

PIPELINE = """\
stages:
  train:
    cmd: python train.py
    outs:
    - model/
    metrics:
    - metrics.json:
        cache: false
"""
REPORTS = """\
stages:
  report:
    cmd: python report.py
    wdir: ..
    plots:
    - plots/loss.csv
  summary:
    cmd: python summary.py
    outs:
    - summary.txt
"""


def test_dvc_outputs_that_git_does_not_ignore_are_left_out(project: Path) -> None:
    # DVC never git-ignores `cache: false` outputs, nor any whose .gitignore lines were lost.
    (project / "dvc.yaml").write_text(PIPELINE)
    (project / "sub").mkdir()
    (project / "sub" / "dvc.yaml").write_text(REPORTS)
    (project / "data.csv.dvc").write_text(
        "outs:\n- md5: 0123456789abcdef0123456789abcdef\n  size: 2\n  path: data.csv\n"
    )
    git(project, "add", "-A")
    git(project, "commit", "-q", "-m", "pipelines")
    for path in ("model/w.bin", "metrics.json", "plots/loss.csv", "sub/summary.txt", "data.csv"):
        (project / path).parent.mkdir(parents=True, exist_ok=True)
        (project / path).write_text("1\n")

    code = snapshot.capture(open_workspace(), "r1")
    assert {item.path: item.reason for item in code.state.left_out} == {
        "data.csv": "a DVC output (data.csv.dvc)",
        "metrics.json": "a DVC output (dvc.yaml)",
        "model/w.bin": "a DVC output (dvc.yaml)",
        "plots/loss.csv": "a DVC output (sub/dvc.yaml)",  # its stage works from the top
        "sub/summary.txt": "a DVC output (sub/dvc.yaml)",
    }
    head = git(project, "rev-parse", "HEAD").strip()
    assert (code.state.dirty, code.state.snapshot) == (False, head)
