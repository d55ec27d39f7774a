"""gitexp.init and Run.log, in real training processes."""

from __future__ import annotations

import argparse
import dataclasses
import math
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gitexp import yamlio
from gitexp.api import config_mapping
from gitexp.metrics import MetricWriter, scalar

from .conftest import git, gitexp, run_ids


def _script(project: Path, body: str, name: str = "job.py") -> Path:
    path = project / name
    path.write_text("import gitexp\n" + body)
    return path


def _python(project: Path, script: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(script.name), *args],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _file(project: Path, run_id: str, name: str) -> object:
    return yamlio.load(git(project, "show", f"gitexp/runs:experiments/{run_id}/{name}"), name)


def _run_yaml(project: Path) -> dict[str, object]:
    run = _file(project, run_ids(project)[0], "run.yaml")
    assert isinstance(run, dict)
    return run


def test_standalone_run_records_config_metrics_and_summary(project: Path) -> None:
    script = _script(
        project,
        (
            "config = {'optim': {'lr': 0.1}}\n"
            "with gitexp.init(config=config, name='a', tags=['t'], notes='n') as run:\n"
            "    for loss in [0.5, 0.25, 0.125]:\n"
            "        run.log({'train/loss': loss})\n"
            "    print(run.id)\n"
        ),
    )
    done = _python(project, script, "--epochs", "3")
    assert done.returncode == 0, done.stderr
    run_id = done.stdout.strip()
    assert run_ids(project) == [run_id]
    assert done.stderr == f"gitexp: run {run_id} succeeded, recorded on gitexp/runs\n"
    run = _run_yaml(project)
    assert (run["status"], run["name"], run["tags"], run["notes"]) == ("succeeded", "a", ["t"], "n")
    assert _file(project, run_id, "config.yaml") == {
        "argv": {"_": ["job.py"]},  # the config given in code is the config: no option twice
        "optim": {"lr": 0.1},
    }
    metrics = git(project, "show", f"gitexp/runs:experiments/{run_id}/metrics.tsv").splitlines()
    assert metrics[0] == "step\ttime\tname\tvalue"
    assert [line.split("\t")[::2] for line in metrics[1:]] == [
        ["0", "train/loss"],
        ["1", "train/loss"],
        ["2", "train/loss"],
    ]
    assert [line.split("\t")[3] for line in metrics[1:]] == ["0.5", "0.25", "0.125"]
    assert _file(project, run_id, "summary.yaml") == {
        "train/loss": {
            "last": 0.125,
            "last_step": 2,
            "min": 0.125,
            "min_step": 2,
            "max": 0.5,
            "max_step": 0,
            "count": 3,
        }
    }
    env = _file(project, run_id, "env.yaml")
    assert isinstance(env, dict) and env["captured_by"] == "inside the training process"


def test_exception_records_failed_and_reraises(project: Path) -> None:
    script = _script(
        project,
        (
            "with gitexp.init() as run:\n"
            "    run.log({'loss': 1.0})\n"
            "    raise ValueError('loss exploded')\n"
        ),
    )
    done = _python(project, script)
    assert done.returncode == 1
    assert "ValueError: loss exploded" in done.stderr  # re-raised: the traceback is Python's
    run = _run_yaml(project)
    assert (run["status"], run["error"]) == ("failed", "ValueError: loss exploded")


def test_plain_object_without_finish_is_recorded_at_exit(project: Path) -> None:
    script = _script(project, "run = gitexp.init()\nrun.log({'loss': 2.0})\n")
    assert _python(project, script).returncode == 0
    run = _run_yaml(project)
    assert run["status"] == "succeeded"
    summary = _file(project, str(run["id"]), "summary.yaml")
    assert isinstance(summary, dict) and summary["loss"]["last"] == 2.0


def test_uncaught_exception_without_with_is_failed(project: Path) -> None:
    script = _script(project, "run = gitexp.init()\nrun.log({'loss': 2.0})\n1 / 0\n")
    done = _python(project, script)
    assert done.returncode == 1
    run = _run_yaml(project)
    assert (run["status"], run["error"]) == ("failed", "ZeroDivisionError: division by zero")


