"""`gitexp verify` against an attacker: forged annotations, git's object substitution (replace
refs, grafts), a history rewritten by a trusted key once the reflog has expired, and objects
deleted or overwritten on disk. Every attack is built with git plumbing or pygit2 on real
ssh-signed records, the way someone with a clone or write access to .git would."""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import sys
import zlib
from collections.abc import Mapping
from pathlib import Path

import pygit2
import pytest
from pygit2.enums import FileMode

from gitexp import yamlio

from ..conftest import git, gitexp, run_ids, ssh_key

RUNS = "refs/heads/gitexp/runs"


@pytest.fixture
def two_runs(project: Path, signing: Path) -> list[str]:
    """Two signed runs, oldest first; the first one's code is dirty, so it has a snapshot
    commit of its own."""
    (project / "train.py").write_text((project / "train.py").read_text() + "# tuned\n")
    for lr in ("0.1", "0.2"):
        result = gitexp("run", "--", sys.executable, "train.py", "--lr", lr)
        assert result.exit_code == 0, result.output
    return sorted(run_ids(project))


def _verify(*args: str) -> tuple[int, dict[str, tuple[str, str]], dict[str, list[str]]]:
    """verify's verdict, which must be the same whatever earlier verifies remembered: with
    what they did (steps of the branch, signatures), with none of it, and with all of it."""
    said = [_verdict(*args)]
    with sqlite3.connect(Path(".git/gitexp/catalog.sqlite")) as db:
        db.execute("DELETE FROM walked")
        db.execute("DELETE FROM signatures")
    said += [_verdict(*args), _verdict(*args)]
    assert said[1:] == said[:-1]
    return said[0]


def _verdict(*args: str) -> tuple[int, dict[str, tuple[str, str]], dict[str, list[str]]]:
    result = gitexp("verify", "--json", *args)
    found = json.loads(result.stdout)
    runs = {run["id"]: (run["status"], run["detail"]) for run in found["runs"]}
    return result.exit_code, runs, {"rewritten": found["rewritten"], "branch": found["branch"]}


def _short(oid: str) -> str:
    return oid[:12]


def _rev(project: Path, rev: str) -> str:
    return git(project, "rev-parse", rev).strip()


def _tree_with(project: Path, commit: str, files: Mapping[str, bytes | None]) -> str:
    """The tree of `commit` with `files` written (None: removed), made with pygit2."""
    repo = pygit2.Repository(str(project))
    index = pygit2.Index()
    index.read_tree(repo[commit].peel(pygit2.Commit).tree)
    for path, data in files.items():
        if data is None:
            index.remove(path)
        else:
            index.add(pygit2.IndexEntry(path, repo.create_blob(data), FileMode.BLOB))
    return str(index.write_tree(repo))


def _commit(
    project: Path, tree: str, parents: list[str], message: str, key: Path | None = None
) -> str:
    """A commit object made with `git commit-tree`: unsigned, or signed with `key`."""
    sign = ["-c", f"user.signingkey={key}"] if key else []
    args = [*sign, "commit-tree", *(["-S"] if key else []), "-m", message]
    return git(project, *args, *(a for p in parents for a in ("-p", p)), tree).strip()


def _forge(
    project: Path, files: Mapping[str, bytes | None], message: str, key: Path | None = None
) -> str:
    """Put a commit changing `files` on the runs branch, as an attacker would; returns it."""
    tip = _rev(project, RUNS)
    made = _commit(project, _tree_with(project, tip, files), [tip], message, key)
    git(project, "update-ref", RUNS, made)
    return made


def _annotations(tags: list[str]) -> bytes:
    return yamlio.dump({"tags": tags, "notes": []})


def _loose(project: Path, oid: str) -> Path:
    """The file of a loose object, checked to be loose (not packed) so that damaging it is
    what a bad disk or an attacker would do."""
    path = project / ".git" / "objects" / oid[:2] / oid[2:]
    assert path.is_file(), f"{oid} is not a loose object"
    path.chmod(0o644)
    return path


def _snapshot(project: Path, run_id: str) -> str:
    code = yamlio.load(git(project, "show", f"gitexp/runs:experiments/{run_id}/code.yaml"), "c")
    return str(code["snapshot"])


# --- annotations -----------------------------------------------------------------------------


