"""Datasets pinned by DVC, with real DVC repositories and caches."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from gitexp import yamlio

from .conftest import dvc, git, gitexp, run_ids

# Slow as a whole (each test sets up DVC): `make test-quick` leaves it out.
pytestmark = pytest.mark.slow


@pytest.fixture
def tracked(project: Path, tmp_path: Path) -> Path:
    """The project after `gitexp init --remote`, with a DVC-tracked file and folder."""
    result = gitexp("init", "--remote", str(tmp_path / "remote"))
    assert result.exit_code == 0, result.output
    (project / "data" / "images").mkdir(parents=True)
    (project / "data" / "train.csv").write_text("x,y\n1,2\n")
    for i in range(3):
        (project / "data" / "images" / f"{i}.txt").write_text(f"image {i}\n")
    dvc(project, "add", "data/train.csv", "data/images")
    git(project, "add", "-A")
    git(project, "commit", "-q", "-m", "data")
    return project


def _data_yaml(root: Path) -> list[dict[str, object]]:
    text = git(root, "show", f"gitexp/runs:experiments/{run_ids(root)[0]}/data.yaml")
    datasets = yamlio.load(text, "data.yaml")["datasets"]
    assert isinstance(datasets, list)
    return datasets


def _pointer_md5(root: Path, pointer: str) -> str:
    return str(yamlio.load((root / pointer).read_bytes(), pointer)["outs"][0]["md5"])


def test_init_sets_up_dvc_and_a_directory_remote(project: Path, tmp_path: Path) -> None:
    result = gitexp("init", "--remote", str(tmp_path / "remote"))
    assert result.exit_code == 0
    assert "created .dvc/" in result.stdout
    assert f"DVC remote 'gitexp' -> {tmp_path / 'remote'} (the default remote)" in result.stdout
    config = (project / ".dvc" / "config").read_text()
    assert "remote = gitexp" in config and str(tmp_path / "remote") in config
    assert git(project, "branch", "--list", "gitexp/runs").strip() == "gitexp/runs"
    assert gitexp("init").exit_code == 0  # a second time changes nothing


def test_every_tracked_dataset_is_pinned_by_default(tracked: Path) -> None:
    assert gitexp("run", "--", sys.executable, "train.py").exit_code == 0
    assert _data_yaml(tracked) == [
        {
            "path": "data/images",
            "md5": _pointer_md5(tracked, "data/images.dvc"),
            "size": 24,
            "nfiles": 3,
            "pointer": "data/images.dvc",
            "matches_pointer": True,
            "made_by": None,
        },
        {
            "path": "data/train.csv",
            "md5": _pointer_md5(tracked, "data/train.csv.dvc"),
            "size": 8,
            "nfiles": None,
            "pointer": "data/train.csv.dvc",
            "matches_pointer": True,
            "made_by": None,
        },
    ]


@pytest.mark.slow
def test_outputs_of_dvc_lock_are_pinned(tracked: Path) -> None:
    (tracked / "dvc.yaml").write_text(
        "stages:\n  prepare:\n    cmd: cp data/train.csv data/clean.csv\n"
        "    deps: [data/train.csv]\n    outs: [data/clean.csv]\n"
    )
    dvc(tracked, "repro", "prepare")
    assert gitexp("run", "--data", "data/clean.csv", "--", "true").exit_code == 0
    (pin,) = _data_yaml(tracked)
    assert (pin["path"], pin["pointer"], pin["matches_pointer"]) == (
        "data/clean.csv",
        "dvc.lock:prepare",
        True,
    )


def test_changed_data_is_refused_with_status_3(tracked: Path) -> None:
    before = _pointer_md5(tracked, "data/train.csv.dvc")
    (tracked / "data" / "train.csv").write_text("x,y\n1,3\n")
    result = gitexp("run", "--", sys.executable, "train.py")
    assert result.exit_code == 3
    assert result.stderr.startswith(
        f"Error: data/train.csv has changed since data/train.csv.dvc pinned it (md5 {before[:8]} → "
    )
    assert "training" not in result.stdout
    assert (
        git(tracked, "ls-tree", "-r", "--name-only", "gitexp/runs") == ".gitattributes\nREADME.md\n"
    )


def test_allowed_changed_data_is_hashed_into_the_cache(tracked: Path) -> None:
    (tracked / "data" / "images" / "3.txt").write_text("a new image\n")
    result = gitexp("run", "--allow-unpinned-data", "--", sys.executable, "train.py")
    assert result.exit_code == 0, result.stderr
    images = next(pin for pin in _data_yaml(tracked) if pin["path"] == "data/images")
    assert images["matches_pointer"] is False and images["nfiles"] == 4
    md5 = str(images["md5"])
    assert md5 != _pointer_md5(tracked, "data/images.dvc") and md5.endswith(".dir")
    cache = tracked / ".dvc" / "cache" / "files" / "md5"
    listing = json.loads((cache / md5[:2] / md5[2:]).read_text())
    assert len(listing) == 4
    assert all((cache / e["md5"][:2] / e["md5"][2:]).exists() for e in listing)
    assert (tracked / "data" / "images.dvc").read_text().count(md5) == 0  # pointer untouched


def test_untracked_data_is_refused_unless_allowed(tracked: Path) -> None:
    (tracked / "extra.csv").write_text("1\n")
    refused = gitexp("run", "--data", "extra.csv", "--", "true")
    assert refused.exit_code == 3
    assert "extra.csv is not tracked by DVC" in refused.stderr
    allowed = gitexp("run", "--data", "extra.csv", "--allow-unpinned-data", "--", "true")
    assert allowed.exit_code == 0
    (pin,) = _data_yaml(tracked)
    assert (pin["path"], pin["pointer"], pin["matches_pointer"]) == ("extra.csv", None, False)


def test_missing_path_is_an_error(tracked: Path) -> None:
    result = gitexp("run", "--data", "nope.csv", "--", "true")
    assert (result.exit_code, result.stderr) == (
        1,
        "Error: --data nope.csv: no such file or folder\n",
    )


def test_settings_choose_the_datasets(tracked: Path) -> None:
    (tracked / ".gitexp.yaml").write_text("data: [data/train.csv]\n")
    assert gitexp("run", "--", "true").exit_code == 0
    assert [pin["path"] for pin in _data_yaml(tracked)] == ["data/train.csv"]


def test_unchanged_data_is_not_hashed_again(tracked: Path) -> None:
    assert gitexp("run", "--", "true").exit_code == 0  # records the files' stats
    probe = (
        "import sys\n"
        "from pathlib import Path\n"
        "from gitexp import data\n"
        "from gitexp.workspace import open_workspace\n"
        "pins = data.pin(open_workspace(), Path.cwd(), None, False)\n"
        "print(len(pins), 'dvc.repo' in sys.modules, 'dvc_data' in sys.modules)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], cwd=tracked, capture_output=True, text=True, check=True
    )
    assert done.stdout == "2 False False\n"


@pytest.mark.slow
def test_api_pins_the_data_it_names(tracked: Path) -> None:
    (tracked / "job.py").write_text(
        "import gitexp\nwith gitexp.init(data=['data/train.csv']):\n    pass\n"
    )
    done = subprocess.run([sys.executable, "job.py"], cwd=tracked, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert [pin["path"] for pin in _data_yaml(tracked)] == ["data/train.csv"]


@pytest.mark.slow
def test_many_runs_starting_at_once_share_the_data_state(tracked: Path) -> None:
    (tracked / "data" / "train.csv").write_text("x,y\n5,6\n")  # every run must hash it
    processes = [
        subprocess.Popen(
            [sys.executable, "-m", "gitexp", "run", "--allow-unpinned-data", "--", "true"],
            cwd=tracked,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(8)
    ]
    errors = [p.communicate(timeout=120)[1] for p in processes]
    assert [p.returncode for p in processes] == [0] * 8, errors
    assert len(run_ids(tracked)) == 8


def _file(root: Path, run_id: str, name: str) -> object:
    return yamlio.load(git(root, "show", f"gitexp/runs:experiments/{run_id}/{name}"), name)


@pytest.mark.slow
def test_checkpoints_are_cached_and_recorded_with_dvc_pointers(tracked: Path) -> None:
    pytest.importorskip("torch")
    (tracked / "job.py").write_text(
        "import torch, gitexp\n"
        "from gitexp.torch import save_checkpoint\n"
        "with gitexp.init() as run:\n"
        "    for epoch in range(2):\n"
        "        save_checkpoint({'w': torch.ones(2) * epoch}, run.dir / 'model.pt', step=epoch,\n"
        "                        metrics={'val/loss': 1.0 - epoch / 4})\n"
    )
    done = subprocess.run([sys.executable, "job.py"], cwd=tracked, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    run_id = run_ids(tracked)[0]
    made = _file(tracked, run_id, "artifacts.yaml")
    assert isinstance(made, dict)
    first, second = made["artifacts"]
    assert (first["path"], first["role"], first["step"], first["metrics"]) == (
        f"outputs/{run_id}/model.pt",
        "last",
        0,
        {"val/loss": 1.0},
    )
    assert first["md5"] != second["md5"]  # the overwritten epoch-0 checkpoint is kept
    cache = tracked / ".dvc" / "cache" / "files" / "md5"
    for entry in (first, second):
        assert (cache / entry["md5"][:2] / entry["md5"][2:]).exists()
        pointer = _file(tracked, run_id, entry["pointer"])
        assert pointer == {
            "outs": [
                {"md5": entry["md5"], "size": entry["size"], "hash": "md5", "path": "model.pt"}
            ]
        }


@pytest.mark.slow
def test_output_of_gitexp_run_is_an_artifact(tracked: Path) -> None:
    result = gitexp(
        "run",
        "--output",
        "out.txt",
        "--output",
        "never.txt",
        "--",
        "sh",
        "-c",
        "echo result > out.txt",
    )
    assert result.exit_code == 0
    assert "gitexp: --output never.txt was not written by the command; not recorded" in (
        result.stderr
    )
    made = _file(tracked, run_ids(tracked)[0], "artifacts.yaml")
    assert isinstance(made, dict)
    (artifact,) = made["artifacts"]
    assert (artifact["path"], artifact["role"], artifact["pointer"]) == (
        "out.txt",
        "output",
        "out.txt.dvc",
    )


@pytest.mark.slow
def test_a_run_reading_another_runs_artifact_records_the_lineage(tracked: Path) -> None:
    assert (
        gitexp(
            "run",
            "--name",
            "maker",
            "--output",
            "model.bin",
            "--",
            "sh",
            "-c",
            "echo weights > model.bin",
        ).exit_code
        == 0
    )
    maker = run_ids(tracked)[0]
    result = gitexp("run", "--name", "user", "--data", "model.bin", "--", "cat", "model.bin")
    assert result.exit_code == 0, result.stderr  # pinned: the cache holds it, no refusal
    user = run_ids(tracked)[0]
    (pin,) = _data_yaml(tracked)
    assert (pin["pointer"], pin["made_by"]) == (f"run {maker}", maker)
    run = _file(tracked, user, "run.yaml")
    assert isinstance(run, dict) and run["inputs"] == [maker]
    shown_maker = json.loads(gitexp("show", "maker", "--json").stdout)
    assert shown_maker["lineage"] == {"inputs": [], "used_by": [user]}
    shown_user = gitexp("show", "user").stdout
    assert f"made from  {maker}" in shown_user


@pytest.mark.slow
def test_checkout_brings_back_the_exact_bytes_a_run_read(tracked: Path) -> None:
    original = (tracked / "data" / "train.csv").read_bytes()
    assert gitexp("run", "--name", "first", "--", "true").exit_code == 0
    (tracked / "data" / "train.csv").write_text("x,y\n9,9\n")
    assert gitexp("run", "--allow-unpinned-data", "--", "true").exit_code == 0
    edited = (tracked / "data" / "train.csv").read_bytes()

    (tracked / "data" / "train.csv").unlink()
    result = gitexp("checkout", "first", "data/train.csv")
    assert result.exit_code == 0, result.stderr
    assert result.stdout.startswith("restored data/train.csv (md5 ")
    assert (tracked / "data" / "train.csv").read_bytes() == original

    result = gitexp("checkout", "@", "--data")  # over the file: its content is kept first
    assert (tracked / "data" / "train.csv").read_bytes() == edited
    assert "its previous content is in the DVC cache as" in result.stdout
    assert gitexp("checkout", "@", "--data").stdout == (
        "nothing to restore: every path already holds the run's version\n"
    )


@pytest.mark.slow
def test_checkout_restores_artifacts_and_folders(tracked: Path) -> None:
    assert (
        gitexp(
            "run",
            "--output",
            "out",
            "--",
            "sh",
            "-c",
            "mkdir out && echo a > out/a && echo b > out/b",
        ).exit_code
        == 0
    )
    for name in ("a", "b"):
        (tracked / "out" / name).unlink()
    result = gitexp("checkout", "@", "--artifacts")
    assert result.exit_code == 0, result.stderr
    assert (tracked / "out" / "a").read_text() == "a\n" and (
        tracked / "out" / "b"
    ).read_text() == "b\n"


@pytest.mark.slow
def test_checkout_fetches_from_the_directory_remote(tracked: Path) -> None:
    original = (tracked / "data" / "images" / "1.txt").read_bytes()
    assert gitexp("run", "--", "true").exit_code == 0
    dvc(tracked, "push")
    shutil.rmtree(tracked / ".dvc" / "cache")
    shutil.rmtree(tracked / "data" / "images")
    result = gitexp("checkout", "@", "data/images")
    assert result.exit_code == 0, result.stderr
    assert (tracked / "data" / "images" / "1.txt").read_bytes() == original


def test_checkout_of_a_lost_object_names_it_and_where_it_looked(tracked: Path) -> None:
    assert gitexp("run", "--", "true").exit_code == 0
    md5 = _pointer_md5(tracked, "data/train.csv.dvc")
    shutil.rmtree(tracked / ".dvc" / "cache")
    (tracked / "data" / "train.csv").unlink()
    result = gitexp("checkout", "@", "data/train.csv")
    assert result.exit_code == 1
    assert result.stderr.startswith(
        f"Error: data/train.csv (md5 {md5}) is in neither the DVC cache "
        f"({tracked / '.dvc' / 'cache' / 'files' / 'md5'}) nor the DVC remote at "
    )


def test_checkout_of_a_path_the_run_did_not_use(tracked: Path) -> None:
    assert gitexp("run", "--", "true").exit_code == 0
    run_id = run_ids(tracked)[0]
    result = gitexp("checkout", "@", "train.py")
    assert (result.exit_code, result.stderr) == (
        1,
        f"Error: run {run_id} neither read nor made train.py; see `gitexp show {run_id}`\n",
    )


def test_a_missing_dvc_is_named(project: Path) -> None:
    # An environment where DVC cannot be imported, as after a broken install.
    code = "import sys; sys.modules['dvc'] = None; from gitexp.cli import main; main()"
    done = subprocess.run([sys.executable, "-c", code, "init"], cwd=project, capture_output=True,
                          text=True, check=False)  # fmt: skip

    assert done.returncode == 1
    assert done.stderr == (
        "Error: the Python package 'dvc' that gitexp needs is not installed here; reinstall "
        "gitexp with its dependencies (`pip install gitexp`)\n"
    )


@pytest.mark.parametrize("how", ["git", "no-git-on-path", "small-index"])
def test_pointer_files_are_found_wherever_they_are(
    project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    """Committed, staged and untracked pointers, in any folder; git finds those in a large
    index, pygit2 walks a small one, or any where a training container has no git."""
    from gitexp import data
    from gitexp.workspace import open_workspace

    def pointer(path: str, out: str) -> None:
        (project / path).parent.mkdir(parents=True, exist_ok=True)
        (project / path).write_text(f"outs:\n- md5: {'a' * 32}\n  path: {out}\n")

    pointer("a/b/images.dvc", "images")
    (project / "a" / "dvc.lock").write_text(
        f"stages:\n  prep:\n    outs:\n    - md5: {'b' * 32}\n      path: features\n"
    )
    (project / "a" / "notdvc.lock").write_text("stages: {}\n")
    git(project, "add", "-A")
    git(project, "commit", "-q", "-m", "pointers")
    pointer("staged.dvc", "staged")
    git(project, "add", "staged.dvc")
    pointer("c/untracked.dvc", "loose")
    ws = open_workspace()  # before PATH changes: finding the repository asks git
    if how != "small-index":
        monkeypatch.setattr(data, "_WALKED_ENTRIES", 0)  # this index counts as large
    if how == "no-git-on-path":
        monkeypatch.setenv("PATH", str(tmp_path / "nowhere"))

    assert data.pointers(ws).keys() == {"a/b/images", "a/features", "staged", "c/loose"}
