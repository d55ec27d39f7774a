"""`gitexp diff`: axes, the one-axis rule and the git diff, on real runs in real repositories."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from gitexp import yamlio

from .conftest import dvc, git, gitexp, gitexp_process, on_terminal, run_ids, sealed

TRAIN = "import sys\nprint('training', sys.argv[1:])\n"
KINDS = ("code", "config", "data", "env", "seed")
# The axis each kind of change in the matrix below makes.
AXIS = {
    "code": "code",
    "config": "config.argv.lr",
    "data": "data.data/train.csv",
    "env": "env",
    "seed": "seed",
}
FILE = {
    "code": "train.py",
    "config": "config.yaml",
    "data": "data.yaml",
    "env": "env.yaml",
    "seed": "seeds.yaml",
}

Runs = dict[frozenset[str], str]


def _start(root: Path) -> None:
    root.mkdir(exist_ok=True)
    (root / "train.py").write_text(TRAIN)
    git(root, "init", "-q")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "initial")


def _record(root: Path, changes: frozenset[str], versions: list[tuple[bytes, bytes]],
            monkeypatch: pytest.MonkeyPatch) -> str:  # fmt: skip
    """One run from the base state with `changes` applied; the working tree is left dirty."""
    (root / "train.py").write_text(TRAIN + ("loss = 'focal'\n" if "code" in changes else ""))
    content, pointer = versions["data" in changes]
    (root / "data" / "train.csv").write_bytes(content)
    (root / "data" / "train.csv.dvc").write_bytes(pointer)
    monkeypatch.setenv("OMP_NUM_THREADS", "2" if "env" in changes else "1")
    seed = "1" if "seed" in changes else "0"
    lr = "0.2" if "config" in changes else "0.1"
    result = gitexp("run", "--seed", seed, "--", sys.executable, "train.py", "--lr", lr)
    assert result.exit_code == 0, result.output
    return run_ids(root)[0]


@pytest.fixture(scope="module")
def matrix(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Runs]]:
    """A base run, one run per kind of change, and one per pair of kinds."""
    with pytest.MonkeyPatch.context() as mp, sealed(tmp_path_factory.mktemp("home"), mp):
        root = tmp_path_factory.mktemp("matrix") / "project"
        _start(root)
        mp.chdir(root)
        assert gitexp("init").exit_code == 0
        versions = []
        for content in (b"x,y\n1,2\n", b"x,y\n1,2\n3,4\n"):
            (root / "data").mkdir(exist_ok=True)
            (root / "data" / "train.csv").write_bytes(content)
            dvc(root, "add", "data/train.csv")
            versions.append((content, (root / "data" / "train.csv.dvc").read_bytes()))
        (root / "data" / "train.csv.dvc").write_bytes(versions[0][1])
        git(root, "add", "-A")
        git(root, "commit", "-q", "-m", "data")
        kinds = [frozenset()] + [
            frozenset(c) for n in (1, 2) for c in itertools.combinations(KINDS, n)
        ]
        runs = {changes: _record(root, changes, versions, mp) for changes in kinds}
        yield root, runs


@pytest.fixture
def runs(matrix: tuple[Path, Runs], monkeypatch: pytest.MonkeyPatch) -> Runs:
    monkeypatch.chdir(matrix[0])
    return matrix[1]


def _axes(a: str, b: str, *extra: str) -> list[str]:
    result = gitexp("diff", a, b, "--json", *extra)
    assert result.exit_code == 0, result.output
    return [axis["axis"] for axis in json.loads(result.stdout)["axes"]]


def _headers(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith("diff --git")]


@pytest.mark.parametrize("kind", KINDS)
def test_one_axis_alone_is_diffed(runs: Runs, kind: str) -> None:
    base, other = runs[frozenset()], runs[frozenset({kind})]
    assert _axes(base, other) == [AXIS[kind]]

    result = gitexp("diff", base, other)

    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(f"{base} → {other}: 1 axis differs\n  {AXIS[kind]}: ")
    if kind == "code":  # the changed pointer file of the data runs is never code
        assert _headers(result.stdout) == ["diff --git a/train.py b/train.py"]
        assert result.stdout.splitlines()[1].endswith("… (train.py)")
        assert "+loss = 'focal'" in result.stdout
    else:
        path = f"experiments/{{}}/{FILE[kind]}"
        assert _headers(result.stdout) == [
            f"diff --git a/{path.format(base)} b/{path.format(other)}"
        ]


def test_axis_values_are_named(runs: Runs) -> None:
    base = runs[frozenset()]
    lines = {
        kind: gitexp("diff", base, runs[frozenset({kind})]).stdout.splitlines()[1]
        for kind in ("config", "env", "seed")
    }
    assert lines == {
        "config": "  config.argv.lr: 0.1 → 0.2",
        "env": "  env: variables.OMP_NUM_THREADS 1 → 2",
        "seed": "  seed: 0 → 1",
    }


@pytest.mark.parametrize("pair", list(itertools.combinations(KINDS, 2)))
def test_two_axes_are_refused_with_the_valid_comparisons(runs: Runs, pair: tuple[str, str]) -> None:
    base, other = runs[frozenset()], runs[frozenset(pair)]

    result = gitexp("diff", base, other)

    assert result.exit_code == 3
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert lines[0] == (
        f"Error: refusing to diff {base} and {other}: 2 axes differ, so no difference "
        "between their results can be put down to one of them"
    )
    assert sorted(line.split(":")[0].strip() for line in lines[1:3]) == sorted(
        AXIS[k] for k in pair
    )
    assert lines[3] == f"runs that differ from {base} on one of these axes alone:"
    expected = {f"  {AXIS[k]}: gitexp diff {base} {runs[frozenset({k})]}" for k in pair}
    assert set(lines[4:6]) == expected
    assert lines[6] == "use --force to see the diff anyway (--axis AXIS shows one axis of it)"


def test_forced_diff_says_it_is_confounded(runs: Runs) -> None:
    base, other = runs[frozenset()], runs[frozenset({"code", "config"})]

    result = gitexp("diff", base, other, "--force")

    assert result.exit_code == 0
    assert result.stdout.startswith(
        "confounded: 2 axes differ, so no difference below can be put down to one of them\n"
    )
    assert len(_headers(result.stdout)) == 2


def test_axis_option_shows_one_axis(runs: Runs) -> None:
    base, other = runs[frozenset()], runs[frozenset({"code", "config"})]

    result = gitexp("diff", base, other, "--force", "--axis", "config.argv.*")

    assert [h.split()[-1] for h in _headers(result.stdout)] == [
        f"b/experiments/{other}/config.yaml"
    ]
    assert "--axis" not in result.stderr


def test_json_lists_axes_values_and_neighbours(runs: Runs) -> None:
    base, other = runs[frozenset()], runs[frozenset({"config", "data"})]

    result = gitexp("diff", base, other, "--json")

    assert result.exit_code == 0  # a report for scripts, not a diff: nothing to refuse
    found = json.loads(result.stdout)
    assert found["confounded"] is True
    pins = [yamlio.load(git(Path.cwd(), "show", f"gitexp/runs:experiments/{r}/data.yaml"), "d")
            for r in (base, other)]  # fmt: skip
    assert found["axes"] == [
        {"axis": "config.argv.lr", "a": 0.1, "b": 0.2},
        {
            "axis": "data.data/train.csv",
            "a": pins[0]["datasets"][0]["md5"],
            "b": pins[1]["datasets"][0]["md5"],
        },
    ]
    assert {(n["run"], n["axis"]) for n in found["neighbours"]} == {
        (runs[frozenset({"config"})], "config.argv.lr"),
        (runs[frozenset({"data"})], "data.data/train.csv"),
    }


def test_a_run_against_itself_differs_on_nothing(runs: Runs) -> None:
    base = runs[frozenset()]

    result = gitexp("diff", base, base)

    assert result.exit_code == 0
    assert result.output == f"{base} → {base}: no axis differs\n"


def test_refusal_exit_status_in_a_real_process(runs: Runs) -> None:
    base, other = runs[frozenset()], runs[frozenset({"env", "seed"})]

    process = gitexp_process(["diff", base, other], Path.cwd(), stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE)  # fmt: skip
    out, err = process.communicate()

    assert process.returncode == 3
    assert out == ""
    assert err.startswith(f"Error: refusing to diff {base} and {other}: 2 axes differ")
    assert "Traceback" not in err


def test_stat_and_name_only(runs: Runs) -> None:
    base, other = runs[frozenset()], runs[frozenset({"config"})]
    path = f"experiments/{other}/config.yaml"

    assert gitexp("diff", base, other, "--name-only").stdout == f"{path}\n"
    assert gitexp("diff", base, other, "--stat").stdout.endswith(
        f" {path} | 2 +-\n 1 file changed, 1 insertion(+), 1 deletion(-)\n"
    )


def test_colour_follows_the_color_option(runs: Runs) -> None:
    base, other = runs[frozenset()], runs[frozenset({"config"})]

    coloured = gitexp("diff", base, other, "--color=always").stdout
    plain = gitexp("diff", base, other, "--color=never").stdout

    assert "\x1b[31m-  lr: 0.1\x1b[m" in coloured and "\x1b[32m+  lr: 0.2\x1b[m" in coloured
    assert "\x1b[" not in plain


def _on_terminal(args: list[str], cwd: Path, env: dict[str, str]) -> str:
    return on_terminal(args, cwd, env).replace("\r\n", "\n")


def test_a_terminal_gets_the_diff_through_the_pager(runs: Runs) -> None:
    base, other = runs[frozenset()], runs[frozenset({"config"})]
    env = {**os.environ, "GIT_PAGER": "sed 's/^/paged: /'"}

    paged = _on_terminal(["diff", base, other], Path.cwd(), env)
    direct = _on_terminal(["diff", base, other, "--no-pager"], Path.cwd(), env)

    assert paged.startswith(f"paged: {base} → {other}")
    assert "paged: \x1b[1mdiff --git" not in paged  # NO_COLOR is set by the test fixture
    assert direct.startswith(f"{base} → {other}")


# --- single scenarios, each in its own repository ------------------------------------------


def _run(*args: str) -> str:
    result = gitexp("run", *args)
    assert result.exit_code == 0, result.output
    return run_ids(Path.cwd())[0]


def _snapshot(root: Path, run_id: str) -> str:
    code = yamlio.load(git(root, "show", f"gitexp/runs:experiments/{run_id}/code.yaml"), "c")
    return str(code["snapshot"])


def test_a_config_file_in_git_is_config_not_code(project: Path) -> None:
    (project / "exp.yaml").write_text("model:\n  width: 64\n")
    git(project, "add", "-A")
    git(project, "commit", "-q", "-m", "config")
    first = _run("--config", "exp.yaml", "--", sys.executable, "train.py")
    (project / "exp.yaml").write_text("model:\n  width: 128\n")
    git(project, "commit", "-q", "-am", "wider")
    second = _run("--config", "exp.yaml", "--", sys.executable, "train.py")

    assert _axes(first, second) == ["config.model.width"]
    assert gitexp("diff", first, second, "--name-only").stdout == (
        f"experiments/{second}/config.yaml\n"
    )


def test_groups_and_ignored_axes_from_the_settings(project: Path) -> None:
    first = _run("-p", "optim.lr=0.1", "-p", "optim.momentum=0.9", "-p", "logging.dir=a", "--",
                 sys.executable, "train.py")  # fmt: skip
    second = _run("-p", "optim.lr=0.2", "-p", "optim.momentum=0.95", "-p", "logging.dir=b", "--",
                  sys.executable, "train.py")  # fmt: skip
    assert gitexp("diff", first, second).exit_code == 3  # three axes

    (project / ".gitexp.yaml").write_text(
        "axes:\n  groups:\n    optimizer: ['optim.*']\n  ignore: ['logging.*']\n"
    )
    result = gitexp("diff", first, second)

    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[:3] == [
        f"{first} → {second}: 1 axis differs",
        "  optimizer: config.optim.lr 0.1 → 0.2, config.optim.momentum 0.9 → 0.95",
        "  also differ, ignored by axes.ignore in .gitexp.yaml: config.logging.dir",
    ]
    assert "+  lr: 0.2" in result.stdout and "+  momentum: 0.95" in result.stdout
    # The ignored key's change is left out of the diff: it shows as it was in the first run.
    assert "   dir: a\n" in result.stdout and "dir: b" not in result.stdout


def test_env_can_be_ignored(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    first = _run("--", sys.executable, "train.py", "--lr", "0.1")
    monkeypatch.setenv("OMP_NUM_THREADS", "8")
    second = _run("--", sys.executable, "train.py", "--lr", "0.2")
    assert _axes(first, second) == ["config.argv.lr", "env"]

    (project / ".gitexp.yaml").write_text("axes:\n  ignore: [env]\n")

    assert _axes(first, second) == ["config.argv.lr"]


def test_the_gpu_a_run_used_is_not_an_axis(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")
    first = _run("--", sys.executable, "train.py")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3")
    second = _run("--", sys.executable, "train.py")

    assert _axes(first, second) == []


def _without_similarity(patch: str) -> str:
    return "\n".join(line for line in patch.split("\n") if not line.startswith("similarity "))


def test_binary_and_renamed_files_agree_with_git_diff(project: Path) -> None:
    (project / "utils.py").write_text("".join(f"def f{i}():\n    return {i}\n" for i in range(20)))
    (project / "weights.bin").write_bytes(bytes(range(256)))
    git(project, "add", "-A")
    git(project, "commit", "-q", "-m", "more")
    first = _run("--", sys.executable, "train.py")
    git(project, "mv", "utils.py", "helpers.py")
    with open(project / "helpers.py", "a") as f:
        f.write("def g():\n    return 1\n")
    (project / "weights.bin").write_bytes(bytes(range(255, -1, -1)))
    second = _run("--", sys.executable, "train.py")

    result = gitexp("diff", first, second)

    assert result.exit_code == 0
    code = result.stdout.split("\n\n", 1)[1]
    expected = git(project, "diff", _snapshot(project, first), _snapshot(project, second))
    # libgit2 estimates a rename's similarity its own way: the percentage may differ by a few.
    assert _without_similarity(code) == _without_similarity(expected)
    assert "rename from utils.py\nrename to helpers.py\n" in code
    assert "Binary files a/weights.bin and b/weights.bin differ\n" in code


def _runs_of_api_script(project: Path, config: str) -> tuple[str, str]:
    """Two runs, --lr 0.1 and 0.2, of a script that parses --lr and gives gitexp.init
    `config`."""
    (project / "train.py").write_text(
        "import argparse, gitexp\n"
        "parser = argparse.ArgumentParser()\n"
        "parser.add_argument('--lr', type=float)\n"
        "args = parser.parse_args()\n"
        f"with gitexp.init(config={config}):\n"
        "    pass\n"
    )
    git(project, "commit", "-q", "-am", "api")
    first = _run("--", sys.executable, "train.py", "--lr", "0.1")
    return first, _run("--", sys.executable, "train.py", "--lr", "0.2")


def test_an_option_the_script_copies_into_its_config_is_one_change(project: Path) -> None:
    first, second = _runs_of_api_script(project, "{'optim': {'lr': args.lr}}")

    result = gitexp("diff", first, second)

    assert result.exit_code == 0, result.output
    # The config given to gitexp.init is the record's: the option is not kept beside it.
    assert result.stdout.splitlines()[1] == "  config.optim.lr: 0.1 → 0.2"
    assert result.stdout.count("+  lr: 0.2") == 1


def test_an_option_the_script_does_not_hand_to_gitexp_init_is_still_a_change(
    project: Path,
) -> None:
    first, second = _runs_of_api_script(project, "{'width': 8}")

    assert _axes(first, second) == ["config.argv.lr"]


def test_unseeded_runs_warn_that_differences_may_be_noise(project: Path) -> None:
    first = _run("--", sys.executable, "train.py", "--lr", "0.1")
    second = _run("--", sys.executable, "train.py", "--lr", "0.2")

    result = gitexp("diff", first, second)

    assert _axes(first, second) == ["config.argv.lr"]  # neither seeded: no seed axis
    assert result.stderr == (
        "warning: neither run was seeded, so differences between their results may be noise\n"
    )


@pytest.mark.slow
def test_a_deleted_dataset_pointer_is_a_data_change(project: Path) -> None:
    assert gitexp("init").exit_code == 0
    (project / "data").mkdir()
    (project / "data" / "train.csv").write_text("x,y\n1,2\n")
    dvc(project, "add", "data/train.csv")
    git(project, "add", "-A")
    git(project, "commit", "-q", "-m", "data")
    first = _run("--", sys.executable, "train.py")
    git(project, "rm", "-q", "data/train.csv.dvc")
    git(project, "commit", "-q", "-m", "no more data")
    second = _run("--", sys.executable, "train.py")

    result = gitexp("diff", first, second, "--json")

    md5 = yamlio.load(git(project, "show", "HEAD~1:data/train.csv.dvc"), "p")["outs"][0]["md5"]
    assert json.loads(result.stdout)["axes"] == [{"axis": "data.data/train.csv", "a": md5}]
    text = gitexp("diff", first, second).stdout
    assert "  data.data/train.csv: " + md5[:8] + "… → (absent)" in text
    assert _headers(text) == [
        f"diff --git a/experiments/{first}/data.yaml b/experiments/{second}/data.yaml"
    ]


def test_a_dependency_upgrade_is_the_env_axis(
    project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    site = tmp_path / "site"
    (site / "tinylib-1.0.dist-info").mkdir(parents=True)
    (site / "tinylib-1.0.dist-info" / "METADATA").write_text("Name: tinylib\nVersion: 1.0\n")
    monkeypatch.setenv("PYTHONPATH", str(site))
    first = _run("--", sys.executable, "train.py")
    (site / "tinylib-1.0.dist-info").rename(site / "tinylib-2.0.dist-info")
    (site / "tinylib-2.0.dist-info" / "METADATA").write_text("Name: tinylib\nVersion: 2.0\n")
    second = _run("--", sys.executable, "train.py")

    result = gitexp("diff", first, second)

    assert result.exit_code == 0
    assert result.stdout.splitlines()[1] == "  env: packages.tinylib 1.0 → 2.0"
    assert "-- tinylib==1.0\n+- tinylib==2.0\n" in result.stdout


def test_unknown_run_is_one_line(project: Path) -> None:
    first = _run("--", sys.executable, "train.py")

    result = gitexp("diff", first, "nope")

    assert result.exit_code == 1
    assert result.stderr == "Error: no run 'nope'; see `gitexp log`\n"


def test_neighbours_follow_the_ignore_setting(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    base = _run("--seed", "0", "--", sys.executable, "train.py", "--lr", "0.1")
    other = _run("--seed", "1", "--", sys.executable, "train.py", "--lr", "0.2")
    monkeypatch.setenv("OMP_NUM_THREADS", "8")
    lr_and_env = _run("--seed", "0", "--", sys.executable, "train.py", "--lr", "0.2")

    def neighbours() -> list[tuple[str, str]]:
        found = json.loads(gitexp("diff", base, other, "--json").stdout)["neighbours"]
        return [(n["run"], n["axis"]) for n in found]

    assert neighbours() == []  # lr_and_env differs from base on two axes
    (project / ".gitexp.yaml").write_text("axes:\n  ignore: [env]\n")
    assert neighbours() == [(lr_and_env, "config.argv.lr")]


def test_a_reader_that_stops_early_is_no_error(project: Path) -> None:
    (project / "big.txt").write_text("".join(f"line {i}\n" for i in range(20_000)))
    first = _run("--seed", "0", "--", sys.executable, "train.py")
    (project / "big.txt").write_text("".join(f"LINE {i}\n" for i in range(20_000)))
    second = _run("--seed", "0", "--", sys.executable, "train.py")
    process = gitexp_process(["diff", first, second], project, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE)  # fmt: skip
    assert process.stdout is not None and process.stderr is not None

    # The diff is larger than a pipe holds: gitexp is still writing when the reader leaves.
    line = process.stdout.readline()
    process.stdout.close()
    process.wait()

    assert line == f"{first} → {second}: 1 axis differs\n"
    assert process.stderr.read() == ""


def test_a_seed_given_as_an_option_is_the_seed_axis(project: Path) -> None:
    (project / "train.py").write_text(
        "import argparse, gitexp\n"
        "parser = argparse.ArgumentParser()\n"
        "parser.add_argument('--seed', type=int)\n"
        "parser.add_argument('--lr', type=float)\n"
        "args = parser.parse_args()\n"
        "gitexp.seed_everything(args.seed)\n"
        "with gitexp.init():\n"
        "    pass\n"
    )
    git(project, "commit", "-q", "-am", "seeded")
    base = _run("--", sys.executable, "train.py", "--seed", "1", "--lr", "0.1")
    reseeded = _run("--", sys.executable, "train.py", "--seed", "2", "--lr", "0.1")
    both = _run("--", sys.executable, "train.py", "--seed", "2", "--lr", "0.2")

    result = gitexp("diff", base, reseeded)

    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[1] == "  seed: 1 → 2"
    assert {h.rsplit("/", 1)[-1] for h in _headers(result.stdout)} == {"config.yaml", "seeds.yaml"}
    found = json.loads(gitexp("diff", base, both, "--json").stdout)
    assert [a["axis"] for a in found["axes"]] == ["config.lr", "seed"]  # the parser's keys
    assert [(n["run"], n["axis"]) for n in found["neighbours"]] == [(reseeded, "seed")]


def test_a_determinism_variable_is_the_seed_axis(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = _run("--seed", "0", "--", sys.executable, "train.py")
    monkeypatch.setenv("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    second = _run("--seed", "0", "--", sys.executable, "train.py")

    assert _axes(first, second) == ["seed"]  # not env, although env.yaml records it too


def test_a_run_whose_snapshot_is_missing_leaves_other_diffs_alone(
    project: Path, tmp_path: Path
) -> None:
    """A record pulled without its code (its snapshot not here) is no seed sibling of
    anything; it does not stop `diff` of two other runs."""
    for lr, seed in (("0.1", "0"), ("0.2", "0"), ("0.1", "1")):
        result = gitexp("run", "--seed", seed, "--", sys.executable, "train.py", "--lr", lr)
        assert result.exit_code == 0, result.output
    first, second, third = sorted(run_ids(project))
    tree = tmp_path / "branch"
    git(project, "worktree", "add", "-q", str(tree), "gitexp/runs")
    code = tree / "experiments" / third / "code.yaml"
    text = code.read_text()
    snapshot = yamlio.load(text, "code.yaml")["snapshot"]
    code.write_text(text.replace(snapshot, "ab" * 20))
    git(tree, "commit", "-q", "-am", "a run from elsewhere, its code not fetched")
    git(project, "worktree", "remove", str(tree))

    result = gitexp("diff", "--no-pager", first, second)

    assert result.exit_code == 0, result.output
    assert "config.argv.lr: 0.1 → 0.2" in result.stdout