def test_a_forged_tag_in_an_unsigned_commit_fails_and_is_not_verified(
    project: Path, two_runs: list[str]
) -> None:
    trusted, forged = two_runs
    assert gitexp("tag", trusted, "best").exit_code == 0  # signed by the trusted key
    path = f"experiments/{forged}/annotations.yaml"
    made = _forge(project, {path: _annotations(["best"])}, f"gitexp: annotate run {forged}")

    status, runs, _ = _verify()

    assert status == 4
    assert runs[trusted] == ("ok", "")
    assert runs[forged] == (
        "unsigned annotation",
        f"annotations.yaml as it is now was made by commit {_short(made)}: "
        "the commit has no signature",
    )
    result = gitexp("verify", forged)
    assert result.exit_code == 4
    assert result.stdout.startswith(f"unsigned annotation  {forged}  annotations.yaml as it is")
    listed = json.loads(gitexp("log", "--tag", "best", "--json").stdout)
    assert sorted(r["id"] for r in listed) == sorted(two_runs)  # the index lists what is there
    verified = json.loads(gitexp("log", "--tag", "best", "--verified", "--json").stdout)
    assert [r["id"] for r in verified] == [trusted]


def test_a_tag_signed_by_an_untrusted_key_is_forged(
    project: Path, two_runs: list[str], tmp_path: Path
) -> None:
    eve = ssh_key(tmp_path, "eve")
    run_id = two_runs[0]
    path = f"experiments/{run_id}/annotations.yaml"
    made = _forge(project, {path: _annotations(["best"])}, f"gitexp: annotate run {run_id}", eve)

    status, runs, _ = _verify(run_id)

    assert status == 4
    verdict, detail = runs[run_id]
    assert verdict == "forged annotation"
    assert detail.startswith(f"annotations.yaml as it is now was made by commit {_short(made)}: ")
    assert "No principal matched" in detail


def test_a_commit_whose_message_names_another_run_cannot_hide_a_forged_tag(
    project: Path, two_runs: list[str]
) -> None:
    """gitexp commits name their run, which saves comparing big listings: a commit that says
    it annotates one run while it changes another must still be caught."""
    named, changed = two_runs
    _forge(
        project,
        {
            f"experiments/{named}/annotations.yaml": _annotations(["x"]),
            f"experiments/{changed}/annotations.yaml": _annotations(["best"]),
        },
        f"gitexp: annotate run {named}",
    )

    _, runs, _ = _verify()

    assert runs[changed][0] == "unsigned annotation"
    assert runs[named][0] == "unsigned annotation"


def test_a_forged_run_commit_that_also_retags_another_run(
    project: Path, two_runs: list[str]
) -> None:
    first, second = two_runs
    forged = "20270101-000000-forged1"
    files: dict[str, bytes | None] = {
        f"experiments/{forged}/{name}": git(
            project, "show", f"gitexp/runs:experiments/{first}/{name}"
        ).encode()
        for name in ("run.yaml", "config.yaml")
    }
    files[f"experiments/{second}/annotations.yaml"] = _annotations(["best"])
    _forge(project, files, f"gitexp: run {forged}")

    _, runs, _ = _verify()

    assert runs[forged][0] == "unsigned"
    assert runs[second][0] == "unsigned annotation"
    assert runs[first] == ("ok", "")


def test_an_unsigned_commit_that_removes_a_trusted_tag(project: Path, two_runs: list[str]) -> None:
    run_id = two_runs[0]
    assert gitexp("tag", run_id, "broken").exit_code == 0
    made = _forge(
        project, {f"experiments/{run_id}/annotations.yaml": None}, f"gitexp: annotate run {run_id}"
    )

    _, runs, _ = _verify(run_id)

    assert runs[run_id] == (
        "unsigned annotation",
        f"annotations.yaml as it is now was made by commit {_short(made)}: "
        "the commit has no signature",
    )


def test_trusted_annotations_stay_trusted_under_later_unrelated_commits(
    project: Path, two_runs: list[str]
) -> None:
    first, second = two_runs
    assert gitexp("tag", first, "best").exit_code == 0
    _forge(project, {f"experiments/{second}/annotations.yaml": _annotations(["x"])}, "retag")
    assert gitexp("run", "--", sys.executable, "train.py").exit_code == 0

    _, runs, _ = _verify(first)

    assert runs == {first: ("ok", "")}


