"""`gitexp run` through the CLI, in real repositories."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pygit2
import pytest

from gitexp import yamlio

from .conftest import git, gitexp, run_ids


def _record(root: Path, run_id: str, name: str) -> object:
    return yamlio.load(git(root, "show", f"gitexp/runs:experiments/{run_id}/{name}"), name)


def test_run_records_one_commit_and_exits_with_the_commands_status(project: Path) -> None:
    result = gitexp(
        "run",
        "--name",
        "base",
        "--tag",
        "a",
        "--tag",
        "b",
        "--notes",
        "why",
        "--",
        sys.executable,
        "train.py",
        "--lr",
        "0.1",
    )
    assert result.exit_code == 0
    assert "training --lr 0.1\n" in result.stdout
    assert "a warning\n" in result.stderr
    (run_id,) = run_ids(project)
    assert result.stderr.endswith(f"gitexp: run {run_id} succeeded, recorded on gitexp/runs\n")

    run = _record(project, run_id, "run.yaml")
    assert isinstance(run, dict)
    assert (run["status"], run["exit_code"], run["name"], run["tags"], run["notes"]) == (
        "succeeded",
        0,
        "base",
        ["a", "b"],
        "why",
    )
    assert run["command"] == [sys.executable, "train.py", "--lr", "0.1"]
    assert run["cwd"] == "."
    config = _record(project, run_id, "config.yaml")
    assert config == {"argv": {"_": ["train.py"], "lr": 0.1}}  # no parser seen: read from argv
    output = git(project, "show", f"gitexp/runs:experiments/{run_id}/output.log")
    assert "training --lr 0.1\n" in output and "a warning\n" in output


def test_failed_run_is_recorded_and_its_status_returned(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EXIT", "3")
    result = gitexp("run", "--", sys.executable, "train.py")
    assert result.exit_code == 3
    run = _record(project, run_ids(project)[0], "run.yaml")
    assert isinstance(run, dict)
    assert (run["status"], run["exit_code"]) == ("failed", 3)


def test_three_runs_make_three_first_parent_commits(project: Path) -> None:
    gitexp("run", "--", sys.executable, "train.py")
    (project / "train.py").write_text("print('dirty')\n")
    gitexp("run", "--", sys.executable, "train.py")
    gitexp("run", "--", sys.executable, "-c", "raise SystemExit(1)")
    log = git(project, "log", "--first-parent", "--format=%s", "gitexp/runs").splitlines()
    assert len(log) == 4
    assert log[-1] == "gitexp: start the runs branch"
    assert [line.rsplit(" ", 1)[-1] for line in log[:3]] == ["failed", "succeeded", "succeeded"]
    git(project, "fsck", "--strict")


def test_snapshot_is_the_second_parent(project: Path) -> None:
    (project / "train.py").write_text("print('dirty')\n")
    gitexp("run", "--", sys.executable, "train.py")
    repo = pygit2.Repository(str(project))
    tip = repo.references["refs/heads/gitexp/runs"].peel(pygit2.Commit)
    code = _record(project, run_ids(project)[0], "code.yaml")
    assert isinstance(code, dict)
    assert [str(p) for p in tip.parent_ids][1] == code["snapshot"]
    assert code["dirty"] is True
    assert "refs/gitexp/pending" not in " ".join(repo.references)


def test_config_file_params_and_seed(project: Path) -> None:
    (project / "conf").mkdir()
    (project / "conf" / "base.yaml").write_text("optim:\n  lr: 0.1\n  name: adam\n")
    result = gitexp(
        "run",
        "--config",
        "conf/base.yaml",
        "-p",
        "optim.lr=3e-4",
        "--seed",
        "7",
        "--",
        sys.executable,
        "-c",
        "import os; print(os.environ['PYTHONHASHSEED'], os.environ['GITEXP_SEED'])",
    )
    assert result.exit_code == 0
    assert "7 7\n" in result.stdout
    run_id = run_ids(project)[0]
    config = _record(project, run_id, "config.yaml")
    assert isinstance(config, dict)
    assert config["optim"] == {"lr": 0.0003, "name": "adam"}
    code = _record(project, run_id, "code.yaml")
    assert isinstance(code, dict)
    assert code["config_files"] == ["conf/base.yaml"]
    seeds = _record(project, run_id, "seeds.yaml")
    assert seeds == {
        "seed": 7,
        "variables": {"GITEXP_SEED": "7", "PYTHONHASHSEED": "7"},
        "rngs": {},
        "deterministic": {},
    }


def test_config_file_named_in_the_command_is_config(project: Path) -> None:
    (project / "exp.yaml").write_text("batch: 32\n")
    gitexp("run", "--", sys.executable, "train.py", "--config", "exp.yaml")
    run_id = run_ids(project)[0]
    config = _record(project, run_id, "config.yaml")
    assert isinstance(config, dict)
    assert config["batch"] == 32
    assert config["argv"]["config"] == "exp.yaml"
    code = _record(project, run_id, "code.yaml")
    assert isinstance(code, dict)
    assert code["config_files"] == ["exp.yaml"]


def test_unseeded_run_says_so(project: Path) -> None:
    gitexp("run", "--", sys.executable, "train.py")
    seeds = _record(project, run_ids(project)[0], "seeds.yaml")
    assert isinstance(seeds, dict)
    assert seeds["seed"] is None
    assert seeds["note"].startswith("unseeded")


def test_secrets_never_reach_the_record(project: Path) -> None:
    gitexp("run", "--", sys.executable, "train.py", "--token=hunter2", "--api-key", "k3y")
    (run_id,) = run_ids(project)
    shown = git(
        project,
        "show",
        "gitexp/runs",
        "--",
        f"experiments/{run_id}/run.yaml",
        f"experiments/{run_id}/config.yaml",
    )
    assert "hunter2" not in shown and "k3y" not in shown
    assert "<redacted>" in shown


def test_environment_is_that_of_the_commands_interpreter(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1")
    monkeypatch.setenv("SECRET_TOKEN", "do-not-record")
    gitexp("run", "--", sys.executable, "train.py")
    env = _record(project, run_ids(project)[0], "env.yaml")
    assert isinstance(env, dict)
    assert env["captured_by"] == "inside the training process"
    assert env["python"]["version"] == ".".join(map(str, sys.version_info[:3]))
    assert any(p.lower().startswith("pygit2==") for p in env["packages"])
    assert env["variables"] == {"CUDA_VISIBLE_DEVICES": "0,1"}
    torch = pytest.importorskip("torch")
    assert env["torch"]["version"] == torch.__version__


def test_non_python_command_says_whose_environment_it_recorded(project: Path) -> None:
    gitexp("run", "--", "sh", "-c", "echo hi")
    env = _record(project, run_ids(project)[0], "env.yaml")
    assert isinstance(env, dict)
    assert env["captured_by"] == "gitexp's own interpreter: the command is not a Python program"


def test_require_clean_refuses_a_dirty_tree_with_status_3(project: Path) -> None:
    (project / "train.py").write_text("print('dirty')\n")
    result = gitexp("run", "--require-clean", "--", sys.executable, "train.py")
    assert result.exit_code == 3
    assert result.stderr == (
        "Error: the working tree has uncommitted changes and this run requires a clean tree; "
        "commit or stash them, or drop --require-clean\n"
    )
    assert "training" not in result.stdout
    assert git(project, "branch", "--list", "gitexp/runs") == ""


def test_require_clean_from_repository_settings(project: Path) -> None:
    (project / ".gitexp.yaml").write_text("require_clean: true\n")
    git(project, "add", ".gitexp.yaml")
    git(project, "commit", "-q", "-m", "settings")
    assert gitexp("run", "--", sys.executable, "train.py").exit_code == 0
    (project / "new.py").write_text("x = 1\n")
    assert gitexp("run", "--", sys.executable, "train.py").exit_code == 3


def test_malformed_settings_are_one_clear_error(project: Path) -> None:
    (project / ".gitexp.yaml").write_text("require_clean: [\n")
    result = gitexp("run", "--", sys.executable, "train.py")
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: .gitexp.yaml is not valid YAML")


def test_outside_a_repository(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = gitexp("run", "--", "true")
    assert result.exit_code == 1
    assert result.stderr == (
        f"Error: {tmp_path} is not inside a git repository; run gitexp from your project, "
        "or `git init` one first\n"
    )


def test_repository_without_commits(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    git(tmp_path, "init", "-q")
    monkeypatch.chdir(tmp_path)
    result = gitexp("run", "--", "true")
    assert result.exit_code == 1
    assert "no commits yet" in result.stderr
    assert not (tmp_path / ".git" / "gitexp" / "pending").exists() or not any(
        (tmp_path / ".git" / "gitexp" / "pending").iterdir()
    )


def test_command_that_cannot_start(project: Path) -> None:
    result = gitexp("run", "--", "no-such-program-xyz")
    assert result.exit_code == 127
    assert result.stderr.startswith("Error: cannot start 'no-such-program-xyz'")
    assert git(project, "branch", "--list", "gitexp/runs") == ""


def test_runs_from_a_subdirectory_record_cwd(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (project / "src").mkdir()
    (project / "src" / "job.py").write_text("import os; print(os.getcwd())\n")
    monkeypatch.chdir(project / "src")
    result = gitexp("run", "--", sys.executable, "job.py")
    assert result.exit_code == 0
    assert f"{project / 'src'}\n" in result.stdout
    run = _record(project, run_ids(project)[0], "run.yaml")
    assert isinstance(run, dict)
    assert run["cwd"] == "src"


def test_linked_worktree_shares_the_runs_branch(
    project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    git(project, "worktree", "add", "-q", str(tmp_path / "wt"), "-b", "feature")
    monkeypatch.chdir(tmp_path / "wt")
    assert gitexp("run", "--", sys.executable, "train.py").exit_code == 0
    code = _record(project, run_ids(project)[0], "code.yaml")
    assert isinstance(code, dict)
    assert code["branch"] == "feature"


def test_refuses_to_move_a_checked_out_runs_branch(project: Path, tmp_path: Path) -> None:
    gitexp("run", "--", sys.executable, "train.py")
    git(project, "worktree", "add", "-q", str(tmp_path / "runs"), "gitexp/runs")
    result = gitexp("run", "--", sys.executable, "train.py")
    assert result.exit_code == 1
    assert result.stderr == (
        f"Error: the runs branch gitexp/runs is checked out in {tmp_path / 'runs'}; gitexp will "
        "not move a checked-out branch: switch that worktree to another branch\n"
    )
    assert "training" not in result.stdout  # refused before the command started


def test_branch_checked_out_during_a_run_keeps_the_run(project: Path, tmp_path: Path) -> None:
    gitexp("run", "--", sys.executable, "train.py")
    where = tmp_path / "runs"
    result = gitexp("run", "--", "git", "worktree", "add", "-q", str(where), "gitexp/runs")
    assert result.exit_code == 0  # the command's own status, though its record is pending
    assert "is checked out in" in result.stderr
    assert "is kept, and `gitexp recover` will record it" in result.stderr
    git(project, "worktree", "remove", str(where))
    recovered = gitexp("recover").stdout
    assert recovered.startswith("recovered run ")
    assert len(run_ids(project)) == 2
    run = _record(project, run_ids(project)[0], "run.yaml")
    assert isinstance(run, dict)
    assert run["status"] == "succeeded"  # the outcome it had, not "crashed"


def test_shallow_clone(project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (project / "more.py").write_text("y = 2\n")
    git(project, "add", "-A")
    git(project, "commit", "-q", "-m", "second")
    clone = tmp_path / "shallow"
    git(tmp_path, "clone", "-q", "--depth", "1", f"file://{project}", str(clone))
    monkeypatch.chdir(clone)
    assert gitexp("run", "--", sys.executable, "train.py").exit_code == 0
    code = _record(clone, run_ids(clone)[0], "code.yaml")
    assert isinstance(code, dict)
    assert code["shallow"] is True
    git(clone, "fsck")


def test_binary_and_non_utf8_changes_are_recorded(project: Path) -> None:
    (project / "latin1.txt").write_bytes("naïve\n".encode("latin-1"))
    (project / "w.bin").write_bytes(bytes(range(256)))
    gitexp("run", "--", sys.executable, "train.py")
    run_id = run_ids(project)[0]
    diff = git(project, "show", f"gitexp/runs:experiments/{run_id}/code.diff")
    assert "GIT binary patch" in diff
    assert "latin1.txt" in diff


def test_output_is_kept_bounded(project: Path) -> None:
    (project / ".gitexp.yaml").write_text("output:\n  limit: 4000\n")
    program = "import sys\nfor i in range(2000): print(f'line {i:05d}')\n"
    gitexp("run", "--", sys.executable, "-c", program)
    log = git(project, "show", f"gitexp/runs:experiments/{run_ids(project)[0]}/output.log")
    assert log.startswith("line 00000\n")
    assert log.endswith("line 01999\n")
    assert "bytes of output left out here; output.limit is 4000]" in log
    assert len(log) < 4200


def test_json_of_log_and_show_after_run(project: Path) -> None:
    gitexp("run", "--name", "base", "--", sys.executable, "train.py", "--lr", "0.1")
    listed = json.loads(gitexp("log", "--json").stdout)
    assert listed[0]["name"] == "base"
    assert listed[0]["config"]["argv.lr"] == 0.1
    shown = json.loads(gitexp("show", "base", "--json").stdout)
    assert {"run", "config", "code", "env", "seeds", "output"} <= set(shown)


def test_a_line_that_never_ends_is_still_recorded_and_bounded(project: Path) -> None:
    (project / ".gitexp.yaml").write_text("output:\n  limit: 100000\n")
    program = (
        "import sys\n"
        "for i in range(20000):\n"
        "    sys.stderr.write(f'\\rprogress {i:05d}')\n"
        "sys.stderr.write('\\rdone')\n"
    )
    assert gitexp("run", "--", sys.executable, "-c", program).exit_code == 0
    where = f"gitexp/runs:experiments/{run_ids(project)[0]}/output.log"
    log = subprocess.run(["git", "show", where], capture_output=True, check=True).stdout
    assert log.startswith(b"\rprogress 00000")
    assert log.endswith(b"\rprogress 19999\rdone")
    assert len(log) < 101000


def test_recover_leaves_a_run_being_started_alone(project: Path) -> None:
    """A run's folder gets its lock an instant after it is made: recover must not take that
    instant for death (it once deleted the folders of runs starting beside it)."""
    assert gitexp("run", "--", sys.executable, "train.py").exit_code == 0
    starting = project / ".git" / "gitexp" / "pending" / ".20260101-000000-start00"
    starting.mkdir()
    (starting / "lock").touch()  # made, not locked yet

    assert gitexp("recover").exit_code == 0
    assert starting.is_dir()

    long_ago = time.time() - 3600  # its starter died before naming it, an hour ago
    for path in (starting / "lock", starting):
        os.utime(path, (long_ago, long_ago))
    assert gitexp("recover").exit_code == 0
    assert not starting.exists()
