"""A hostile record run again (`reproduce`, `rerun`, `explain`): even with consent given, a
replay reads and writes inside its own worktree only, through no link the record planted."""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import pygit2
import pytest
from pygit2.enums import FileMode

from gitexp import yamlio

from ..conftest import dvc, git, gitexp, run_ids, with_data_and_script
from .test_hostile_records import _plant

FORGED = "20260101-000000-evil001"
SCRIPT = """\
import gitexp
rows = open("data/train.csv").read().split()
with gitexp.init() as run:
    run.log({"loss": float(len(rows))})
"""


@pytest.fixture
def honest(project: Path) -> str:
    """A project with DVC data and one honest run of a script that reads it."""
    with_data_and_script(project, SCRIPT)
    assert gitexp("run", "--", sys.executable, "fit.py").exit_code == 0
    return run_ids(project)[0]


def _forge(project: Path, honest: str, code: dict[str, object] | None = None,
           snapshot: pygit2.Oid | None = None) -> None:  # fmt: skip
    """Plant FORGED: the honest run's record, with code.yaml changed."""
    repo = pygit2.Repository(str(project))
    folder = repo.revparse_single(f"gitexp/runs:experiments/{honest}").peel(pygit2.Tree)
    files = {entry.name: repo[entry.id].data for entry in folder}
    loaded = yamlio.load(files["code.yaml"], "code.yaml")
    loaded.update(code or {})
    if snapshot is not None:
        loaded["snapshot"] = str(snapshot)
    files["code.yaml"] = yamlio.dump(loaded)
    files["run.yaml"] = files["run.yaml"].replace(honest.encode(), FORGED.encode())
    _plant(project, FORGED, {name: data for name, data in files.items()})


def _snapshot_with_link(project: Path, honest: str, path: str, target: str) -> pygit2.Oid:
    """The honest run's snapshot, with `path` (at its top or one folder down) a link."""
    repo = pygit2.Repository(str(project))
    code = yamlio.load(repo.revparse_single(f"gitexp/runs:experiments/{honest}/code.yaml")
                       .peel(pygit2.Blob).data, "code.yaml")  # fmt: skip
    snapshot = repo[code["snapshot"]].peel(pygit2.Commit)
    folder, _, name = path.rpartition("/")
    link = repo.create_blob(target.encode())
    if not folder:
        top = repo.TreeBuilder(snapshot.tree)
        top.insert(name, link, FileMode.LINK)
    else:
        held = folder in snapshot.tree  # DVC keeps a dataset's folder out of git
        inner = (
            repo.TreeBuilder(snapshot.tree[folder].peel(pygit2.Tree))
            if held
            else (repo.TreeBuilder())
        )
        inner.insert(name, link, FileMode.LINK)
        top = repo.TreeBuilder(snapshot.tree)
        top.insert(folder, inner.write(), FileMode.TREE)
    who = pygit2.Signature("Mallory", "m@example.com")
    return repo.create_commit(None, who, who, "snapshot", top.write(), [snapshot.id])


def _cached(project: Path, content: bytes) -> bool:
    digest = hashlib.md5(content).hexdigest()
    return (project / ".dvc" / "cache" / "files" / "md5" / digest[:2] / digest[2:]).exists()


def test_a_config_file_outside_the_repository_is_never_read(
    project: Path, honest: str, tmp_path: Path
) -> None:
    secret = tmp_path / "secret.yaml"
    secret.write_text("aws_key_id: AKIAIOSFODNN7EXAMPLE\n")
    _forge(project, honest, {"config_files": [str(secret)]})
    before = run_ids(project)

    result = gitexp("reproduce", FORGED, "--yes")

    assert result.exit_code == 4
    assert f"{str(secret)!r} is not a path inside the repository" in result.stderr
    assert run_ids(project) == before  # nothing ran, nothing was recorded


def test_data_is_never_restored_through_a_link_the_snapshot_planted(
    project: Path, honest: str, tmp_path: Path
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "train.csv").write_text("precious\n")
    _forge(project, honest, snapshot=_snapshot_with_link(project, honest, "data", str(outside)))

    result = gitexp("reproduce", FORGED, "--yes")

    assert result.exit_code == 4
    assert "'data/train.csv' leads through the link data, which a replay never follows" in (
        result.stderr
    )
    assert (outside / "train.csv").read_text() == "precious\n"
    assert not _cached(project, b"precious\n")  # not copied in, to be pushed elsewhere


@pytest.mark.parametrize("path", ["data/train.csv.dvc", ".dvc/config.local"])
def test_a_link_where_dvc_reads_or_gitexp_writes_refuses_the_snapshot(
    project: Path, honest: str, tmp_path: Path, path: str
) -> None:
    target = tmp_path / "target"  # a pointer DVC would read, or a file gitexp would write
    target.write_text("outs:\n- md5: 0123456789abcdef0123456789abcdef\n  path: train.csv\n")
    before = target.read_text()
    _forge(project, honest, snapshot=_snapshot_with_link(project, honest, path, str(target)))

    result = gitexp("reproduce", FORGED, "--yes")

    assert result.exit_code == 4
    assert f"{path!r} of the run's code is a link, not a file" in result.stderr
    assert target.read_text() == before


def test_a_link_inside_a_dataset_folder_is_never_written_through(
    project: Path, tmp_path: Path
) -> None:
    with_data_and_script(project, SCRIPT)
    (project / "ds" / "sub").mkdir(parents=True)
    (project / "ds" / "sub" / "train.csv").write_text("from the dataset\n")
    dvc(project, "add", "ds")
    git(project, "add", "-A")
    git(project, "commit", "-q", "-m", "a dataset folder")
    assert gitexp("run", "--", sys.executable, "fit.py").exit_code == 0
    honest = run_ids(project)[0]
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "train.csv").write_text("precious\n")
    _forge(project, honest, snapshot=_snapshot_with_link(project, honest, "ds/sub", str(outside)))

    result = gitexp("reproduce", FORGED, "--yes")

    assert result.exit_code == 0, result.output  # the dataset is restored, the link gone
    assert (outside / "train.csv").read_text() == "precious\n"
