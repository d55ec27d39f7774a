"""Records from strangers: each case built with pygit2 the way an attacker would, then read
by every command. A poisoned record is named as unreadable; it never writes outside the
repository, never uses unbounded memory, never drives the terminal, never hides the others."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

import pygit2
import pytest
from pygit2.enums import FileMode

from ..conftest import git, gitexp

FORGED = "20260101-000000-evil000"
RUN_YAML = (
    f"schema: 1\nid: {FORGED}\nname: forged\nstatus: succeeded\nstarted: '2026-01-01T00:00:00Z'\n"
    "command: [python, train.py]\ncwd: .\nhost: h\nuser: u\ngitexp_version: 0.1.0\n"
)


def _plant(
    root: Path,
    name: str,
    files: Mapping[str, bytes | str],
    mode: int = FileMode.TREE,
    links: Mapping[str, str] | None = None,
) -> None:
    """Put a folder under experiments/ on the runs branch, unsigned, as a pull would bring it;
    `links`, symbolic links inside it (name → target)."""
    repo = pygit2.Repository(str(root))
    tip = repo.references["refs/heads/gitexp/runs"].peel(pygit2.Commit)
    folder = repo.TreeBuilder()
    for file, data in files.items():
        raw = data.encode() if isinstance(data, str) else data
        folder.insert(file, repo.create_blob(raw), FileMode.BLOB)
    for file, target in (links or {}).items():
        folder.insert(file, repo.create_blob(target.encode()), FileMode.LINK)
    listing = repo.TreeBuilder(tip.tree["experiments"].peel(pygit2.Tree))
    if mode == FileMode.LINK:
        listing.insert(name, repo.create_blob(b"../../.."), FileMode.LINK)
    else:
        listing.insert(name, folder.write(), FileMode.TREE)
    top = repo.TreeBuilder(tip.tree)
    top.insert("experiments", listing.write(), FileMode.TREE)
    who = pygit2.Signature("Mallory", "m@example.com")
    commit = repo.create_commit(None, who, who, f"gitexp: run {name}", top.write(), [tip.id])
    git(root, "update-ref", "refs/heads/gitexp/runs", str(commit))


@pytest.fixture
def honest(project: Path) -> str:
    """The project with one honest run; returns its id."""
    assert gitexp("run", "--name", "honest", "--", sys.executable, "train.py").exit_code == 0
    return git(project, "ls-tree", "--name-only", "gitexp/runs:experiments").split()[0]


def _bomb(levels: int) -> str:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    for i in range(1, levels):
        lines.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]")
    return "\n".join(lines) + "\n"


POISONS = {
    "alias bomb in config.yaml": {"run.yaml": RUN_YAML, "config.yaml": _bomb(9)},
    "20,000-deep config.yaml": {"run.yaml": RUN_YAML, "config.yaml": "a: " + "[" * 20000},
    "tags: 5": {"run.yaml": RUN_YAML + "tags: 5\n"},
    "status not a status": {"run.yaml": RUN_YAML.replace("succeeded", "pwned")},
    "run.yaml a list": {"run.yaml": "- 1\n- 2\n"},
    "newer schema": {"run.yaml": RUN_YAML.replace("schema: 1", "schema: 99")},
    "an anchor in run.yaml": {"run.yaml": RUN_YAML + "tags: &t [a]\ninputs: *t\n"},
    "a dataset outside the repository": {
        "run.yaml": RUN_YAML,
        "data.yaml": "datasets:\n- path: ../../outside.txt\n  md5: " + "0" * 32 + "\n",
    },
}


@pytest.mark.parametrize("case", sorted(POISONS))
def test_a_poisoned_record_never_stops_the_others(project: Path, honest: str, case: str) -> None:
    _plant(project, FORGED, POISONS[case])

    listed = gitexp("log")
    assert listed.exit_code == 0
    assert honest in listed.stdout and FORGED in listed.stdout and "invalid" in listed.stdout
    assert listed.stderr.startswith(f"warning: run {FORGED} cannot be read: experiments/{FORGED}")
    assert gitexp("log", "--json").exit_code == 0
    assert gitexp("show", honest).exit_code == 0
    shown = gitexp("show", FORGED)
    assert shown.exit_code == 4
    assert (
        shown.stderr.startswith(f"Error: experiments/{FORGED}/") and shown.stderr.count("\n") == 1
    )
    assert gitexp("diff", honest, "@").exit_code in (0, 3)  # the honest ones still compare


def test_a_record_holding_a_link_is_listed_invalid_and_never_followed(
    project: Path, honest: str
) -> None:
    _plant(project, FORGED, {"run.yaml": RUN_YAML}, links={"output.log": "/etc/passwd"})
    listed = gitexp("log")
    assert listed.exit_code == 0 and honest in listed.stdout
    assert (
        f"warning: run {FORGED} cannot be read: experiments/{FORGED}/output.log is not a "
        "plain file" in listed.stderr
    )
    assert "invalid" in listed.stdout
    shown = gitexp("show", FORGED)
    assert shown.exit_code == 4 and "root:" not in shown.output


def test_a_poisoned_record_is_refused_by_diff(project: Path, honest: str) -> None:
    _plant(project, FORGED, POISONS["alias bomb in config.yaml"])
    result = gitexp("diff", honest, FORGED)
    assert result.exit_code == 4
    assert result.stderr == (
        f"Error: experiments/{FORGED}/config.yaml holds a YAML anchor or alias, which no record "
        "has\n"
    )


@pytest.mark.parametrize(
    "path", ["../outside.txt", "/tmp/gitexp-owned.txt", "data/../../outside.txt", ".git/hooks/x"]
)
def test_checkout_refuses_a_path_outside_the_repository(
    project: Path, honest: str, path: str
) -> None:
    artifacts = (
        "artifacts:\n"
        f"- path: {json.dumps(path)}\n  md5: 0123456789abcdef0123456789abcdef\n  size: 1\n"
    )
    _plant(project, FORGED, {"run.yaml": RUN_YAML, "artifacts.yaml": artifacts})

    result = gitexp("checkout", FORGED, "--artifacts")

    assert result.exit_code == 4
    assert result.stderr == (
        f"Error: experiments/{FORGED}/artifacts.yaml: the path {path!r} leads outside the "
        "repository's working tree\n"
    )
    assert not (project.parent / "outside.txt").exists()
    assert not Path("/tmp/gitexp-owned.txt").exists()


def test_checkout_refuses_a_path_a_symlink_leads_outside(
    project: Path, honest: str, tmp_path: Path
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (project / "out").symlink_to(elsewhere)
    artifacts = "artifacts:\n- path: out/model.pt\n  md5: 0123456789abcdef0123456789abcdef\n"
    _plant(project, FORGED, {"run.yaml": RUN_YAML, "artifacts.yaml": artifacts})

    result = gitexp("checkout", FORGED, "--artifacts")

    assert result.exit_code == 4
    assert "which a symbolic link leads outside the working tree; nothing was restored" in (
        result.stderr
    )
    assert list(elsewhere.iterdir()) == []


def test_a_symlink_or_stray_name_under_experiments_is_not_a_run(project: Path, honest: str) -> None:
    _plant(project, "20260101-000000-link000", {}, mode=FileMode.LINK)
    _plant(project, "not-a-run", {"run.yaml": RUN_YAML})

    listed = gitexp("log")

    assert listed.exit_code == 0
    assert honest in listed.stdout
    assert (
        "warning: run not-a-run cannot be read: 'not-a-run' under experiments/ is not a run id"
        in (listed.stderr)
    )


def test_pull_leaves_a_symlinked_run_folder_behind(
    project: Path, honest: str, tmp_path: Path
) -> None:
    attacker = tmp_path / "attacker"
    git(tmp_path, "clone", "-q", str(project), str(attacker))
    git(attacker, "fetch", "-q", "origin", "gitexp/runs:gitexp/runs")
    _plant(attacker, "20260101-000000-link000", {}, mode=FileMode.LINK)
    _plant(attacker, FORGED, {"run.yaml": RUN_YAML})

    pulled = gitexp("pull", str(attacker))

    assert pulled.exit_code == 0, pulled.stderr
    names = git(project, "ls-tree", "gitexp/runs:experiments").splitlines()
    assert any(FORGED in line for line in names)
    assert not any("link000" in line for line in names)
    git(project, "fsck", "--strict")


ESCAPES = "\x1b[2J\x1b]0;owned\x07\rfake line\n\u202egnp.exe"


def test_names_and_notes_cannot_drive_the_terminal(project: Path, honest: str) -> None:
    hostile = RUN_YAML.replace("name: forged", f"name: {json.dumps(ESCAPES)}") + (
        f"notes: {json.dumps(ESCAPES)}\ntags: [{json.dumps(ESCAPES)}]\n"
    )
    later = f"notes:\n- text: {json.dumps(ESCAPES)}\n  author: m\n  date: d\n"
    summary = f"{json.dumps(ESCAPES)}: {{last: 1.0, last_step: 0, count: 1}}\n"
    _plant(project, FORGED, {"run.yaml": hostile, "annotations.yaml": later,
                             "summary.yaml": summary, "output.log": ESCAPES})  # fmt: skip

    for args in (["log"], ["show", FORGED], ["verify", FORGED]):
        result = gitexp(*args)
        for control in ("\x1b", "\x07", "\r", "\u202e"):
            assert control not in result.output, (args, result.output)
    shown = gitexp("show", FORGED).stdout
    assert "\\x1b[2J" in shown  # shown, not obeyed
    as_json = json.loads(gitexp("show", FORGED, "--json").stdout)
    assert as_json["run"]["name"] == ESCAPES  # JSON keeps the value, escaped as JSON does


@pytest.mark.slow
def test_a_huge_metrics_file_is_streamed_in_flat_memory(project: Path, honest: str) -> None:
    row = b"1000000\t12.345\ttrain/loss\t0.123456789\n"
    rows = 12_000_000 // len(row)
    metrics = b"step\ttime\tname\tvalue\n" + row * rows
    summary = "train/loss: {last: 0.1, last_step: 1, min: 0.1, min_step: 1, max: 0.1, "
    summary += f"max_step: 1, count: {rows}}}\n"
    _plant(project, FORGED, {"run.yaml": RUN_YAML, "summary.yaml": summary,
                             "metrics.tsv": metrics})  # fmt: skip
    del metrics

    for args in (["show", FORGED], ["show", FORGED, "--json"]):
        out, peak_mib = _peak_memory(args, project)
        if "--json" in args:
            assert len(json.loads(out)["metrics"]) == rows
        # gitexp alone peaks near 45 MiB; the file (12 MB) held as rows would add hundreds.
        assert peak_mib < 100, (args, peak_mib)


# Runs gitexp as its only child and reports that child's peak memory, in KiB, on stderr.
_MEASURE = """\
import resource, subprocess, sys
done = subprocess.run([sys.executable, "-m", "gitexp", *sys.argv[1:]], stdout=sys.stdout)
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr)
sys.exit(done.returncode)
"""


def _peak_memory(args: list[str], cwd: Path) -> tuple[str, float]:
    done = subprocess.run(
        [sys.executable, "-c", _MEASURE, *args], cwd=cwd, capture_output=True, text=True,
        timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout, int(done.stderr.split()[-1]) / 1024


def test_a_record_of_countless_files_is_refused_unread(project: Path, honest: str) -> None:
    _plant(
        project, FORGED, {"run.yaml": RUN_YAML, **{f"f{i}.yaml": "x: 1\n" for i in range(10_001)}}
    )

    shown = gitexp("show", FORGED)

    assert shown.exit_code == 4
    assert shown.stderr == (
        f"Error: experiments/{FORGED} holds 10,002 files, more than a record has\n"
    )
    assert gitexp("show", honest).exit_code == 0


def test_verify_counts_only_folders_named_by_run_ids(project: Path, honest: str) -> None:
    """A stray folder some commit once added (as a merged foreign branch may have) is no run
    that went missing."""
    _plant(project, "not-a-run", {"run.yaml": RUN_YAML})
    repo = pygit2.Repository(str(project))
    tip = repo.references["refs/heads/gitexp/runs"].peel(pygit2.Commit)
    listing = repo.TreeBuilder(tip.tree["experiments"].peel(pygit2.Tree))
    listing.remove("not-a-run")
    top = repo.TreeBuilder(tip.tree)
    top.insert("experiments", listing.write(), FileMode.TREE)
    who = pygit2.Signature("Mallory", "m@example.com")
    commit = repo.create_commit(None, who, who, "tidy", top.write(), [tip.id])
    git(project, "update-ref", "refs/heads/gitexp/runs", str(commit))
    result = gitexp("verify", "--all", "--json")
    checked = [check["id"] for check in json.loads(result.stdout)["runs"]]
    assert checked == [honest]


def test_a_pulled_branch_never_edits_a_record_we_hold(
    project: Path, honest: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A branch grown from ours that changes one of our records (a fast-forward, or not) adds
    its new runs, keeps our record as it is, and says so."""
    attacker = tmp_path / "attacker"
    git(tmp_path, "clone", "-q", str(project), str(attacker))
    git(attacker, "branch", "-f", "gitexp/runs", "origin/gitexp/runs")
    repo = pygit2.Repository(str(attacker))
    tip = repo.references["refs/heads/gitexp/runs"].peel(pygit2.Commit)
    listing = repo.TreeBuilder(tip.tree["experiments"].peel(pygit2.Tree))
    folder = repo.TreeBuilder(tip.tree["experiments"][honest].peel(pygit2.Tree))
    folder.insert("config.yaml", repo.create_blob(b"lr: 0.9\n"), FileMode.BLOB)
    listing.insert(honest, folder.write(), FileMode.TREE)
    top = repo.TreeBuilder(tip.tree)
    top.insert("experiments", listing.write(), FileMode.TREE)
    who = pygit2.Signature("Mallory", "m@example.com")
    edit = repo.create_commit(None, who, who, "tweak", top.write(), [tip.id])
    git(attacker, "update-ref", "refs/heads/gitexp/runs", str(edit))
    _plant(attacker, FORGED, {"run.yaml": RUN_YAML})  # and one run of its own

    before = git(project, "show", f"gitexp/runs:experiments/{honest}/config.yaml")
    pulled = gitexp("pull", str(attacker))
    assert pulled.exit_code == 0, pulled.output
    assert pulled.stdout.startswith(f"pulled 1 new runs from {attacker}")
    assert f"warning: run {honest} differs in {attacker} beyond its tags and notes" in (
        pulled.stderr
    )
    assert git(project, "show", f"gitexp/runs:experiments/{honest}/config.yaml") == before
    assert FORGED in git(project, "ls-tree", "--name-only", "gitexp/runs:experiments")


def test_a_neighbour_whose_code_is_missing_breaks_no_one_elses_diff(project: Path) -> None:
    """A pulled record naming a snapshot this repository lacks is no single-axis neighbour:
    `diff` (and the view's comparisons) of two honest runs still answers."""
    for lr, epochs in (("0.1", "1"), ("0.2", "2")):
        done = gitexp("run", "--", sys.executable, "train.py", "--lr", lr, "--epochs", epochs)
        assert done.exit_code == 0
    a, b = sorted(git(project, "ls-tree", "--name-only", "gitexp/runs:experiments").split())
    files = {name: git(project, "show", f"gitexp/runs:experiments/{a}/{name}")
             for name in ("run.yaml", "config.yaml", "env.yaml", "seeds.yaml")}  # fmt: skip
    files["run.yaml"] = files["run.yaml"].replace(a, FORGED)
    files["config.yaml"] = files["config.yaml"].replace("0.1", "0.2")
    files["code.yaml"] = f"commit: {'1' * 40}\nsnapshot: {'1' * 40}\ndirty: false\n"
    _plant(project, FORGED, files)
    result = gitexp("diff", a, b)
    assert result.exit_code == 3, result.output
    assert "not in this repository" not in result.output
    assert "2 axes differ" in result.output