def test_sigterm_records_interrupted_and_dies_by_the_signal(project: Path) -> None:
    script = _script(
        project,
        (
            "import time\n"
            "run = gitexp.init()\n"
            "run.log({'loss': 3.0})\n"
            "print('ready', flush=True)\n"
            "time.sleep(600)\n"
        ),
    )
    process = subprocess.Popen(
        [sys.executable, script.name],
        cwd=project,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert process.stdout is not None
    assert process.stdout.readline() == "ready\n"
    process.send_signal(signal.SIGTERM)
    process.communicate(timeout=60)
    assert process.returncode == -signal.SIGTERM
    run = _run_yaml(project)
    assert (run["status"], run["error"]) == ("interrupted", "SIGTERM")
    summary = _file(project, str(run["id"]), "summary.yaml")
    assert isinstance(summary, dict) and summary["loss"]["last"] == 3.0


def test_under_gitexp_run_init_joins_the_one_record(project: Path) -> None:
    script = _script(
        project,
        (
            "config = {'model': {'width': 8}}\n"
            "with gitexp.init(config=config, name='inner', tags=['code']) as run:\n"
            "    import os\n"
            "    assert run.id == os.environ['GITEXP_RUN_ID']\n"
            "    run.log({'loss': 0.5}, step=10)\n"
            "    run.log({'loss': 0.4})\n"
        ),
    )
    result = gitexp(
        "run", "--tag", "cli", "-p", "batch=32", "--", sys.executable, script.name, "--lr", "0.1"
    )
    assert result.exit_code == 0, result.stderr
    (run_id,) = run_ids(project)
    run = _run_yaml(project)
    assert (run["name"], run["tags"], run["status"]) == ("inner", ["cli", "code"], "succeeded")
    assert _file(project, run_id, "config.yaml") == {
        "argv": {"_": ["job.py"]},
        "batch": 32,
        "model": {"width": 8},
    }
    summary = _file(project, run_id, "summary.yaml")
    assert isinstance(summary, dict) and summary["loss"]["last_step"] == 11
    env = _file(project, run_id, "env.yaml")
    assert isinstance(env, dict) and env["captured_by"] == "inside the training process"
    assert "training" not in git(project, "for-each-ref")  # no leftover refs


def test_under_gitexp_run_a_key_set_both_ways_differently_is_an_error(project: Path) -> None:
    script = _script(project, "gitexp.init(config={'batch': 64})\n")
    result = gitexp("run", "-p", "batch=32", "--", sys.executable, script.name)
    assert result.exit_code == 1
    assert (
        "config key 'batch' is 32 on the command line but 64 in code (1 such keys); "
        "set each key in one place"
    ) in result.stderr


def test_under_gitexp_run_seed_reaches_init(project: Path) -> None:
    script = _script(project, ("import random\nrun = gitexp.init()\nprint(random.random())\n"))
    first = gitexp("run", "--seed", "4", "--", sys.executable, script.name)
    second = gitexp("run", "--seed", "4", "--", sys.executable, script.name)
    assert first.stdout.splitlines()[0] == second.stdout.splitlines()[0]
    seeds = _file(project, run_ids(project)[0], "seeds.yaml")
    assert isinstance(seeds, dict)
    assert (seeds["seed"], seeds["rngs"]["python"]) == (4, 4)


def test_current_and_dir(project: Path) -> None:
    script = _script(
        project,
        (
            "assert gitexp.current() is None\n"
            "with gitexp.init() as run:\n"
            "    assert gitexp.current() is run\n"
            "    (run.dir / 'model.txt').write_text('weights')\n"
            "    print(run.dir)\n"
            "assert gitexp.current() is None\n"
        ),
    )
    done = _python(project, script)
    assert done.returncode == 0, done.stderr
    out_dir = Path(done.stdout.strip())
    assert out_dir == project / "outputs" / run_ids(project)[0]
    assert (out_dir / "model.txt").read_text() == "weights"
    assert git(project, "status", "--porcelain") == "?? job.py\n"  # outputs/ is ignored


def test_two_inits_in_one_process_is_an_error(project: Path) -> None:
    script = _script(project, "gitexp.init()\ngitexp.init()\n")
    done = _python(project, script)
    assert done.returncode == 1
    assert "a run is already active in this process" in done.stderr


@dataclasses.dataclass
class _Optim:
    lr: float = 0.1
    betas: tuple[float, float] = (0.9, 0.99)


@dataclasses.dataclass
class _Config:
    optim: _Optim = dataclasses.field(default_factory=_Optim)
    path: Path = Path("data/train")


@pytest.mark.parametrize(
    "config",
    [
        {"optim": {"lr": 0.1, "betas": (0.9, 0.99)}, "path": Path("data/train")},
        argparse.Namespace(optim={"lr": 0.1, "betas": [0.9, 0.99]}, path="data/train"),
        _Config(),
    ],
    ids=["dict", "namespace", "dataclass"],
)
def test_config_kinds_become_the_same_mapping(config: object) -> None:
    assert config_mapping(config) == {
        "optim": {"lr": 0.1, "betas": [0.9, 0.99]},
        "path": "data/train",
    }


def test_omegaconf_config_is_resolved() -> None:
    omegaconf = pytest.importorskip("omegaconf")
    config = omegaconf.OmegaConf.create({"lr": 0.1, "optim": {"lr": "${lr}"}})
    assert config_mapping(config) == {"lr": 0.1, "optim": {"lr": 0.1}}


def test_config_of_another_kind_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="config must be a dict"):
        config_mapping([1, 2])