def _clone_signing(source: Path, clone: Path, signing: Path) -> None:
    git(clone.parent, "clone", "-q", str(source), str(clone))
    for key in ("gpg.format", "user.signingkey", "gpg.ssh.allowedSignersFile"):
        git(clone, "config", key, git(source, "config", key).strip())


def test_annotations_merged_by_pull_are_made_by_the_signed_merge(
    project: Path, two_runs: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_id = two_runs[0]
    other = tmp_path / "other"
    _clone_signing(project, other, Path(git(project, "config", "user.signingkey").strip()))
    monkeypatch.chdir(other)
    assert gitexp("pull", str(project)).exit_code == 0
    assert gitexp("note", run_id, "seen from the other machine").exit_code == 0
    monkeypatch.chdir(project)
    assert gitexp("tag", run_id, "best").exit_code == 0
    monkeypatch.chdir(other)

    pulled = gitexp("pull", str(project))

    assert pulled.exit_code == 0, pulled.stderr
    merge = _rev(other, RUNS)
    assert len(git(other, "log", "-1", "--format=%P", merge).split()) == 2
    status, runs, _ = _verify()
    assert status == 0, runs
    assert runs[run_id] == ("ok", "")
    listed = gitexp("log", "--tag", "best", "--verified", "--json")
    assert [r["id"] for r in json.loads(listed.stdout)] == [run_id]
    # The same merge by someone who does not sign: the merged annotations are theirs.
    git(other, "update-ref", RUNS, f"{merge}^1")
    git(other, "config", "--unset", "user.signingkey")
    assert gitexp("pull", str(project)).exit_code == 0
    unsigned = _rev(other, RUNS)
    _, runs, _ = _verify(run_id)
    assert runs[run_id] == (
        "unsigned annotation",
        f"annotations.yaml as it is now was made by commit {_short(unsigned)}: "
        "the commit has no signature",
    )


def test_without_any_signing_annotations_are_unsigned_and_never_verified(project: Path) -> None:
    assert gitexp("run", "--", sys.executable, "train.py").exit_code == 0
    (run_id,) = run_ids(project)
    assert gitexp("tag", run_id, "best").exit_code == 0

    status, runs, _ = _verify()

    assert status == 4
    assert runs[run_id][0] == "unsigned"
    assert "annotations.yaml as it is now was made by commit" in runs[run_id][1]
    assert json.loads(gitexp("log", "--tag", "best", "--verified", "--json").stdout) == []
    assert len(json.loads(gitexp("log", "--tag", "best", "--json").stdout)) == 1


# --- git's object substitution ---------------------------------------------------------------


def test_a_replaced_snapshot_commit(project: Path, two_runs: list[str]) -> None:
    run_id = two_runs[0]
    snapshot = _snapshot(project, run_id)
    evil_tree = _tree_with(project, snapshot, {"train.py": b"import os; os.system('evil')\n"})
    evil = _commit(project, evil_tree, [f"{snapshot}^"], "snapshot")
    git(project, "replace", snapshot, evil)
    assert "evil" in git(project, "show", f"{snapshot}:train.py")  # what git now shows

    status, runs, _ = _verify()

    assert status == 4
    assert runs[run_id] == (
        "substituted object",
        f"the snapshot {_short(snapshot)}: the replace ref refs/replace/{snapshot} makes git "
        f"show {_short(evil)} in its place",
    )
    assert runs[two_runs[1]] == ("ok", "")


def test_a_replaced_blob_inside_a_snapshot(project: Path, two_runs: list[str]) -> None:
    run_id = two_runs[0]
    snapshot = _snapshot(project, run_id)
    blob = _rev(project, f"{snapshot}:train.py")
    evil = git(project, "hash-object", "-w", "--stdin", "--path=x")  # empty content
    git(project, "replace", "-f", blob, evil.strip())

    _, runs, _ = _verify(run_id)

    assert runs[run_id][0] == "substituted object"
    assert runs[run_id][1].startswith(f"snapshot {_short(snapshot)}: train.py (object ")


def test_a_replaced_run_commit(project: Path, two_runs: list[str]) -> None:
    """git would show an unsigned copy of the run's commit; verify reads the signed one and
    says that git is being shown another."""
    run_id = two_runs[1]
    tip = _rev(project, RUNS)
    parents = git(project, "log", "-1", "--format=%P", tip).split()
    copy = _commit(project, _rev(project, f"{tip}^{{tree}}"), parents, "not signed")
    git(project, "replace", tip, copy)

    _, runs, _ = _verify(run_id)

    assert runs[run_id] == (
        "substituted object",
        f"commit {_short(tip)}: the replace ref refs/replace/{tip} makes git show "
        f"{_short(copy)} in its place",
    )


def test_a_graft_cannot_hide_the_unsigned_commit_that_forged_a_run(
    project: Path, two_runs: list[str]
) -> None:
    """A graft that skips over a forged commit would have made its run look created by the
    signed commit after it: libgit2 applies info/grafts, so verify reads parents itself."""
    first, _ = two_runs
    before = _rev(project, RUNS)
    forged = "20260101-000000-forged1"
    files = {
        f"experiments/{forged}/{name}": git(
            project, "show", f"gitexp/runs:experiments/{first}/{name}"
        ).encode()
        for name in ("run.yaml", "config.yaml")
    }
    made = _forge(project, dict(files), f"gitexp: run {forged}")
    assert gitexp("run", "--", sys.executable, "train.py").exit_code == 0  # signed, on top
    newest = run_ids(project)[0]
    after = _rev(project, RUNS)
    snapshot = git(project, "log", "-1", "--format=%P", after).split()[1]
    (project / ".git" / "info" / "grafts").write_text(f"{after} {before} {snapshot}\n")

    status, runs, _ = _verify()

    assert status == 4
    assert runs[forged] == ("unsigned", f"commit {_short(made)}: the commit has no signature")
    assert runs[newest] == (
        "substituted object",
        f"commit {_short(after)}: {project / '.git' / 'info' / 'grafts'} gives it other parents",
    )


# --- a rewritten history ---------------------------------------------------------------------


def test_a_run_dropped_by_a_signed_rewrite_is_named_after_the_reflog_expired(
    project: Path, two_runs: list[str]
) -> None:
    kept, dropped = two_runs
    assert gitexp("log").exit_code == 0  # the user lists the runs: this repository saw both
    was = _rev(project, RUNS)
    git(project, "update-ref", RUNS, f"{RUNS}~1")  # the trusted key's owner drops a run…
    assert gitexp("run", "--", sys.executable, "train.py").exit_code == 0  # …and goes on
    git(project, "reflog", "expire", "--expire=now", "--all")
    git(project, "gc", "-q", "--prune=now")

    status, runs, found = _verify()

    assert status == 4
    verdict, detail = runs[dropped]
    assert verdict == "missing"
    assert detail.startswith("seen in this repository on 20")
    assert detail.endswith(f", gone from the branch (it was in commit {_short(was)})")
    assert runs[kept] == ("ok", "")
    assert found == {"rewritten": [], "branch": []}
    result = gitexp("verify", dropped)
    assert result.exit_code == 4
    assert result.stdout.startswith(f"missing  {dropped}  seen in this repository on ")


def test_runs_seen_only_by_verify_are_named_too(project: Path, two_runs: list[str]) -> None:
    assert _verify()[0] == 0
    git(project, "update-ref", RUNS, f"{RUNS}~1")
    git(project, "reflog", "expire", "--expire=now", "--all")

    _, runs, _ = _verify()

    assert runs[two_runs[1]][0] == "missing"


def test_base_still_compares_with_a_known_good_tip(project: Path, two_runs: list[str]) -> None:
    good = _rev(project, RUNS)
    git(project, "update-ref", RUNS, f"{RUNS}~1")
    git(project, "reflog", "expire", "--expire=now", "--all")
    shutil.rmtree(project / ".git" / "gitexp")  # no index, so no list of runs seen

    status, runs, found = _verify("--base", good)

    assert status == 4
    assert runs[two_runs[1]] == ("missing", f"it was on the branch's former tip {_short(good)}")
    assert found["rewritten"] == [good]


# --- missing and damaged objects -------------------------------------------------------------


def test_a_deleted_snapshot_commit(project: Path, two_runs: list[str]) -> None:
    run_id = two_runs[0]
    snapshot = _snapshot(project, run_id)
    _loose(project, snapshot).unlink()

    status, runs, _ = _verify()

    assert status == 4
    assert runs[run_id] == (
        "damaged object",
        f"the snapshot {_short(snapshot)} is missing from the repository",
    )
    assert runs[two_runs[1]] == ("ok", "")
    result = gitexp("verify", run_id)
    assert result.exit_code == 4
    assert result.stderr == "Error: 1 of 1 run failed verification; see the lines above\n"


def _overwrite(project: Path, oid: str, content: bytes) -> None:
    """Rewrite a loose blob with other content, still well-formed: a tampered file."""
    _loose(project, oid).write_bytes(zlib.compress(b"blob %d\0%s" % (len(content), content)))


def test_an_overwritten_file_of_a_snapshot(project: Path, two_runs: list[str]) -> None:
    run_id = two_runs[0]
    snapshot = _snapshot(project, run_id)
    blob = _rev(project, f"{snapshot}:train.py")
    _overwrite(project, blob, b"import os; os.system('evil')\n")
    assert "evil" in git(project, "show", f"{snapshot}:train.py")  # git itself does not notice

    _, runs, _ = _verify(run_id)

    assert runs[run_id] == (
        "damaged object",
        f"snapshot {_short(snapshot)}: train.py (object {_short(blob)}) is damaged: its bytes "
        "do not match its hash",
    )


@pytest.mark.parametrize("damage", ["deleted", "flipped"])
def test_a_damaged_record_file(project: Path, two_runs: list[str], damage: str) -> None:
    run_id = two_runs[1]
    blob = _rev(project, f"{RUNS}:experiments/{run_id}/config.yaml")
    path = _loose(project, blob)
    if damage == "deleted":
        path.unlink()
        reason = "missing from the repository"
    else:
        data = bytearray(path.read_bytes())
        data[len(data) // 2] ^= 0xFF
        path.write_bytes(bytes(data))
        reason = "damaged ("

    status, runs, _ = _verify()

    assert status == 4
    verdict, detail = runs[run_id]
    assert verdict == "damaged object"
    assert detail.startswith(f"config.yaml (object {_short(blob)}) is {reason}")
    assert runs[two_runs[0]] == ("ok", "")


def test_a_deleted_commit_of_the_branch(project: Path, two_runs: list[str]) -> None:
    first = _rev(project, f"{RUNS}~1")
    _loose(project, first).unlink()

    status, runs, found = _verify()

    assert status == 4
    assert runs[two_runs[0]][0] == "missing"
    assert runs[two_runs[0]][1].startswith("no commit in the branch's history creates it")
    assert found["branch"] == [
        f"commit {_short(first)}, a parent of {_short(_rev(project, RUNS))} on the runs "
        f"branch: object {_short(first)} is missing from the repository"
    ]


def test_a_deleted_tip_is_one_clear_error(project: Path, two_runs: list[str]) -> None:
    tip = _rev(project, RUNS)
    _loose(project, tip).unlink()

    process = subprocess.run(
        [sys.executable, "-m", "gitexp", "verify"], cwd=project, capture_output=True, text=True
    )

    assert process.returncode == 4
    assert process.stderr.startswith(f"Error: the runs branch cannot be read: object {tip}")
    assert "Traceback" not in process.stderr


def test_a_snapshot_that_is_not_the_second_parent(
    project: Path, two_runs: list[str], signing: Path
) -> None:
    """A signed record whose code.yaml names another snapshot than its commit keeps: the one
    named is the one checked, and the mismatch is reported."""
    first, second = two_runs
    tip = _rev(project, RUNS)
    parent = _rev(project, f"{RUNS}^1")
    other = _snapshot(project, first)
    signed = _commit(project, _rev(project, f"{tip}^{{tree}}"), [parent, other], f"gitexp: "
                     f"run {second}", signing)  # fmt: skip
    git(project, "update-ref", RUNS, signed)

    _, runs, _ = _verify(second)

    assert runs[second] == (
        "wrong snapshot",
        f"code.yaml names snapshot {_short(_snapshot(project, second))} but the second parent "
        f"of commit {_short(signed)} is {_short(other)}",
    )


def test_a_run_dropped_before_any_other_command_ran_is_named_too(
    project: Path, two_runs: list[str]
) -> None:
    """No `log`, no `verify` in between: gitexp noted each run as it committed it."""
    dropped = two_runs[1]
    git(project, "update-ref", RUNS, f"{RUNS}~1")
    git(project, "reflog", "expire", "--expire=now", "--all")

    _, runs, _ = _verify()

    assert runs[dropped][0] == "missing"
    assert runs[dropped][1].startswith("seen in this repository on 20")
