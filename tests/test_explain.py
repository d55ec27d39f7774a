"""`gitexp explain A B`: the single-axis variants between two runs, run through the replay
machinery, found again in the history, and each axis's effect measured seed by seed."""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from gitexp.axes import Change
from gitexp.explain.plan import _label

from .conftest import dvc, git, gitexp, gitexp_process, run_ids, with_data_and_script

# Its loss adds up what each input did: the learning rate's distance from 0.1, the data's
# mean, the code's PENALTY, and a little seed noise. `--seed` seeds it.
SCRIPT = """\
import argparse, random
import gitexp
PENALTY = 0.0
parser = argparse.ArgumentParser()
parser.add_argument("--lr", type=float, default=0.1)
parser.add_argument("--seed", type=int, default=0)
parser.add_argument("--width", type=int, default=8)
args = parser.parse_args()
random.seed(args.seed)
rows = [float(x) for x in open("data/train.csv").read().split()]
loss = 10 * abs(args.lr - 0.1) + sum(rows) / len(rows) + PENALTY + random.random() / 100
with gitexp.init() as run:
    run.log({"loss": loss})
"""


def _record(*command: str) -> str:
    result = gitexp("run", "--", sys.executable, "fit.py", *command)
    assert result.exit_code == 0, result.output
    return run_ids(Path.cwd())[0]


def _loss(run_id: str) -> float:
    shown = json.loads(gitexp("show", run_id, "--json").stdout)
    return float(shown["summary"]["loss"]["last"])


@pytest.fixture
def trainer(project: Path) -> Path:
    """The project with DVC data and the additive script."""
    return with_data_and_script(project, SCRIPT)


def _change_everything(project: Path) -> None:
    """B's code and data: a much worse loss from the code, a little from the data."""
    (project / "fit.py").write_text(SCRIPT.replace("PENALTY = 0.0", "PENALTY = 50.0"))
    (project / "data" / "train.csv").write_text("2\n3\n4\n")
    dvc(project, "add", "data/train.csv")


@pytest.fixture
def pair(trainer: Path) -> tuple[str, str]:
    """A, then B, which changes the learning rate, the loss code and the dataset at once."""
    a = _record("--lr", "0.1", "--seed", "1")
    _change_everything(trainer)
    b = _record("--lr", "0.2", "--seed", "1")
    return a, b


def _explain(*args: str) -> dict[str, object]:
    result = gitexp("explain", *args, "--json")
    assert result.exit_code == 0, result.output
    found = json.loads(result.stdout)
    assert isinstance(found, dict)
    return found


@pytest.mark.slow
def test_explain_runs_each_single_axis_variant_and_names_the_axis_that_moved_the_loss(
    trainer: Path, pair: tuple[str, str]
) -> None:
    a, b = pair
    result = gitexp("explain", a, b, "--seeds", "2", "--yes")
    assert result.exit_code == 0, result.output
    # A and B, a second seed of each, and the three variants with two seeds each.
    made = [r for r in run_ids(trainer) if r not in pair]
    assert len(made) == 8
    lines = result.stdout.splitlines()
    assert lines[0] == (
        f"explain {a} → {b}: 3 axes differ (code, config.lr, data.data/train.csv); "
        "2 seeds each (A's seed, then 2)"
    )
    assert "code moved loss most: +50 of +52 (96%)" in result.stdout
    assert "the effects" not in result.stdout  # they add up: nothing is left to interactions
    # Each variant is one axis away from A: what running it by hand would have been.
    found = _explain(a, b, "--seeds", "2")
    runs = {r["label"]: r for r in found["runs"]}  # type: ignore[union-attr]
    for axis in ("code", "config.lr", "data.data/train.csv"):
        variant = runs[f"{axis}#1"]["run"]
        said = gitexp("diff", a, variant)
        assert said.exit_code == 0, said.output
        assert said.stdout.startswith(f"{a} → {variant}: 1 axis differs\n  {axis}: ")
    assert _loss(runs["config.lr#1"]["run"]) == pytest.approx(_loss(a) + 1.0)
    assert _loss(runs["data.data/train.csv#2"]["run"]) == pytest.approx(
        _loss(runs["A#2"]["run"]) + 1.0
    )
    shown = json.loads(gitexp("show", runs["code#2"]["run"], "--json").stdout)
    assert shown["run"]["explains"] == f"{a}..{b}"
    assert shown["run"]["variant"] == "code#2"
    assert shown["config"]["seed"] == 2
    (metric,) = found["metrics"]  # type: ignore[misc]
    assert metric["main"] == "code"
    assert metric["accounts"] == ["code", "config.lr", "data.data/train.csv"]
    assert metric["additive"] is True
    effects = {e["axis"]: e for e in metric["axes"]}
    assert effects["code"]["mean"] == pytest.approx(50.0)
    assert effects["code"]["deltas"] == [pytest.approx(50.0)] * 2
    assert effects["config.lr"]["mean"] == pytest.approx(1.0)
    assert metric["total"]["mean"] == pytest.approx(52.0)
    # A second explain makes nothing: every planned run is found in the history.
    assert all(r["reused"] for r in found["runs"])  # type: ignore[union-attr]
    assert len(run_ids(trainer)) == 10
    again = gitexp("explain", a, b, "--seeds", "2", "--plan")
    assert again.stdout.splitlines()[-1] == "10 planned runs: 10 in the history, 0 to run"