def test_log_accepts_numpy_and_torch_scalars_and_keeps_nan(tmp_path: Path) -> None:
    numpy = pytest.importorskip("numpy")
    torch = pytest.importorskip("torch")
    writer = MetricWriter(tmp_path, started=0.0)
    writer.log({"a": numpy.float32(0.5), "b": torch.tensor(2.0), "c": 3})
    writer.log({"a": math.nan, "b": math.inf, "c": -math.inf})
    writer.flush()
    lines = (tmp_path / "metrics.tsv").read_text().splitlines()
    assert [line.split("\t")[2:] for line in lines[1:]] == [
        ["a", "0.5"],
        ["b", "2.0"],
        ["c", "3.0"],
        ["a", "nan"],
        ["b", "inf"],
        ["c", "-inf"],
    ]
    summary = writer.summary.as_dict()
    a = summary["a"]
    assert math.isnan(a.pop("last"))  # kept, and marked by nan_count; never a min or max
    assert a == {
        "last_step": 1,
        "min": 0.5,
        "min_step": 0,
        "max": 0.5,
        "max_step": 0,
        "count": 2,
        "nan_count": 1,
    }
    assert (summary["b"]["max"], summary["c"]["min"]) == (math.inf, -math.inf)


@pytest.mark.parametrize("value", [[1.0, 2.0], "0.5", {"x": 1}])
def test_log_refuses_what_is_not_one_number(value: object) -> None:
    with pytest.raises(TypeError, match="must be a single number"):
        scalar("loss", value)


def test_log_refuses_arrays_with_more_than_one_element() -> None:
    numpy = pytest.importorskip("numpy")
    with pytest.raises(
        TypeError, match=r"metric 'loss' must be a single number, not ndarray\(3,\)"
    ):
        scalar("loss", numpy.zeros(3))


def test_metrics_reach_disk_while_the_run_lives(tmp_path: Path) -> None:
    writer = MetricWriter(tmp_path, started=0.0, flush_interval=0.0)  # a slow run's cadence
    writer.log({"loss": 1.5})
    lines = (tmp_path / "metrics.tsv").read_text().splitlines()
    assert [line.split("\t")[2:] for line in lines[1:]] == [["loss", "1.5"]]


def test_a_crashed_runs_metrics_are_recovered_from_the_stream(tmp_path: Path) -> None:
    from gitexp.metrics import record

    writer = MetricWriter(tmp_path, started=0.0, flush_interval=0.0)
    for value in (3.0, 1.0, 2.0):
        writer.log({"loss": value})
    (tmp_path / "summary.json").unlink()  # died before the summary was saved
    with open(tmp_path / "metrics.tsv", "a") as f:
        f.write("3\t0.5\tlo")  # and in the middle of a line
    found = record(tmp_path)
    assert found is not None
    tsv, summary = found
    assert tsv.decode().splitlines()[-1].endswith("\tloss\t2.0")
    assert yamlio.load(summary, "summary") == {
        "loss": {
            "last": 2.0,
            "last_step": 2,
            "min": 1.0,
            "min_step": 1,
            "max": 3.0,
            "max_step": 0,
            "count": 3,
        }
    }


def test_a_vanished_run_state_warns_once_and_training_goes_on(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "run"
    folder.mkdir()
    writer = MetricWriter(folder, started=0.0, flush_interval=0.0)
    writer.log({"loss": 1.0})
    shutil.rmtree(folder)  # someone cleaned .git/gitexp/ by hand

    for step in range(1, 5):
        writer.log({"loss": 1.0 / step})  # never raises
    writer.stop()

    err = capsys.readouterr().err
    assert err.count("gitexp: cannot write metrics") == 1
    assert "training goes on, but this run's metrics from here on are not recorded" in err


def test_metrics_reach_disk_within_the_bound_without_another_log_call(tmp_path: Path) -> None:
    writer = MetricWriter(tmp_path, started=0.0, flush_interval=0.05)
    writer.start()
    writer.log({"loss": 0.5})  # and then the script logs nothing for a long while
    deadline = time.monotonic() + 10
    while "loss\t0.5" not in (tmp_path / "metrics.tsv").read_text():
        assert time.monotonic() < deadline, "the background flush never came"
        time.sleep(0.01)
    writer.stop()


def test_on_its_own_init_records_the_parsed_options_as_gitexp_run_does(project: Path) -> None:
    body = ("import argparse, gitexp\nparser = argparse.ArgumentParser()\n"
            "parser.add_argument('--lr', type=float, default=0.1)\n"
            "parser.add_argument('--epochs', type=int, default=3)\nargs = parser.parse_args()\n"
            "with gitexp.init() as run:\n    run.log({'loss': args.lr})\n")  # fmt: skip
    _script(project, body)
    for wrapper in ([], [sys.executable, "-m", "gitexp", "run", "--"]):
        done = subprocess.run([*wrapper, sys.executable, "job.py", "--lr", "0.5"], cwd=project,
                              capture_output=True, text=True)  # fmt: skip
        assert done.returncode == 0, done.stderr
    alone, wrapped = sorted(run_ids(project))
    configs = [yamlio.load(git(project, "show", f"gitexp/runs:experiments/{r}/config.yaml"), "c")
               for r in (alone, wrapped)]  # fmt: skip
    assert configs[0] == configs[1] == {"argv": {"_": ["job.py"]}, "epochs": 3, "lr": 0.5}
