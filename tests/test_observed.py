"""What a run's training process really used, observed inside it by the start-up hook.

Every test runs a real `gitexp run` whose command is a real Python process: the hook can
only be seen working in a child interpreter.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from gitexp import axes, yamlio

from .conftest import git, gitexp, run_ids

# An ordinary argparse script, like most training scripts: defaults, a store_true flag, a
# seed it sets itself with `random` and numpy.
SCRIPT = """\
import argparse, random
import numpy as np

parser = argparse.ArgumentParser()
parser.add_argument("--lr", type=float, default=1.0)
parser.add_argument("--epochs", type=int, default=3)
parser.add_argument("--save-model", action="store_true")
parser.add_argument("--seed", type=int, default=1)
args = parser.parse_args()
random.seed(args.seed)
np.random.seed(args.seed)
rng = np.random.default_rng(args.seed)
"""
INSTRUMENTED = (
    SCRIPT
    + """\
import gitexp
with gitexp.init(config=args) as run:
    run.log({"loss": args.lr * rng.random()}, step=0)
"""
)


def _commit(root: Path, name: str, text: str) -> None:
    (root / name).write_text(textwrap.dedent(text))
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", f"write {name}")


def _run(*args: str) -> str:
    result = gitexp("run", *args)
    assert result.exit_code == 0, result.output
    return run_ids(Path.cwd())[0]


def _file(root: Path, run_id: str, name: str) -> str:
    return git(root, "show", f"gitexp/runs:experiments/{run_id}/{name}")


def _yaml(root: Path, run_id: str, name: str) -> dict[str, object]:
    loaded = yamlio.load(_file(root, run_id, name).encode(), name)
    assert isinstance(loaded, dict)
    return loaded


def _axes(a: str, b: str) -> list[str]:
    result = gitexp("diff", a, b, "--json")
    assert result.exit_code in (0, 3), result.output
    return [axis["axis"] for axis in json.loads(result.stdout)["axes"]]


def test_the_config_is_the_parsed_namespace_defaults_included(project: Path) -> None:
    _commit(project, "train.py", SCRIPT)
    run_id = _run("--", sys.executable, "train.py", "--lr", "0.5")
    assert _yaml(project, run_id, "config.yaml") == {
        "argv": {"_": ["train.py"]},  # the script alone: never the interpreter
        "epochs": 3,
        "lr": 0.5,
        "save_model": False,
        "seed": 1,
    }


@pytest.mark.slow
def test_one_flag_is_one_axis_however_it_is_written(project: Path) -> None:
    _commit(project, "train.py", SCRIPT)
    default = _run("--", sys.executable, "train.py")
    spaced = _run("--", sys.executable, "train.py", "--lr", "0.5")
    joined = _run("--", sys.executable, "train.py", "--lr=0.5")
    epochs = _run("--", sys.executable, "train.py", "--epochs", "5")
    flag = _run("--", sys.executable, "train.py", "--save-model")

    assert _axes(default, spaced) == ["config.lr"]
    assert _axes(default, joined) == ["config.lr"]
    assert _axes(spaced, joined) == []
    assert _axes(default, epochs) == ["config.epochs"]
    assert _axes(default, flag) == ["config.save_model"]


def test_an_instrumented_run_differs_from_a_plain_one_only_in_code(project: Path) -> None:
    _commit(project, "train.py", SCRIPT)
    plain = _run("--", sys.executable, "train.py", "--lr", "0.5")
    _commit(project, "train.py", INSTRUMENTED)
    instrumented = _run("--", sys.executable, "train.py", "--lr", "0.5")

    assert _axes(plain, instrumented) == ["code"]
    for name in ("config.yaml", "env.yaml", "seeds.yaml"):
        assert _file(project, plain, name) == _file(project, instrumented, name), name


@pytest.mark.slow
def test_a_script_run_on_its_own_records_what_it_would_under_gitexp_run(project: Path) -> None:
    _commit(project, "train.py", "import gitexp\n" + INSTRUMENTED.replace("import gitexp\n", ""))
    wrapped = _run("--", sys.executable, "train.py", "--lr", "0.5")
    alone = subprocess.run(
        [sys.executable, "train.py", "--lr", "0.5"], capture_output=True, text=True, check=False
    )
    assert alone.returncode == 0, alone.stderr
    (own,) = [r for r in run_ids(project) if r != wrapped]

    # Seeded before gitexp.init, yet seen: importing gitexp starts watching.
    assert _axes(wrapped, own) == []
    assert _yaml(project, own, "seeds.yaml")["rngs"] == {
        "numpy": 1, "numpy.default_rng": 1, "python": 1,
    }  # fmt: skip


def test_seeds_the_script_sets_are_recorded_and_are_one_axis(project: Path) -> None:
    _commit(project, "train.py", SCRIPT)
    one = _run("--", sys.executable, "train.py", "--seed", "1")
    two = _run("--", sys.executable, "train.py", "--seed", "2")

    seeds = _yaml(project, one, "seeds.yaml")
    assert seeds["seed"] == 1
    assert seeds["rngs"] == {"numpy": 1, "numpy.default_rng": 1, "python": 1}
    assert "note" not in seeds  # seeded: not "unseeded"
    result = gitexp("diff", one, two)
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[1].startswith("  seed: ")  # config.seed and rngs: once
    assert _axes(one, two) == ["seed"]
    assert "noise" not in result.stderr


def test_a_given_seed_the_script_overrides_is_kept_with_a_warning(project: Path) -> None:
    _commit(project, "train.py", SCRIPT)
    result = gitexp("run", "--seed", "5", "--", sys.executable, "train.py", "--seed", "1")
    assert result.exit_code == 0, result.output
    assert "gitexp: warning: the run was given seed 5, but the script seeded" in result.stderr
    seeds = _yaml(project, run_ids(project)[0], "seeds.yaml")
    assert seeds["seed"] == 5
    assert seeds["variables"] == {"GITEXP_SEED": "5", "PYTHONHASHSEED": "5"}
    assert seeds["rngs"] == {"numpy": 1, "numpy.default_rng": 1, "python": 1}
    assert "seeds.yaml keeps both" in str(seeds["note"])


def test_an_rng_drawn_from_before_it_was_seeded_is_noted(project: Path) -> None:
    _commit(project, "train.py", "import random\nweights = random.random()\nrandom.seed(0)\n")
    result = gitexp("run", "--", sys.executable, "train.py")
    assert result.exit_code == 0, result.output
    assert "python drew random numbers before being seeded" in result.stderr
    seeds = _yaml(project, run_ids(project)[0], "seeds.yaml")
    assert seeds["drawn_before_seeding"] == ["python"]
    assert seeds["rngs"] == {"python": 0}


def test_what_a_library_does_to_rngs_while_imported_is_not_the_runs(project: Path) -> None:
    # As rich draws an id and scipy seeds a generator for its documentation, at import.
    _commit(
        project,
        "noisy.py",
        "import random\nfrom random import getrandbits\n"
        "import numpy\n_id = getrandbits(24)\nnumpy.random.default_rng(615681484984984)\n",
    )
    _commit(project, "train.py", "import random, numpy\nimport noisy\nrandom.seed(3)\n"
            "numpy.random.seed(3)\n")  # fmt: skip
    result = gitexp("run", "--", sys.executable, "train.py")
    assert result.exit_code == 0, result.output
    seeds = _yaml(project, run_ids(project)[0], "seeds.yaml")
    assert seeds["seed"] == 3 and seeds["rngs"] == {"numpy": 3, "python": 3}
    assert "drawn_before_seeding" not in seeds and "note" not in seeds


def test_reseeding_is_counted_not_listed(project: Path) -> None:
    _commit(project, "train.py", "import random\nfor epoch in range(5):\n    random.seed(7)\n")
    run_id = _run("--", sys.executable, "train.py")
    seeds = _yaml(project, run_id, "seeds.yaml")
    assert seeds["rngs"] == {"python": 7}
    assert seeds["reseeded"] == {"python": 4}


def test_the_interpreter_is_environment_not_config(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bin_dir = Path(sys.executable).parent  # where `python` names this interpreter
    assert (bin_dir / "python").exists()
    with monkeypatch.context() as patch:
        patch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
        short = _run("--", "python", "train.py", "--lr", "1")
    full = _run("--", sys.executable, "train.py", "--lr", "1")  # no parser: read from argv

    assert _axes(short, full) == []
    assert _yaml(project, short, "config.yaml") == {"argv": {"_": ["train.py"], "lr": 1}}


def test_the_training_process_is_the_deepest_rank_zero_parser(project: Path) -> None:
    # A launcher with its own parser starts two workers, as torchrun does: rank 0 is the run.
    launcher = """\
        import argparse, os, subprocess, sys
        parser = argparse.ArgumentParser()
        parser.add_argument("--nproc", type=int, default=2)
        parser.parse_args(sys.argv[1:2])
        workers = [
            subprocess.Popen([sys.executable, "train.py", f"--lr={0.5 + rank}"],
                             env={**os.environ, "RANK": str(rank)})
            for rank in range(2)
        ]
        sys.exit(max(w.wait() for w in workers))
    """
    _commit(project, "train.py", SCRIPT)
    _commit(project, "launch.py", launcher)
    run_id = _run("--", sys.executable, "launch.py", "--nproc=2")
    config = _yaml(project, run_id, "config.yaml")
    assert config["lr"] == 0.5
    assert config["argv"] == {"_": ["train.py"]}
    assert "nproc" not in config


def test_a_python_script_started_by_a_shell_script_is_observed(project: Path) -> None:
    _commit(project, "train.py", SCRIPT)
    _commit(project, "train.sh", f'"{sys.executable}" train.py --lr 0.25 "$@"\n')
    run_id = _run("--", "sh", "train.sh", "--epochs", "4")
    config = _yaml(project, run_id, "config.yaml")
    assert (config["lr"], config["epochs"], config["argv"]) == (0.25, 4, {"_": ["train.py"]})
    assert _yaml(project, run_id, "env.yaml")["captured_by"] == "inside the training process"


def test_multiprocessing_and_forked_children_are_not_the_run(project: Path) -> None:
    script = """\
        import argparse, multiprocessing, os, random

        def work(seed):
            random.seed(seed)  # a worker's seed is not the run's
            return seed

        if __name__ == "__main__":
            parser = argparse.ArgumentParser()
            parser.add_argument("--seed", type=int, default=1)
            args = parser.parse_args()
            random.seed(args.seed)
            with multiprocessing.get_context("spawn").Pool(1) as pool:
                pool.map(work, [99])
            pid = os.fork()
            if pid == 0:
                random.seed(77)
                os._exit(0)
            os.waitpid(pid, 0)
    """
    _commit(project, "train.py", script)
    run_id = _run("--", sys.executable, "train.py", "--seed", "3")
    assert _yaml(project, run_id, "seeds.yaml")["rngs"] == {"python": 3}
    assert _yaml(project, run_id, "config.yaml")["seed"] == 3


def test_an_existing_sitecustomize_still_runs(
    project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    theirs = tmp_path / "site"
    theirs.mkdir()
    marker = tmp_path / "marker"
    (theirs / "sitecustomize.py").write_text(f"open({str(marker)!r}, 'w').write('ran')\n")
    _commit(project, "train.py", SCRIPT)
    monkeypatch.setenv("PYTHONPATH", str(theirs))
    run_id = _run("--", sys.executable, "train.py", "--lr", "0.5")
    assert marker.read_text() == "ran"
    assert _yaml(project, run_id, "config.yaml")["lr"] == 0.5


def test_a_process_that_never_reaches_its_end_is_described_from_outside(project: Path) -> None:
    _commit(project, "train.py", "import os\nos._exit(0)\n")  # no atexit: no report
    run_id = _run("--", sys.executable, "train.py")
    env = _yaml(project, run_id, "env.yaml")
    assert env["captured_by"] == "the command's Python interpreter, asked after the run"
    assert env["python"] == {
        "version": sys.version.split()[0], "implementation": "CPython",
    }  # fmt: skip


def test_a_script_outside_the_repository_is_named_and_warned_of(
    project: Path, tmp_path: Path
) -> None:
    outside = tmp_path / "elsewhere.py"
    outside.write_text("print('one')\n")
    first = gitexp("run", "--", sys.executable, str(outside))
    assert first.exit_code == 0, first.output
    assert "lies outside the repository, so its code is not in the record" in first.stderr
    one = run_ids(project)[0]
    code = _yaml(project, one, "code.yaml")
    assert list(code["not_captured"]) == [str(outside.resolve())]  # type: ignore[call-overload]
    outside.write_text("print('two')\n")
    two = _run("--", sys.executable, str(outside))
    assert _axes(one, two) == ["code"]  # its change is still a change of code


def test_null_and_absent_are_the_same_value() -> None:
    with_null = b"captured_by: x\ntorch:\n  version: '2'\n  cuda: null\nvariables: {}\n"
    without = b"captured_by: y\ntorch:\n  version: '2'\nvariables: {}\n"
    assert axes.env_key(with_null) == axes.env_key(without)
    base = dict(run_id="a", snapshot="s", config_files=(), data={}, env_key="e", seeds_key="k")
    a = axes.Inputs(config={"lr": 1, "resume": None}, **base)  # type: ignore[arg-type]
    b = axes.Inputs(config={"lr": 1}, **base)  # type: ignore[arg-type]
    assert axes.record_changes(a, b) == []


def test_an_option_is_one_whichever_way_it_is_spelled() -> None:
    base = dict(run_id="a", snapshot="s", config_files=(), data={}, env_key="e", seeds_key="k")
    dashed = axes.Inputs(config={"argv.nproc-per-node": 2, "lr": 1}, **base)  # type: ignore[arg-type]
    under = axes.Inputs(config={"argv.nproc_per_node": 2, "lr": 1}, **base)  # type: ignore[arg-type]
    four = axes.Inputs(config={"argv.nproc_per_node": 4, "lr": 1}, **base)  # type: ignore[arg-type]
    assert axes.record_changes(dashed, under) == []
    assert [c.axis for c in axes.record_changes(dashed, four)] == ["config.argv.nproc_per_node"]


@pytest.mark.slow
def test_torch_seeds_and_a_model_built_before_the_seed(project: Path) -> None:
    pytest.importorskip("torch")
    script = """\
        import argparse, torch, gitexp
        parser = argparse.ArgumentParser()
        parser.add_argument("--seed", type=int, default=0)
        args = parser.parse_args()
        model = torch.nn.Linear(4, 2)  # drawn before the seed below
        with gitexp.init(config=args, seed=args.seed) as run:
            run.log({"w": float(model.weight.sum())}, step=0)
    """
    _commit(project, "train.py", script)
    result = gitexp("run", "--", sys.executable, "train.py", "--seed", "3")
    assert result.exit_code == 0, result.output
    assert "torch drew random numbers before being seeded" in result.stderr
    run_id = run_ids(project)[0]
    seeds = _yaml(project, run_id, "seeds.yaml")
    assert seeds["seed"] == 3
    assert seeds["rngs"] == {"cuda": 3, "numpy": 3, "python": 3, "torch": 3}
    assert seeds["drawn_before_seeding"] == ["torch"]
    torch_env = _yaml(project, run_id, "env.yaml")["torch"]
    assert isinstance(torch_env, dict) and "version" in torch_env  # asked of torch itself


@pytest.mark.slow
def test_torchrun_records_rank_zero_and_its_own_options(project: Path, torchrun_port: int) -> None:
    pytest.importorskip("torch")
    torchrun = Path(sys.executable).parent / "torchrun"
    if not torchrun.exists():
        pytest.skip("torchrun is not installed beside this interpreter")
    script = """\
        import argparse, torch, torch.distributed as dist
        parser = argparse.ArgumentParser()
        parser.add_argument("--lr", type=float, default=0.1)
        parser.add_argument("--seed", type=int, default=4)
        args = parser.parse_args()
        dist.init_process_group("gloo")
        torch.manual_seed(args.seed + dist.get_rank())  # rank 1 seeds 5: not the run's seed
        dist.destroy_process_group()
    """
    _commit(project, "ddp.py", script)
    two = _run("--", str(torchrun), "--nproc_per_node", "2", "ddp.py", "--lr", "0.3")
    one = _run("--", str(torchrun), "--nproc_per_node", "1", "ddp.py", "--lr", "0.3")

    assert _yaml(project, two, "config.yaml") == {
        "argv": {"_": ["torchrun", "ddp.py"], "nproc_per_node": 2},
        "lr": 0.3,
        "seed": 4,
    }
    assert _yaml(project, two, "seeds.yaml")["rngs"] == {"cuda": 4, "torch": 4}
    assert _axes(two, one) == ["config.argv.nproc_per_node"]


def test_a_key_whose_value_is_the_seed_set_is_the_seed_axis(project: Path) -> None:
    _commit(
        project,
        "train.py",
        "import argparse, random\n"
        "parser = argparse.ArgumentParser()\n"
        "parser.add_argument('--rs', type=int, default=3)\n"
        "parser.add_argument('--lr', type=float, default=0.1)\n"
        "random.seed(parser.parse_args().rs)\n",
    )
    three = _run("--", sys.executable, "train.py")
    four = _run("--", sys.executable, "train.py", "--rs", "4")
    both = _run("--", sys.executable, "train.py", "--rs", "4", "--lr", "0.2")

    assert _axes(three, four) == ["seed"]  # not config.rs and seed: one change, once
    assert _axes(three, both) == ["config.lr", "seed"]
    found = json.loads(gitexp("diff", three, both, "--json").stdout)
    assert [(n["run"], n["axis"]) for n in found["neighbours"]] == [(four, "seed")]


def test_a_staged_parse_records_both_parsers(project: Path) -> None:
    # A config parser reads its option first, the main parser the rest (as timm does).
    _commit(
        project,
        "train.py",
        "import argparse\n"
        "first = argparse.ArgumentParser(add_help=False)\n"
        "first.add_argument('-c', '--config', default='')\n"
        "known, remaining = first.parse_known_args()\n"
        "main = argparse.ArgumentParser()\n"
        "main.add_argument('--lr', type=float, default=0.1)\n"
        "main.parse_args(remaining)\n"
        "other = argparse.ArgumentParser()\n"
        "other.add_argument('--fake', default=1)\n"
        "other.parse_args(['--fake', '2'])  # a list made up in code: not the command line\n",
    )
    run_id = _run("--", sys.executable, "train.py", "-c", "exp")
    assert _yaml(project, run_id, "config.yaml") == {
        "argv": {"_": ["train.py"]}, "config": "exp", "lr": 0.1,
    }  # fmt: skip


def test_a_parameter_the_script_never_read_is_recorded_as_the_script_used_it(
    project: Path,
) -> None:
    _commit(project, "train.py", SCRIPT)
    result = gitexp("run", "-p", "lr=0.3", "-p", "note=x", "--", sys.executable, "train.py")
    assert result.exit_code == 0, result.output
    assert "config lr set by --config or -p differ from what the script's parser" in result.stderr
    config = _yaml(project, run_ids(project)[0], "config.yaml")
    assert (config["lr"], config["note"]) == (1.0, "x")  # the parser's value; -p's own key kept


def test_a_reseed_every_epoch_is_not_a_seed_change(project: Path) -> None:
    _commit(
        project,
        "train.py",
        "import argparse, random\n"
        "parser = argparse.ArgumentParser()\n"
        "parser.add_argument('--epochs', type=int, default=2)\n"
        "parser.add_argument('--lr', type=float, default=20)  # an int default, as is common\n"
        "for epoch in range(parser.parse_args().epochs):\n"
        "    random.seed(0)\n",
    )
    two = _run("--", sys.executable, "train.py")
    five = _run("--", sys.executable, "train.py", "--epochs", "5")
    typed = _run("--", sys.executable, "train.py", "--lr", "20")

    assert _axes(two, five) == ["config.epochs"]  # reseeded 1 and 4 times: the same seeds
    assert _axes(two, typed) == []  # 20 and 20.0: the script computes the same


def test_options_read_from_argv_name_the_script_from_the_repository_root(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (project / "sub").mkdir()
    _commit(project, "sub/train.py", "print('no parser')\n")
    at_root = _run("--", sys.executable, "sub/train.py", "--lr", "1")
    monkeypatch.chdir(project / "sub")
    assert gitexp("run", "--", sys.executable, "train.py", "--lr", "1").exit_code == 0
    inside = run_ids(project)[0]

    assert _yaml(project, inside, "config.yaml") == {"argv": {"_": ["sub/train.py"], "lr": 1}}
    assert _axes(at_root, inside) == []


def test_an_edited_default_is_one_change_shown_in_code_and_config(project: Path) -> None:
    _commit(project, "train.py", SCRIPT)
    before = _run("--", sys.executable, "train.py")
    (project / "train.py").write_text(SCRIPT.replace("default=3)", "default=5)"))
    edited = _run("--", sys.executable, "train.py")  # uncommitted: in the snapshot

    result = gitexp("diff", before, edited)

    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[1] == "  config.epochs: 3 → 5 (also code)"
    files = {h.rsplit("/", 1)[-1] for h in result.stdout.splitlines() if h.startswith("diff --git")}
    assert files == {"train.py", "config.yaml"}  # both sides of the one change are shown


@pytest.mark.slow
def test_an_edited_default_with_another_edit_is_two_changes(project: Path) -> None:
    _commit(project, "train.py", SCRIPT)
    before = _run("--", sys.executable, "train.py")
    edited = SCRIPT.replace("default=3)", "default=5)").replace("np.random.seed", "np.random.seed")
    (project / "train.py").write_text(edited + "print('also this')\n")
    both = _run("--", sys.executable, "train.py")
    (project / "train.py").write_text(SCRIPT.replace("default=3)", "default=5)  # 5: more"))
    commented = _run("--", sys.executable, "train.py")

    assert _axes(before, both) == ["code", "config.epochs"]
    assert _axes(before, commented) == ["code", "config.epochs"]  # a comment is not a literal


@pytest.mark.parametrize(
    ("old", "new", "swap"),
    [
        (
            "p.add_argument('--lr', default=0.1)",
            "p.add_argument('--lr', default=1e-3)",
            ("0.1", "1e-3"),
        ),
        ('    default="LSTM",', '    default="GRU",', ('"LSTM"', '"GRU"')),
        ("x = f(200, 200)", "x = f(400, 400)", None),  # two places
        ("same", "same", None),
        ("lr = -0.5", "lr = 0.5", ("-0.5", "0.5")),
    ],
)
def test_literal_swap_finds_the_one_literal_that_changed(
    old: str, new: str, swap: tuple[str, str] | None
) -> None:
    assert axes.literal_swap(old, new) == swap


def test_a_token_in_the_training_process_argv_never_reaches_the_config(project: Path) -> None:
    token = "ghp_" + "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8"
    code = f"import argparse; argparse.ArgumentParser().parse_args()  # {token}"
    run_id = _run("--", sys.executable, "-c", code)
    config = _file(project, run_id, "config.yaml")
    assert token not in config and "argv" in config  # the program is named, redacted
    assert token not in _file(project, run_id, "run.yaml")
