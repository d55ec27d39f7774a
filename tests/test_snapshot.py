from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pygit2
import pytest

from gitexp import snapshot, yamlio
from gitexp.errors import GitexpError
from gitexp.record import LeftOut
from gitexp.workspace import open_workspace

from .conftest import git


def _reference_tree(root: Path, tmp_path: Path) -> str:
    """What `git add -A` would make of the working tree, built in a throw-away index."""
    env = {**os.environ, "GIT_INDEX_FILE": str(tmp_path / "reference-index")}
    for args in (["read-tree", "HEAD"], ["add", "-A"]):
        subprocess.run(["git", *args], cwd=root, env=env, check=True)
    done = subprocess.run(
        ["git", "write-tree"], cwd=root, env=env, check=True, text=True, capture_output=True
    )
    return done.stdout.strip()


def _make_dirty(root: Path) -> None:
    (root / "train.py").write_text("print('changed')\n")
    (root / "model.py").write_text("class Net: pass\n")
    (root / "blob.bin").write_bytes(bytes(range(256)) * 4)
    (root / "latin1.txt").write_bytes("café\n".encode("latin-1"))
    (root / "run.sh").write_text("#!/bin/sh\necho hi\n")
    (root / "run.sh").chmod(0o755)
    (root / "link").symlink_to("train.py")
    (root / "weights.ckpt").write_bytes(b"ignored by .gitignore")


def test_clean_tree_snapshot_is_head(project: Path) -> None:
    code = snapshot.capture(open_workspace(), "r1")
    head = git(project, "rev-parse", "HEAD").strip()
    assert (code.state.commit, code.state.snapshot, code.state.dirty) == (head, head, False)
    assert code.diff == b""
    assert code.state.branch == "main"


def test_dirty_tree_is_captured_exactly(project: Path, tmp_path: Path) -> None:
    _make_dirty(project)
    git(project, "rm", "-q", "--cached", ".gitignore")
    (project / ".gitignore").unlink()
    (project / ".gitignore").write_text("*.ckpt\n")  # untracked now, still ignoring
    code = snapshot.capture(open_workspace(), "r1")

    repo = pygit2.Repository(str(project))
    snap = repo[code.state.snapshot].peel(pygit2.Commit)
    assert code.state.dirty
    assert [str(p) for p in snap.parent_ids] == [code.state.commit]
    assert str(snap.tree.id) == _reference_tree(project, tmp_path)
    assert "weights.ckpt" not in snap.tree


def test_code_diff_rebuilds_the_snapshot_with_git_apply(project: Path, tmp_path: Path) -> None:
    _make_dirty(project)
    (project / "train.py").unlink()  # a deleted tracked file
    code = snapshot.capture(open_workspace(), "r1")

    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(project), str(clone))
    (clone / "code.diff").write_bytes(code.diff)
    git(clone, "apply", "--binary", "code.diff")
    (clone / "code.diff").unlink()
    snap = pygit2.Repository(str(project))[code.state.snapshot].peel(pygit2.Commit)
    assert _reference_tree(clone, tmp_path) == str(snap.tree.id)


def test_snapshots_compare_with_plain_git_diff(project: Path) -> None:
    first = snapshot.capture(open_workspace(), "r1")
    (project / "train.py").write_text("print('lr=0.2')\n")
    second = snapshot.capture(open_workspace(), "r2")
    out = git(project, "diff", first.state.snapshot, second.state.snapshot, "--", "train.py")
    assert "+print('lr=0.2')" in out


def test_working_tree_index_and_stash_are_untouched(project: Path) -> None:
    _make_dirty(project)
    git(project, "add", "model.py")
    (project / "model.py").write_text("class Net: changed = True\n")
    git(project, "stash", "list")
    before = (
        git(project, "status", "--porcelain", "--ignored"),
        (project / ".git" / "index").read_bytes(),
        git(project, "stash", "list"),
        git(project, "rev-parse", "HEAD"),
    )
    snapshot.capture(open_workspace(), "r1")
    after = (
        git(project, "status", "--porcelain", "--ignored"),
        (project / ".git" / "index").read_bytes(),
        git(project, "stash", "list"),
        git(project, "rev-parse", "HEAD"),
    )
    assert after == before


def test_secrets_and_large_files_are_left_out_and_listed(project: Path) -> None:
    (project / ".gitexp.yaml").write_text("snapshot:\n  max_file_size: 1000\n")
    (project / ".env").write_text("TOKEN=abc\n")
    (project / "id_ed25519").write_text("-----BEGIN OPENSSH PRIVATE KEY-----\n")
    (project / "server.pem").write_text("cert\n")
    (project / "big.npy").write_bytes(b"\0" * 5000)
    code = snapshot.capture(open_workspace(), "r1")
    assert set(code.state.left_out) == {
        LeftOut(".env", "looks like a secret"),
        LeftOut("id_ed25519", "looks like a secret"),
        LeftOut("server.pem", "looks like a secret"),
        LeftOut("big.npy", "untracked and larger than 1000 bytes"),
    }
    tree = pygit2.Repository(str(project))[code.state.snapshot].peel(pygit2.Commit).tree
    assert ".gitexp.yaml" in tree
    for path in (".env", "id_ed25519", "server.pem", "big.npy"):
        assert path not in tree
    assert b"TOKEN" not in code.diff
    listed = yamlio.load(code.state.to_yaml(), "code.yaml")["left_out"]
    assert {"path": ".env", "reason": "looks like a secret"} in listed


def test_remote_credentials_are_stripped(project: Path) -> None:
    git(project, "remote", "add", "origin", "https://alice:s3cret@example.com/lab/model.git")
    git(project, "remote", "add", "ssh", "git@example.com:lab/model.git")
    code = snapshot.capture(open_workspace(), "r1")
    assert code.state.remotes == {
        "origin": "https://example.com/lab/model.git",
        "ssh": "git@example.com:lab/model.git",
    }


def test_submodule_commit_is_recorded(project: Path, tmp_path: Path) -> None:
    library = tmp_path / "library"
    library.mkdir()
    git(library, "init", "-q")
    (library / "lib.py").write_text("x = 1\n")
    git(library, "add", "-A")
    git(library, "commit", "-q", "-m", "lib")
    git(project, "-c", "protocol.file.allow=always", "submodule", "add", "-q", str(library), "lib")
    git(project, "commit", "-q", "-m", "add lib")
    (project / "lib" / "lib.py").write_text("x = 2\n")
    git(project / "lib", "commit", "-q", "-am", "bump")
    moved = git(project / "lib", "rev-parse", "HEAD").strip()

    code = snapshot.capture(open_workspace(), "r1")
    assert code.state.submodules == {"lib": moved}
    tree = pygit2.Repository(str(project))[code.state.snapshot].peel(pygit2.Commit).tree
    assert str(tree["lib"].id) == moved


def test_detached_head_has_no_branch(project: Path) -> None:
    git(project, "checkout", "-q", "--detach")
    assert snapshot.capture(open_workspace(), "r1").state.branch is None


def test_repository_without_commits_is_one_clear_error(tmp_path: Path) -> None:
    git(tmp_path, "init", "-q")
    with pytest.raises(GitexpError, match="no commits yet"):
        snapshot.capture(open_workspace(tmp_path), "r1")