def test_plan_shows_each_run_and_finds_one_made_by_hand(trainer: Path) -> None:
    a = _record("--lr", "0.1", "--seed", "1")
    by_hand = _record("--lr", "0.2", "--seed", "1")  # A with B's learning rate
    _change_everything(trainer)
    b = _record("--lr", "0.2", "--seed", "1")
    result = gitexp("explain", a, b, "--plan")
    assert result.exit_code == 0, result.output
    rows = {line.split()[0]: line.split()[1:] for line in result.stdout.splitlines()[2:-1]}
    assert rows["A#1"] == ["1", "A", "itself", a, "succeeded", "(in", "the", "history)"]
    assert rows["config.lr#1"] == ["1", "A", "with", "--lr", "0.2", by_hand, "succeeded", "(in",
                                   "the", "history)"]  # fmt: skip
    assert rows["code#1"] == ["1", "A", "with", "B's", "code", "(fit.py)", "to", "run"]
    assert rows["data.data/train.csv#1"][:5] == ["1", "A", "with", "data/train.csv", "at"]
    assert result.stdout.splitlines()[-1] == "5 planned runs: 3 in the history, 2 to run"
    as_json = json.loads(gitexp("explain", a, b, "--plan", "--json").stdout)
    assert as_json["to_run"] == 2 and as_json["max_runs"] == 16
    assert {r["label"]: r["run"] for r in as_json["runs"] if r["reused"]} == {
        "A#1": a, "B#1": b, "config.lr#1": by_hand,
    }  # fmt: skip
    for mixed in (["--print", "--json"], ["--only", "A#1", "--markdown"], ["--plan", "--print"]):
        assert gitexp("explain", a, b, *mixed).exit_code == 2
    assert len(run_ids(trainer)) == 3  # --plan runs nothing


