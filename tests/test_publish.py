"""`gitexp publish`: copies of signed records on a code branch, and `gitexp verify` of them."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from .conftest import git, gitexp, run_ids


@pytest.fixture
def two_runs(project: Path, signing: Path) -> list[str]:
    for lr in ("0.1", "0.2"):
        result = gitexp("run", "--name", f"lr{lr}", "--", "python", "train.py", "--lr", lr)
        assert result.exit_code == 0, result.output
    return run_ids(project)


def _clean(root: Path) -> bool:
    return git(root, "status", "--porcelain", "--untracked-files=all") == ""


def test_publish_commits_copies_on_the_checked_out_branch(
    project: Path, two_runs: list[str]
) -> None:
    git(project, "switch", "-q", "-c", "feature")
    before = git(project, "rev-parse", "HEAD").strip()
    result = gitexp("publish", *two_runs)
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("published on feature in commit ")
    assert git(project, "rev-parse", "HEAD~1").strip() == before  # one commit on the branch
    assert _clean(project)  # work tree and index as the commit left them
    for run_id in two_runs:
        record = git(project, "ls-tree", "--name-only", f"gitexp/runs:experiments/{run_id}").split()
        copy = git(project, "ls-tree", "--name-only", f"HEAD:experiments/{run_id}").split()
        assert set(copy) == set(record) - {"annotations.yaml"} | {".gitattributes"}
        for name in record:
            if name != "annotations.yaml":
                assert git(project, "rev-parse", f"HEAD:experiments/{run_id}/{name}") == git(
                    project, "rev-parse", f"gitexp/runs:experiments/{run_id}/{name}"
                )
    attrs = git(project, "check-attr", "text", "filter", "linguist-generated", "--",
                f"experiments/{two_runs[0]}/metrics.tsv")  # fmt: skip
    assert "text: unset" in attrs and "filter: unset" in attrs
    assert "linguist-generated: true" in attrs
    again = gitexp("publish", *two_runs)
    assert again.stdout == "feature already holds these records; nothing to commit\n"
    verified = gitexp("verify", "--published")
    assert verified.exit_code == 0, verified.output
    assert verified.stdout.count("published copy matches commit") == 2
    assert "2 published copies verified" in verified.stderr


def test_verify_names_an_edited_published_file_and_publish_restores_it(
    project: Path, two_runs: list[str]
) -> None:
    git(project, "switch", "-q", "-c", "feature")
    assert gitexp("publish", two_runs[0]).exit_code == 0
    summary = project / "experiments" / two_runs[0] / "config.yaml"
    summary.write_text(summary.read_text() + "# better numbers\n")
    (summary.parent / "extra.txt").write_text("not signed\n")
    result = gitexp("verify")  # the runs branch and the copies alike
    assert result.exit_code == 4
    line = next(line for line in result.stdout.splitlines() if "config.yaml" in line)
    assert line.startswith(f"modified after signing  {two_runs[0]}  ")
    assert f"experiments/{two_runs[0]}/config.yaml differs from what commit" in line
    assert f"experiments/{two_runs[0]}/extra.txt is not part of the signed record" in line
    assert "2 runs verified; 1 of 1 published copy failed verification" in result.output
    git(project, "add", "-A")
    git(project, "commit", "-q", "-m", "tune the numbers")
    assert gitexp("verify", "--published").exit_code == 4  # committed, still caught
    restored = gitexp("publish", two_runs[0])
    assert "1 restored (it had been edited)" in restored.stdout
    assert not summary.with_name("extra.txt").exists() and _clean(project)
    assert gitexp("verify", "--published").exit_code == 0


@pytest.mark.slow
def test_verify_reads_a_copy_without_following_links(project: Path, two_runs: list[str]) -> None:
    git(project, "switch", "-q", "-c", "feature")
    assert gitexp("publish", two_runs[0]).exit_code == 0
    folder = project / "experiments" / two_runs[0]
    (folder / "output.log").unlink()
    os.mkfifo(folder / "output.log")  # opening it would block verify for ever
    (folder / "env.yaml").unlink()
    (folder / "env.yaml").symlink_to(project.parent / "elsewhere.yaml")
    (folder / "seeds.yaml").unlink()
    result = gitexp("verify", "--published", "--json")
    assert result.exit_code == 4
    (copy,) = json.loads(result.stdout)["published"]
    assert copy["status"] == "modified after signing"
    assert f"experiments/{two_runs[0]}/output.log is not a regular file" in copy["detail"]
    assert f"experiments/{two_runs[0]}/env.yaml is not a regular file" in copy["detail"]
    assert f"experiments/{two_runs[0]}/seeds.yaml is missing" in copy["detail"]


@pytest.mark.slow
def test_a_copy_of_a_run_the_runs_branch_lacks_fails(project: Path, two_runs: list[str]) -> None:
    forged = "20260101-000000-forged1"
    folder = project / "experiments" / forged
    folder.mkdir(parents=True)
    (folder / "run.yaml").write_text("id: 20260101-000000-forged1\nstatus: succeeded\n")
    result = gitexp("verify", "--published")
    assert result.exit_code == 4
    assert f"missing  {forged}  published in experiments/{forged}/, but no run" in result.stdout
    assert "`git fetch origin gitexp/runs`" in result.stdout


@pytest.mark.slow
def test_publish_to_another_branch_leaves_this_checkout_alone(
    project: Path, two_runs: list[str]
) -> None:
    head = git(project, "rev-parse", "HEAD")
    result = gitexp("publish", "lr0.1", "--to", "results")
    assert result.exit_code == 0, result.output
    assert "(not checked out here: `git switch results` to see the copies)" in result.stdout
    assert git(project, "rev-parse", "HEAD") == head and _clean(project)
    assert not (project / "experiments").exists()
    assert git(project, "rev-parse", "results~1") == head  # started where HEAD was
    listed = git(project, "ls-tree", "--name-only", "results:experiments").split()
    assert listed == [two_runs[1]]  # the run named lr0.1 is the older one
    git(project, "switch", "-q", "results")
    assert gitexp("verify", "--published").exit_code == 0


@pytest.mark.slow
def test_publish_refuses_what_it_must_not_touch(project: Path, two_runs: list[str]) -> None:
    git(project, "remote", "add", "origin", str(project.parent / "nowhere.git"))
    for name, words in (
        ("gitexp/runs", "is the runs branch"),
        ("-x", "not a name for a new or local branch"),
        ("@{-1}", "not a name for a new or local branch"),  # git would expand it
        ("origin/main", "not a name for a new or local branch"),  # reads as remote-tracking
        ("refs/tags/v1", "not a name for a new or local branch"),
    ):
        result = gitexp("publish", two_runs[0], "--to", name)
        assert result.exit_code == 2 and words in result.output, (name, result.output)
    assert git(project, "for-each-ref", "refs/heads/").count("\n") == 2  # main and the runs
    git(project, "worktree", "add", "-q", "-b", "elsewhere", str(project.parent / "wt"))
    result = gitexp("publish", two_runs[0], "--to", "elsewhere")
    assert result.exit_code == 3 and "elsewhere is checked out in" in result.output
    folder = project / "experiments" / two_runs[0]
    folder.mkdir(parents=True)
    (folder / "notes.txt").write_text("mine\n")
    result = gitexp("publish", two_runs[0])
    assert result.exit_code == 3
    assert f"experiments/{two_runs[0]}/notes.txt is changed or untracked" in result.output
    assert (folder / "notes.txt").read_text() == "mine\n"
    git(project, "switch", "-q", "--detach")
    result = gitexp("publish", two_runs[0])
    assert result.exit_code == 2 and "HEAD is detached" in result.output


@pytest.mark.slow
def test_publish_never_writes_through_a_link(
    project: Path, two_runs: list[str], tmp_path: Path
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    git(project, "switch", "-q", "-c", "feature")
    (project / "experiments").mkdir()
    (project / "experiments" / two_runs[0]).symlink_to(outside)  # committed in a folder's place
    git(project, "add", "experiments")
    git(project, "commit", "-q", "-m", "a link where a copy goes")
    result = gitexp("publish", two_runs[0])
    assert result.exit_code == 0, result.output
    assert list(outside.iterdir()) == [] and _clean(project)
    assert (project / "experiments" / two_runs[0] / "run.yaml").is_file()
    assert gitexp("verify", "--published").exit_code == 0

    git(project, "switch", "-q", "-c", "other", "main")
    (project / "experiments").symlink_to(outside)  # not committed: a link in the work tree
    result = gitexp("publish", two_runs[1])
    assert result.exit_code == 3 and "experiments in the work tree is not a folder" in result.output
    assert list(outside.iterdir()) == []


@pytest.mark.slow
def test_a_copy_is_kept_byte_for_byte_whatever_the_project_attributes(
    project: Path, signing: Path
) -> None:
    assert gitexp("run", "--notes", "keyword $Id$", "--", "python", "train.py").exit_code == 0
    (run_id,) = run_ids(project)
    (project / ".gitattributes").write_text("* ident text eol=crlf\n")
    git(project, "add", ".gitattributes")
    git(project, "commit", "-q", "-m", "attributes that would rewrite a checkout")
    git(project, "switch", "-q", "-c", "feature")
    assert gitexp("publish", run_id).exit_code == 0
    run_yaml = project / "experiments" / run_id / "run.yaml"
    assert b"keyword $Id$" in run_yaml.read_bytes()
    run_yaml.write_text(run_yaml.read_text())  # touched
    git(project, "rm", "-rq", "--cached", "experiments")
    git(project, "reset", "-q", "--hard")  # a fresh checkout of the copies
    assert b"\r\n" not in run_yaml.read_bytes() and b"keyword $Id$" in run_yaml.read_bytes()
    assert gitexp("verify", "--published").exit_code == 0


@pytest.mark.slow
def test_verify_and_report_of_a_branch_that_publishes_nothing(
    project: Path, tmp_path: Path
) -> None:
    result = gitexp("verify", "--published")
    assert result.exit_code == 0
    assert (
        "no run is published in this work tree's experiments/: nothing to verify" in result.stderr
    )
    out = tmp_path / "report.md"
    result = gitexp("report", "--published", "-o", str(out))
    assert result.exit_code == 0 and not out.exists()
    assert result.stdout == ""


@pytest.mark.slow
def test_a_copy_leaves_out_the_dvc_pointers_of_artifacts(project: Path, signing: Path) -> None:
    assert gitexp("init").exit_code == 0
    git(project, "add", "-A")
    git(project, "commit", "-q", "-m", "dvc")
    made = gitexp("run", "--output", "model.bin", "--", "sh", "-c", "echo weights > model.bin")
    assert made.exit_code == 0, made.output
    (run_id,) = run_ids(project)
    record = git(project, "ls-tree", "--name-only", f"gitexp/runs:experiments/{run_id}").split()
    assert any(name.endswith(".dvc") for name in record)  # the artifact's pointer
    git(project, "switch", "-q", "-c", "feature")
    assert gitexp("publish", run_id).exit_code == 0
    copy = sorted(p.name for p in (project / "experiments" / run_id).iterdir())
    assert copy == sorted({*record, ".gitattributes"} - {"annotations.yaml", "model.bin.dvc"})
    assert "artifacts.yaml" in copy  # which pins the same object
    assert gitexp("verify", "--published").exit_code == 0


@pytest.mark.slow
def test_verify_shows_a_name_that_is_not_utf8_without_sending_it_raw(
    project: Path, two_runs: list[str]
) -> None:
    git(project, "switch", "-q", "-c", "feature")
    assert gitexp("publish", two_runs[0]).exit_code == 0
    folder = os.fsencode(project / "experiments" / two_runs[0])
    with open(folder + b"/c1\x9b2J.txt", "wb") as extra:  # 0x9b: an 8-bit CSI on a terminal
        extra.write(b"x")
    shown = gitexp("verify", "--published")
    assert shown.exit_code == 4
    assert f"experiments/{two_runs[0]}/c1\\x9b2J.txt is not part of" in shown.stdout
    assert "\x9b" not in shown.stdout and "\udc9b" not in shown.stdout
    listed = gitexp("verify", "--published", "--json").stdout
    assert "\\ud" not in listed  # no lone surrogate: strict JSON parsers take it
    (copy,) = json.loads(listed)["published"]
    assert "c1\\x9b2J.txt" in copy["detail"]


@pytest.mark.slow
def test_publishing_a_record_that_does_not_verify_warns(project: Path) -> None:
    assert gitexp("run", "--", "python", "train.py").exit_code == 0  # no signing key: unsigned
    (run_id,) = run_ids(project)
    result = gitexp("publish", run_id, "--to", "results")
    assert result.exit_code == 0
    assert f"warning: run {run_id} does not verify (unsigned)" in result.stderr
