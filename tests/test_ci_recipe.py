"""The README's CI recipes, run step by step against a scratch origin with a base and a head
branch, as GitHub Actions would run them: the commands are read from the README itself, so
the recipe a user copies is the one tested. Only `gh` (GitHub's API) is a stand-in that
keeps the comment it was asked to post."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from .conftest import git, gitexp, run_ids

pytestmark = pytest.mark.slow  # five real runs and three clones

README = Path(__file__).resolve().parents[1] / "README.md"
PR_NUMBER = "7"
GH = """\
#!/bin/sh
# The stand-in for GitHub's CLI: keeps what it was asked to post.
printf '%s\\n' "$@" > "$GH_LOG/args"
while [ $# -gt 0 ]; do
  if [ "$1" = --body-file ]; then cp "$2" "$GH_LOG/body.md"; fi
  shift
done
"""


def workflow(name: str) -> list[str]:
    """The shell of each `run:` step of the README's workflow `name`, but installing."""
    blocks = re.findall(r"```yaml\n(# \.github/workflows/(\S+)\n.*?)```", README.read_text(), re.S)
    text = next(block for block, file in blocks if file == name)
    steps = YAML(typ="safe").load(text)["jobs"]
    (job,) = steps.values()
    return [step["run"] for step in job["steps"] if "run" in step
            and not step["run"].startswith("pip install")]  # fmt: skip


def run_step(script: str, cwd: Path, tmp: Path, base: str) -> subprocess.CompletedProcess[str]:
    """One step, with the expressions GitHub substitutes and the variables it sets."""
    for expression, value in (
        ("github.base_ref", base),
        ("github.event.pull_request.number", PR_NUMBER),
        ("github.token", "not-a-token"),
    ):
        script = script.replace("${{ " + expression + " }}", value)
    assert "${{" not in script, script
    stand_ins = tmp / "bin"
    env = {
        **os.environ,
        "RUNNER_TEMP": str(tmp / "runner"),
        "GH_LOG": str(tmp / "gh"),
        "PATH": os.pathsep.join(
            [str(stand_ins), str(Path(sys.executable).parent), os.environ["PATH"]]
        ),
    }
    return subprocess.run(["bash", "-e", "-c", script], cwd=cwd, env=env, capture_output=True,
                          text=True)  # fmt: skip


@pytest.fixture
def ci(tmp_path: Path) -> Path:
    for folder in ("bin", "runner", "gh"):
        (tmp_path / folder).mkdir()
    gh = tmp_path / "bin" / "gh"
    gh.write_text(GH)
    gh.chmod(0o755)
    return tmp_path


def _origin(project: Path, signing: Path) -> Path:
    """A bare origin whose main holds the allowed signers, and whose runs branch the
    project shares."""
    allowed = project / ".github" / "allowed_signers"
    allowed.parent.mkdir()
    allowed.write_text(f"ada@example.com {signing.read_text()}")
    git(project, "add", ".github")
    git(project, "commit", "-q", "-m", "trust ada")
    origin = project.parent / "origin.git"
    git(project.parent, "init", "-q", "--bare", str(origin))
    git(project, "remote", "add", "origin", str(origin))
    git(project, "push", "-q", "origin", "main")
    return origin


def _clone(origin: Path, where: Path, branch: str) -> Path:
    git(origin.parent, "clone", "-q", str(origin), str(where))
    git(where, "checkout", "-q", branch)  # the pull request's head
    return where


def test_code_pull_request_recipe_verifies_and_posts_the_report(
    project: Path, signing: Path, ci: Path
) -> None:
    origin = _origin(project, signing)
    for lr in ("0.1", "0.2"):
        for seed in ("0", "1"):
            result = gitexp("run", "--name", f"lr{lr}", "--seed", seed, "--",
                            "python", "train.py", "--lr", lr)  # fmt: skip
            assert result.exit_code == 0, result.output
    git(project, "push", "-q", "origin", "gitexp/runs")
    git(project, "switch", "-q", "-c", "feature")
    assert gitexp("publish", "lr0.1", "lr0.2").exit_code == 0
    git(project, "push", "-q", "origin", "feature")

    clone = _clone(origin, ci / "pr", "feature")
    verify_step, report_step = workflow("runs-report.yml")
    done = run_step(verify_step, clone, ci, "main")
    assert done.returncode == 0, done.stderr
    assert "4 published copies verified" in done.stderr
    done = run_step(report_step, clone, ci, "main")
    assert done.returncode == 0, done.stderr
    args = (ci / "gh" / "args").read_text().split("\n")
    assert args[:3] == ["pr", "comment", PR_NUMBER]
    body = (ci / "gh" / "body.md").read_text()
    assert body.startswith("## Experiment report\n")
    assert "All 4 records verify" in body
    assert all(run_id in body for run_id in run_ids(project))

    # A pull request that publishes nothing passes, and nothing is posted (a new job: its
    # RUNNER_TEMP is empty).
    (ci / "gh" / "args").unlink()
    (ci / "runner" / "report.md").unlink()
    plain = _clone(origin, ci / "plain", "main")
    for step in (verify_step, report_step):
        done = run_step(step, plain, ci, "main")
        assert done.returncode == 0, done.stderr
    assert not (ci / "gh" / "args").exists()

    # The same pull request, with a published number improved by hand.
    (ci / "gh" / "body.md").unlink()
    summary = next((project / "experiments").glob("*/config.yaml"))
    summary.write_text(summary.read_text() + "lr_was_better: true\n")
    git(project, "commit", "-q", "-am", "better numbers")
    git(project, "push", "-q", "origin", "feature")
    git(clone, "pull", "-q", "origin", "feature")
    done = run_step(verify_step, clone, ci, "main")
    assert done.returncode == 4
    assert f"{summary.relative_to(project)} differs from what commit" in done.stdout
    done = run_step(report_step, clone, ci, "main")  # `if: success() || failure()`
    assert done.returncode == 0, done.stderr
    assert "**1 of 4 records does not verify**" in (ci / "gh" / "body.md").read_text()


def test_runs_branch_pull_request_recipe_verifies_against_the_base(
    project: Path, signing: Path, ci: Path
) -> None:
    origin = _origin(project, signing)
    assert gitexp("run", "--", "python", "train.py").exit_code == 0
    git(project, "push", "-q", "origin", "gitexp/runs")
    assert gitexp("run", "--", "python", "train.py", "--lr", "0.2").exit_code == 0
    git(project, "push", "-q", "origin", "gitexp/runs:ada/runs")  # the pull request's head
    clone = _clone(origin, ci / "pr", "ada/runs")
    (step,) = workflow("verify-runs.yml")
    done = run_step(step, clone, ci, "gitexp/runs")
    assert done.returncode == 0, done.stderr
    assert "2 runs verified" in done.stderr
    # A head that drops a run of the base fails.
    git(project, "push", "-q", "-f", "origin", "gitexp/runs~2:ada/runs")  # the README root
    git(clone, "fetch", "-q", "origin")
    git(clone, "reset", "-q", "--hard", "origin/ada/runs")
    done = run_step(step, clone, ci, "gitexp/runs")
    assert done.returncode == 4, done.stdout + done.stderr
