"""A Hydra app, unchanged but for `gitexp.init(config=cfg)`: a single run and a multirun, on
its own and under `gitexp run`, each job one record that `diff` compares on one axis."""

from __future__ import annotations

import json
import subprocess
import sys
from importlib.util import find_spec
from pathlib import Path

import pytest

from ..conftest import git, gitexp, run_ids

pytestmark = [
    pytest.mark.slow,  # each job starts Hydra in a process of its own
    pytest.mark.skipif(find_spec("hydra") is None,  # looked up, not imported: 0.4 s
                       reason="Hydra is not installed (pip install 'gitexp[hydra]')"),
]  # fmt: skip

APP = """\
import hydra
import gitexp
from omegaconf import DictConfig


@hydra.main(version_base=None, config_path="conf", config_name="config")
def main(cfg: DictConfig) -> None:
    with gitexp.init(config=cfg, seed=cfg.seed) as run:
        for step in range(3):
            run.log({"loss": cfg.optim.lr * (3 - step)}, step=step)


if __name__ == "__main__":
    main()
"""
CONFIG = "optim:\n  name: sgd\n  lr: 0.1\nmodel:\n  width: 64\nseed: 0\n"


@pytest.fixture
def app(project: Path) -> Path:
    (project / "conf").mkdir()
    (project / "conf" / "config.yaml").write_text(CONFIG)
    (project / "train.py").write_text(APP)
    git(project, "add", "-A")
    git(project, "commit", "-q", "-m", "a Hydra app")
    return project


def _run(app: Path, *args: str) -> None:
    done = subprocess.run([sys.executable, *args], cwd=app, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def _show(run_id: str) -> dict:  # type: ignore[type-arg]
    result = gitexp("show", run_id, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)  # type: ignore[no-any-return]


def test_a_single_run_records_the_composed_config_and_its_overrides(app: Path) -> None:
    _run(app, "train.py", "optim.lr=0.2", "+db.password=hunter2-hunter2-hunter2")
    (run_id,) = run_ids(app)
    shown = _show(run_id)
    assert shown["config"]["optim"] == {"name": "sgd", "lr": 0.2}
    assert shown["config"]["model"] == {"width": 64}
    hydra = shown["run"]["hydra"]
    assert hydra["mode"] == "run" and hydra["overrides"][0] == "optim.lr=0.2"
    assert "hunter2" not in json.dumps(shown)  # an override's secret, as a command's
    assert any(r["where"] == "hydra.overrides" for r in shown["run"]["redacted"])
    assert shown["code"]["dirty"] is False  # Hydra's outputs/ are never code


@pytest.mark.parametrize("wrapped", [False, True], ids=["alone", "under-gitexp-run"])
def test_a_multirun_makes_one_record_per_job_that_diff_compares(app: Path, wrapped: bool) -> None:
    command = ["train.py", "-m", "optim.lr=0.3,0.4,0.5"]
    if wrapped:
        command = ["-m", "gitexp", "run", "--", sys.executable, *command]
    _run(app, "train.py", "-m", "optim.lr=0.1,0.2")  # an earlier sweep's folders lie about
    _run(app, *command)
    newest = run_ids(app)[:3]
    assert len(run_ids(app)) == 5  # one record per job
    jobs = {_show(r)["run"]["hydra"]["job"]: _show(r) for r in newest}
    assert [jobs[n]["config"]["optim"]["lr"] for n in (0, 1, 2)] == [0.3, 0.4, 0.5]
    overrides = [jobs[n]["run"]["hydra"]["overrides"] for n in (0, 1, 2)]
    assert overrides == [["optim.lr=0.3"], ["optim.lr=0.4"], ["optim.lr=0.5"]]
    assert [jobs[n]["summary"]["loss"]["count"] for n in (0, 1, 2)] == [3, 3, 3]  # none merged
    older, newer = sorted(newest)[:2]
    result = gitexp("diff", "--no-pager", "--stat", older, newer)
    assert result.exit_code == 0, result.output  # the sweep folders are never code
    assert result.stdout.splitlines()[1] == "  config.optim.lr: 0.3 → 0.4"
    left_out = {item["reason"] for item in jobs[1]["code"]["left_out"]}
    assert left_out <= {"a Hydra job's output (beside .hydra/)",
                        "a Hydra sweep's output (beside multirun.yaml)",
                        "a run's output (in outputs/)"}  # fmt: skip