@pytest.mark.slow
def test_printed_commands_run_one_variant_each_in_parallel(
    trainer: Path, pair: tuple[str, str]
) -> None:
    a, b = pair
    printed = gitexp("explain", a, b, "--axis", "code", "--axis", "data.*", "--print", "--yes")
    assert printed.exit_code == 0, printed.output
    lines = printed.stdout.splitlines()
    assert [shlex.split(line)[-3:] for line in lines] == [
        ["--axis=data.*", "--yes", "--only=code#1"],
        ["--axis=data.*", "--yes", "--only=data.data/train.csv#1"],
    ]
    # As the README runs them: through xargs and a shell, both at once; none is lost.
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
    done = subprocess.run(["xargs", "-d", "\n", "-P", "2", "-I{}", "sh", "-c", "{}"],
                          input=printed.stdout, cwd=trainer, capture_output=True, text=True,
                          env={**os.environ, "PATH": path}, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert len(run_ids(trainer)) == 4
    again = gitexp("explain", a, b, "--axis", "code", "--axis", "data.*", "--print")
    assert again.exit_code == 0 and again.stdout == ""
    one = gitexp("explain", a, b, "--axis", "code", "--axis", "data.*", "--only", "code#1")
    assert one.stdout.startswith("code#1 is run ")


def test_explain_refuses_before_it_runs_anything(
    trainer: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # recorded in env.yaml
    a = _record("--lr", "0.1", "--seed", "1")
    _change_everything(trainer)
    b = _record("--lr", "0.2", "--seed", "1")
    # A plan above --max-runs, with its size; --plan still shows it.
    for mode in ((), ("--print",)):
        result = gitexp("explain", a, b, "--seeds", "3", "--max-runs", "5", "--yes", *mode)
        assert result.exit_code == 3
        assert "the plan needs 13 new runs, above --max-runs 5" in result.output
    planned = gitexp("explain", a, b, "--seeds", "3", "--max-runs", "5", "--plan")
    assert planned.exit_code == 0
    assert planned.stdout.splitlines()[-1].endswith(
        "13 to run, above --max-runs 5: explain would refuse"
    )
    # Records that do not verify, without a terminal to ask on.
    result = gitexp("explain", a, b)
    assert result.exit_code == 3
    assert f"run {a} does not verify" in result.output
    assert "pass --yes to run it" in result.output
    # Another machine: every run made here would differ from A on env too.
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    result = gitexp("explain", a, b, "--yes")
    assert result.exit_code == 3
    assert "this machine's environment is not run" in result.output
    assert "variables.OMP_NUM_THREADS: 1 here 2" in result.output
    assert len(run_ids(trainer)) == 2


def test_seeds_set_in_code_cannot_be_repeated(trainer: Path) -> None:
    (trainer / "fit.py").write_text(SCRIPT.replace("random.seed(args.seed)", "random.seed(5)"))
    a = _record("--lr", "0.1")
    b = _record("--lr", "0.2", "--width", "4")
    result = gitexp("explain", a, b, "--seeds", "2", "--plan")
    assert result.exit_code == 2
    assert f"run {a} sets its seed in its code" in result.output
    assert gitexp("explain", a, b, "--plan").exit_code == 0


# Its width is set in its code and given to gitexp as config: no option can change it.
GIVEN_IN_CODE = """\
import argparse
import gitexp
WIDTH = 8
parser = argparse.ArgumentParser()
parser.add_argument("--lr", type=float, default=0.1)
args = parser.parse_args()
with gitexp.init(config={"width": WIDTH}) as run:
    run.log({"loss": args.lr + WIDTH})
"""


def test_a_change_explain_cannot_make_is_said_and_left_unmeasured(trainer: Path) -> None:
    (trainer / "fit.py").write_text(GIVEN_IN_CODE)
    a = _record("--lr", "0.1")
    (trainer / "fit.py").write_text(GIVEN_IN_CODE.replace("WIDTH = 8", "WIDTH = 4"))
    b = _record("--lr", "0.2")
    planned = gitexp("explain", a, b, "--plan")
    assert planned.exit_code == 0, planned.output
    assert "config.width#1" in planned.stdout
    assert ("cannot be made: config.width is neither an option of the command nor a key of "
            "its config files") in planned.stdout  # fmt: skip
    result = gitexp("explain", a, b, "--yes")
    assert result.exit_code == 0, result.output
    assert len(run_ids(trainer)) == 3  # the learning rate's variant alone
    rows = {line.split()[0]: line.split()[1:] for line in result.stdout.splitlines()
            if line.startswith("  ")}  # fmt: skip
    assert rows["config.argv.lr"] == ["+0.1", "-3%"]  # of -3.9: it moved the other way
    assert rows["config.width"] == ["—", "not", "measured"]
    lines = result.stdout.splitlines()
    assert lines[-3] == (
        "loss: no axis alone moved it the way A → B did (-3.9); config.width not measured."
    )
    assert lines[-2].startswith("config.width#1: cannot be made: config.width is neither")


def test_labels_of_odd_axes_are_plain_words() -> None:
    assert _label(Change("config.lr", 1, 2), 1) == "config.lr"
    assert _label(Change("data.my data/x.csv", "a", "b"), 2) == "axis2"
    assert _label(Change("config.a\x1b[2Jb", 1, 2), 3) == "axis3"


# Reads its learning rate and depth from a YAML file named by --config.
FROM_FILE = """\
import argparse, random
import yaml
import gitexp
parser = argparse.ArgumentParser()
parser.add_argument("--config")
parser.add_argument("--seed", type=int, default=0)
args = parser.parse_args()
conf = yaml.safe_load(open(args.config))
random.seed(args.seed)
print("trained", flush=True)
with gitexp.init() as run:
    run.log({"loss": conf["optim"]["lr"] * 10 + conf["layers"] + random.random() / 100})
"""


def test_a_key_of_a_yaml_config_file_is_changed_in_the_file(trainer: Path) -> None:
    (trainer / "fit.py").write_text(FROM_FILE)
    (trainer / "conf.yaml").write_text("# tuned by hand\noptim:\n  lr: 0.1\nlayers: 2\n")
    a = _record("--config", "conf.yaml", "--seed", "1")
    (trainer / "conf.yaml").write_text("optim:\n  lr: 3.0e-1\nlayers: 4\n")
    b = _record("--config", "conf.yaml", "--seed", "1")
    as_json = gitexp("explain", a, b, "--yes", "--json")  # the runs' own output: on stderr
    assert as_json.exit_code == 0, as_json.output
    assert as_json.stderr.count("trained\n") == 2
    assert json.loads(as_json.stdout)["metrics"][0]["additive"] is None  # one seed: not judged
    assert "gitexp explain: [2/2] config.optim.lr#1: optim.lr: 0.3 in conf.yaml" in as_json.stderr
    result = gitexp("explain", a, b)
    assert result.exit_code == 0, result.output
    rows = {line.split()[0]: line.split()[1:] for line in result.stdout.splitlines()
            if line.startswith("  ")}  # fmt: skip
    assert rows["config.layers"] == ["+2", "50%"]
    assert rows["config.optim.lr"] == ["+2", "50%"]
    assert rows["interaction"] == ["0", "0%"]  # no float dust: the two add up exactly
    lr_run = run_ids(trainer)[0]
    shown = json.loads(gitexp("show", lr_run, "--json").stdout)
    assert shown["config"]["optim"] == {"lr": 0.3} and shown["config"]["layers"] == 2
    # Changed in place: the comment, and every other byte, as A had them.
    ran = git(trainer, "show", f"{shown['code']['snapshot']}:conf.yaml")
    assert ran == "# tuned by hand\noptim:\n  lr: 3.0e-1\nlayers: 2\n"  # spelled as B did
    assert (trainer / "conf.yaml").read_text() == "optim:\n  lr: 3.0e-1\nlayers: 4\n"  # untouched


def test_a_seed_given_by_gitexp_run_is_given_again_the_same_way(trainer: Path) -> None:
    (trainer / "fit.py").write_text(
        SCRIPT.replace("random.seed(args.seed)", "random.seed(int(os.environ['GITEXP_SEED']))")
        .replace("import argparse, random", "import argparse, os, random")
    )  # fmt: skip
    a = gitexp("run", "--seed", "7", "--", sys.executable, "fit.py", "--lr", "0.1")
    b = gitexp("run", "--seed", "7", "--", sys.executable, "fit.py", "--lr", "0.2", "--width", "4")
    assert a.exit_code == b.exit_code == 0
    first, second = reversed(run_ids(trainer))
    result = gitexp("explain", first, second, "--seeds", "3", "--plan")
    assert result.exit_code == 0, result.output
    rows = {line.split()[0]: line.split()[1:] for line in result.stdout.splitlines()[2:-1]}
    assert rows["A#1"][:3] == ["7", "A", "itself"]
    assert rows["A#2"] == ["8", "A", "with", "GITEXP_SEED=8", "to", "run"]
    assert rows["config.lr#3"] == ["9", "A", "with", "--lr", "0.2;", "GITEXP_SEED=9", "to",
                                   "run"]  # fmt: skip


@pytest.mark.slow
def test_a_variant_that_fails_is_said_kept_and_run_again_only_when_asked(
    trainer: Path, pair: tuple[str, str]
) -> None:
    a, _ = pair
    # B's code needs B's data: with A's, its code variant fails, before it reads its options
    # (so its record holds them unparsed: found again by its link to the explanation).
    (trainer / "fit.py").write_text(
        SCRIPT.replace("PENALTY = 0.0", "PENALTY = 50.0")
        .replace("args = parser.parse_args()", "assert open('data/train.csv').read()"
                 ".startswith('2'), 'this code needs the new data'\nargs = parser.parse_args()")
    )  # fmt: skip
    b = _record("--lr", "0.2", "--seed", "1")
    result = gitexp("explain", a, b, "--yes", "--axis", "code")
    assert result.exit_code == 1
    assert "code#1: not counted: it failed (exit 1)" in result.stdout
    assert "Error: 1 planned run counts for nothing" in result.stderr
    assert "--retry-failed runs the failed ones again" in result.stderr
    rows = {line.split()[0]: line.split()[1:] for line in result.stdout.splitlines()
            if line.startswith("  ")}  # fmt: skip
    assert rows["code"] == ["—", "not", "measured"]
    count = len(run_ids(trainer))
    again = gitexp("explain", a, b, "--yes", "--axis", "code")  # a result: not made again
    assert again.exit_code == 1 and len(run_ids(trainer)) == count
    retried = gitexp("explain", a, b, "--yes", "--axis", "code", "--retry-failed")
    assert retried.exit_code == 1 and len(run_ids(trainer)) == count + 1


@pytest.mark.slow
def test_an_explain_stopped_by_ctrl_c_exits_like_its_run_and_resumes(trainer: Path) -> None:
    # With WAIT set, the script says it is ready and waits to be stopped: no sleep needed.
    waits = SCRIPT.replace("import argparse, random", "import argparse, os, random, time")
    waits = waits.replace("random.seed(args.seed)", "random.seed(args.seed)\n"
                          "if os.environ.get('WAIT'):\n"
                          "    print('ready', flush=True)\n"
                          "    time.sleep(600)")  # fmt: skip
    (trainer / "fit.py").write_text(waits)
    git(trainer, "commit", "-q", "-am", "waits")
    a = _record("--lr", "0.1", "--seed", "1")
    (trainer / "fit.py").write_text(waits.replace("PENALTY = 0.0", "PENALTY = 50.0"))
    b = _record("--lr", "0.2", "--seed", "1")
    process = gitexp_process(["explain", a, b, "--yes"], trainer, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, env={**os.environ, "WAIT": "1"})  # fmt: skip
    assert process.stdout is not None
    assert process.stdout.readline() == "ready\n"
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 130, err
    assert "gitexp explain: [1/2] code#1 is run" in err and "(interrupted)" in err
    assert "explain stopped; run it again to make the rest" in err
    stopped = run_ids(trainer)[0]
    assert json.loads(gitexp("show", stopped, "--json").stdout)["run"]["status"] == "interrupted"
    again = gitexp("explain", a, b, "--yes", "--json")  # resumes: both variants, made anew
    assert again.exit_code == 0, again.output
    found = {r["label"]: r for r in json.loads(again.stdout)["runs"]}
    assert found["code#1"]["run"] not in (None, stopped)
    assert found["config.lr#1"]["status"] == "succeeded"
    assert stopped in run_ids(trainer)  # kept: nothing lost


def test_runs_one_axis_apart_are_measured_against_seed_noise(trainer: Path) -> None:
    a = _record("--lr", "0.1", "--seed", "1")
    b = _record("--lr", "0.3", "--seed", "1")
    result = gitexp("explain", a, b, "--seeds", "2", "--yes")
    assert result.exit_code == 0, result.output
    assert len(run_ids(trainer)) == 4  # A and B again, with seed 2: no variant to make
    rows = {line.split()[0]: line.split()[1:] for line in result.stdout.splitlines()
            if line.startswith("  ")}  # fmt: skip
    assert rows["config.lr"][0] == "+2"
    assert rows["config.lr"][-3:] == ["100%", "beyond", "noise"]
    assert "interaction" not in rows
    assert "config.lr moved loss most: +2 of +2 (100%)." in result.stdout


@pytest.mark.slow
@pytest.mark.parametrize("signed", [True, False])
def test_a_reused_run_whose_record_was_altered_decides_nothing(
    trainer: Path, tmp_path: Path, request: pytest.FixtureRequest, signed: bool
) -> None:
    if signed:
        request.getfixturevalue("signing")  # unsigned, the change after the fact still shows
    a = _record("--lr", "0.1", "--seed", "1")
    _change_everything(trainer)
    b = _record("--lr", "0.2", "--seed", "1")
    found = _explain(a, b, "--axis", "code", "--yes")
    code_run = next(r["run"] for r in found["runs"] if r["label"] == "code#1")
    # Someone rewrites its loss, as a pull could bring it.
    branch = tmp_path / "branch"
    git(trainer, "worktree", "add", "-q", str(branch), "gitexp/runs")
    summary = branch / "experiments" / code_run / "summary.yaml"
    summary.write_text(summary.read_text().replace("last: 52", "last: 2"))
    git(branch, "commit", "-q", "--no-gpg-sign", "-am", "tamper")
    git(trainer, "worktree", "remove", str(branch))

    result = gitexp("explain", a, b, "--axis", "code")

    assert result.exit_code == 1
    assert "code#1: not counted: its record does not verify (modified after signing)" in (
        result.stdout
    )
    rows = {line.split()[0]: line.split()[1:] for line in result.stdout.splitlines()
            if line.startswith("  ")}  # fmt: skip
    assert rows["code"] == ["—", "not", "measured"]


def test_a_snapshots_file_past_the_config_limit_is_never_read(tmp_path: Path) -> None:
    import pygit2

    from gitexp import limits
    from gitexp.explain.variants import Unvariable, _blob

    repo = pygit2.init_repository(str(tmp_path / "r"))
    big = repo.create_blob(b"x: 1\n" + b" " * limits.CONFIG.file_size)
    builder = repo.TreeBuilder()
    builder.insert("conf.yaml", big, pygit2.enums.FileMode.BLOB)
    tree = repo[builder.write()].peel(pygit2.Tree)
    with pytest.raises(Unvariable, match=r"conf\.yaml is larger than"):
        _blob(repo, tree, "conf.yaml")
