"""Bad input is refused at the edge: one sentence, the right exit status, nothing written."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pygit2
import pytest

from gitexp import config, limits, seeds, snapshot, yamlio
from gitexp.errors import GitexpError, UsageError
from gitexp.workspace import open_workspace

from .conftest import git, gitexp, run_ids

PASS = (sys.executable, "-c", "pass")


def _nothing_written(root: Path) -> None:
    """No runs branch and no run in progress: a refused run leaves no trace."""
    assert git(root, "for-each-ref", "--format=%(refname)") == "refs/heads/main\n"
    pending = root / ".git" / "gitexp" / "pending"
    assert not pending.exists() or list(pending.iterdir()) == []


def _refused(root: Path, *args: str) -> str:
    """`gitexp run ARGS -- python -c pass`, which must exit 2 and write nothing: its stderr."""
    result = gitexp("run", *args, "--", *PASS)
    assert result.exit_code == 2, result.output
    _nothing_written(root)
    return result.stderr


# Seeds --------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", ["-1", "4294967296", "99999999999999999999999999"])
def test_out_of_range_seed_is_a_usage_error(project: Path, seed: str) -> None:
    stderr = _refused(project, "--seed", seed)
    assert stderr.endswith(
        f"Error: Invalid value for '--seed': {seed} is not in the range 0<=x<=4294967295.\n"
    )


def test_largest_seed_reaches_a_python_child(project: Path) -> None:
    show = "import os; print(os.environ['PYTHONHASHSEED'], os.environ['GITEXP_SEED'])"
    result = gitexp("run", "--seed", "4294967295", "--", sys.executable, "-c", show)
    assert result.exit_code == 0
    assert result.stdout == "4294967295 4294967295\n"


@pytest.mark.parametrize("seed", [-1, 2**32, 10**30])
def test_seed_everything_refuses_an_out_of_range_seed_before_seeding(
    seed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PYTHONHASHSEED", raising=False)
    with pytest.raises(UsageError) as refused:
        seeds.seed_everything(seed)
    assert str(refused.value) == f"seed {seed} is out of range; use a seed from 0 to 4294967295"
    assert refused.value.exit_code == 2
    assert "PYTHONHASHSEED" not in os.environ


def test_child_variables_refuse_an_out_of_range_seed() -> None:
    assert seeds.child_variables(0) == {"GITEXP_SEED": "0", "PYTHONHASHSEED": "0"}
    with pytest.raises(UsageError, match=r"^seed 4294967296 is out of range"):
        seeds.child_variables(2**32)


# Config files -------------------------------------------------------------------------------


def _bomb(levels: int) -> str:
    """A "billion laughs" document: tiny on disk, 10**levels values once its aliases expand."""
    lines = ["l0: &l0 [x, x, x, x, x, x, x, x, x, x]"]
    for level in range(1, levels):
        lines.append(f"l{level}: &l{level} [" + ", ".join([f"*l{level - 1}"] * 10) + "]")
    return "\n".join(lines) + "\n"


def test_alias_bomb_is_refused_in_a_moment(project: Path) -> None:
    (project / "bomb.yaml").write_text(_bomb(9))  # 10**9 values: gigabytes once expanded
    started = time.monotonic()
    stderr = _refused(project, "--config", "bomb.yaml")
    assert time.monotonic() - started < 10
    assert stderr == (
        f"Error: config file {project / 'bomb.yaml'} holds more than 100,000 keys and values "
        "(each use of a YAML alias counts); make it smaller\n"
    )


def test_small_alias_bomb_is_refused_by_the_count_of_uses(tmp_path: Path) -> None:
    path = tmp_path / "bomb.yaml"
    path.write_text(_bomb(5))  # 26 lines, 111,110 values in use
    with pytest.raises(UsageError, match="holds more than 100,000 keys and values"):
        config.resolve([path], [], {})


def test_alias_to_an_ancestor_is_refused(project: Path) -> None:
    (project / "loop.yaml").write_text("a: &a\n  b: *a\n")
    stderr = _refused(project, "--config", "loop.yaml")
    assert stderr == (
        f"Error: config file {project / 'loop.yaml'} nests more than 64 levels deep (a YAML "
        "alias counts where it is used); flatten it\n"
    )


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("deep.yaml", "a: " + "[" * 20_000 + "]" * 20_000 + "\n"),
        ("deep.json", '{"a": ' + "[" * 20_000 + "]" * 20_000 + "}"),
        ("deep.toml", "a = " + "[" * 20_000 + "]" * 20_000 + "\n"),
    ],
)
def test_deep_documents_are_refused(project: Path, name: str, text: str) -> None:
    (project / name).write_text(text)
    stderr = _refused(project, "--config", name)
    assert stderr == (
        f"Error: config file {project / name} nests more than 64 levels deep (a YAML alias "
        "counts where it is used); flatten it\n"
    )


def _nested(levels: int) -> str:
    return "a: " + "{b: " * (levels - 1) + "1" + "}" * (levels - 1) + "\n"


def test_depth_limit_is_exact(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(_nested(64))
    assert config.load_file(path)["a"]["b"]["b"]
    path.write_text(_nested(65))
    with pytest.raises(UsageError, match="nests more than 64 levels deep"):
        config.load_file(path)


def test_config_file_over_the_size_limit_is_refused(project: Path) -> None:
    big = project / "big.json"
    big.write_text(json.dumps({"a": "x" * (4 * 1024 * 1024)}))
    stderr = _refused(project, "--config", "big.json")
    assert stderr == (
        f"Error: config file {big} is larger than the 4 MiB gitexp reads; make it smaller\n"
    )


def test_recorded_config_never_holds_yaml_anchors(project: Path) -> None:
    (project / "c.yaml").write_text(
        "base: &base {lr: 0.1, betas: [0.9, 0.99]}\nfinetune: *base\nwhen: &d 2024-01-02\n"
        "again: *d\n"
    )
    result = gitexp("run", "--config", "c.yaml", "--", *PASS)
    assert result.exit_code == 0
    (run_id,) = run_ids(project)
    recorded = git(project, "show", f"gitexp/runs:experiments/{run_id}/config.yaml")
    assert recorded == (
        "again: 2024-01-02\n"
        "argv:\n"
        "  _:\n"
        "  - -c\n"
        "  - pass\n"
        "base:\n"
        "  betas:\n"
        "  - 0.9\n"
        "  - 0.99\n"
        "  lr: 0.1\n"
        "finetune:\n"
        "  betas:\n"
        "  - 0.9\n"
        "  - 0.99\n"
        "  lr: 0.1\n"
        "when: 2024-01-02\n"
    )


def test_dump_writes_a_shared_value_out_in_full() -> None:
    shared = {"lr": 0.1}
    assert yamlio.dump({"a": shared, "b": shared}) == b"a:\n  lr: 0.1\nb:\n  lr: 0.1\n"


def test_plain_copy_shares_nothing_and_never_recurses() -> None:
    shared = [1, 2]
    copy = limits.plain({"a": shared, "b": (shared, 3)}, "x")
    assert copy == {"a": [1, 2], "b": [[1, 2], 3]}
    assert copy["a"] is not copy["b"][0]
    deep: list[object] = []
    for _ in range(50_000):  # far past Python's recursion limit
        deep = [deep]
    with pytest.raises(UsageError, match=r"^x nests more than 64 levels deep"):
        limits.plain(deep, "x")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{1: a, '1': b}", "config file {path}: 1 is given twice (keys are compared as text); "
         "keep one"),
        ("a: {b: !!set {x}}", "config file {path}: a.b is a set value, which a config cannot "
         "hold; write it as text, a number, a list or a mapping"),
        ("a: {? [x]: 1}", "config file {path}: a key under a is a tuple; keys must be names or "
         "numbers"),
    ],
)  # fmt: skip
def test_values_without_a_plain_form_are_refused(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(UsageError) as refused:
        config.load_file(path)
    assert str(refused.value) == message.format(path=path)


def test_huge_integer_is_invalid_yaml_not_a_crash(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("a: " + "9" * 5000 + "\n")
    with pytest.raises(GitexpError, match=r"c\.yaml is not valid YAML \(Exceeds the limit"):
        config.load_file(path)


def test_toml_local_time_is_recorded_as_text(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text("start = 07:32:00\n")
    assert config.resolve([path], [], {}) == {"argv": {}, "start": "07:32:00"}


# -p overrides -------------------------------------------------------------------------------


@pytest.mark.parametrize("key", ["../x", "a..b", ".a", "a.", "a/b", "a b", "ä"])
def test_override_key_must_be_dotted_names(project: Path, key: str) -> None:
    stderr = _refused(project, "-p", f"{key}=2")
    assert stderr == (
        f"Error: parameter key {key!r} must be dotted names made of letters, digits, _ and -, "
        "e.g. -p optim.lr=0.1\n"
    )


@pytest.mark.parametrize("key", ["argv", "argv.lr"])
def test_override_under_argv_is_refused(project: Path, key: str) -> None:
    stderr = _refused(project, "-p", f"{key}=1")
    assert stderr == (
        f"Error: parameter key {key!r} is under argv, which holds the command's own options; "
        "change the option on the command, or pick another key\n"
    )


def test_override_key_deeper_than_the_limit_is_refused(project: Path) -> None:
    key = ".".join(["a"] * 500)
    stderr = _refused(project, "-p", f"{key}=1")
    assert stderr == (
        f"Error: parameter key {key[:40]}… has 500 levels, more than the 64 a config may nest; "
        "use a shorter key\n"
    )


def test_override_key_and_value_together_deeper_than_the_limit(project: Path) -> None:
    key = ".".join(["a"] * 60)
    stderr = _refused(project, "-p", f"{key}=" + "[" * 5 + "]" * 5)
    assert stderr == (
        "Error: the config of --config files and -p parameters together nests more than 64 "
        "levels deep (a YAML alias counts where it is used); flatten it\n"
    )


def test_same_key_twice_with_two_values_is_refused(project: Path) -> None:
    stderr = _refused(project, "-p", "lr=0.1", "-p", "lr=0.2")
    assert stderr == "Error: parameter -p lr is given twice, as '0.1' and '0.2'; give it once\n"


def test_same_key_twice_with_one_value_is_fine() -> None:
    assert config.resolve([], ["lr=0.1", "lr=0.1", "x=.nan", "x=.NaN"], {})["lr"] == 0.1


@pytest.mark.parametrize("order", [["a=1", "a.b=2"], ["a.b=2", "a=1"]])
def test_key_inside_another_override_is_refused(project: Path, order: list[str]) -> None:
    stderr = _refused(project, "-p", order[0], "-p", order[1])
    assert stderr == (
        "Error: parameters -p a=… and -p a.b=… conflict, as a.b is a key inside a; give one "
        "of them\n"
    )


def test_override_value_alias_bomb_is_refused(project: Path) -> None:
    items = ["&l0 [x, x, x, x, x, x, x, x, x, x]"]
    for level in range(1, 6):  # each level: ten uses of the one before; 10**6 values in all
        items.append(f"&l{level} [" + ", ".join([f"*l{level - 1}"] * 10) + "]")
    stderr = _refused(project, "-p", "x=[" + ", ".join(items) + "]")
    assert stderr == (
        "Error: parameter -p x holds more than 100,000 keys and values (each use of a YAML "
        "alias counts); make it smaller\n"
    )


def test_override_value_too_deep_is_refused(project: Path) -> None:
    stderr = _refused(project, "-p", "x=" + "[" * 100_000)
    assert stderr == (
        "Error: parameter -p x nests more than 64 levels deep (a YAML alias counts where it "
        "is used); flatten it\n"
    )


def test_displayed_value_over_the_limits_stays_text() -> None:
    assert yamlio.typed_value("[" * 100) == "[" * 100
    assert yamlio.typed_value("[1, 2]") == [1, 2]


# .gitexp.yaml branch ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("branch", "message"),
    [
        ("refs/heads/main", "`branch` is 'refs/heads/main', a full ref name; give the name "
         "under refs/heads/, e.g. branch: main"),
        ("refs/tags/x", "`branch` is 'refs/tags/x', a full ref name; give the name under "
         "refs/heads/, e.g. branch: gitexp/runs"),
        ("../../evil", "`branch` '../../evil' is not a valid git branch name; use one that "
         "`git check-ref-format --branch` accepts, e.g. branch: gitexp/runs"),
        ("HEAD", "`branch` 'HEAD' is not a valid git branch name; use one that "
         "`git check-ref-format --branch` accepts, e.g. branch: gitexp/runs"),
        ("-x", "`branch` '-x' is not a valid git branch name; use one that "
         "`git check-ref-format --branch` accepts, e.g. branch: gitexp/runs"),
        ("runs.lock", "`branch` 'runs.lock' is not a valid git branch name; use one that "
         "`git check-ref-format --branch` accepts, e.g. branch: gitexp/runs"),
    ],
)  # fmt: skip
def test_bad_branch_setting_is_one_clear_error(project: Path, branch: str, message: str) -> None:
    (project / ".gitexp.yaml").write_text(f"branch: {json.dumps(branch)}\n")
    result = gitexp("run", "--", *PASS)
    assert result.exit_code == 1
    assert result.stderr == f"Error: .gitexp.yaml: {message}\n"
    _nothing_written(project)


def test_good_branch_setting_is_used(project: Path) -> None:
    (project / ".gitexp.yaml").write_text("branch: lab/records-2\n")
    assert gitexp("run", "--", *PASS).exit_code == 0
    assert "refs/heads/lab/records-2\n" in git(project, "for-each-ref", "--format=%(refname)")


def test_alias_bomb_in_settings_is_one_clear_error(project: Path) -> None:
    (project / ".gitexp.yaml").write_text("axes:\n  ignore: []\nbomb:\n" + _bomb(9))
    result = gitexp("run", "--", *PASS)
    assert result.exit_code == 1
    assert result.stderr == (
        "Error: .gitexp.yaml holds more than 100,000 keys and values (each use of a YAML "
        "alias counts); make it smaller\n"
    )


# Submodules ---------------------------------------------------------------------------------


@pytest.fixture
def with_submodule(project: Path, tmp_path: Path) -> Path:
    """The project with a submodule `lib` (a local repository), committed."""
    library = tmp_path / "library"
    library.mkdir()
    git(library, "init", "-q")
    (library / "lib.py").write_text("x = 1\n")
    (library / ".gitignore").write_text("*.log\n")
    git(library, "add", "-A")
    git(library, "commit", "-q", "-m", "lib")
    git(project, "-c", "protocol.file.allow=always", "submodule", "add", "-q", str(library), "lib")
    git(project, "commit", "-q", "-m", "add lib")
    return project


def test_clean_submodule_adds_nothing(with_submodule: Path) -> None:
    code = snapshot.capture(open_workspace(), "r1")
    assert (code.state.dirty, code.state.dirty_submodules, code.diff) == (False, {}, b"")
    assert b"dirty_submodules: {}\n" in code.state.to_yaml()


def test_dirty_submodule_is_recorded_in_code_diff(with_submodule: Path) -> None:
    lib = with_submodule / "lib"
    commit = git(lib, "rev-parse", "HEAD").strip()
    (lib / "lib.py").write_text("x = 2\n")
    (lib / "new.py").write_text("y = 1\n")
    (lib / "staged.py").write_text("z = 1\n")
    git(lib, "add", "staged.py")
    (lib / ".env").write_text("TOKEN=secret\n")
    (lib / "debug.log").write_text("ignored\n")

    code = snapshot.capture(open_workspace(), "r1")

    assert code.state.dirty
    assert code.state.submodules == {"lib": commit}
    assert code.state.snapshot == git(with_submodule, "rev-parse", "HEAD").strip()
    assert list(code.state.dirty_submodules) == ["lib"]
    assert code.state.dirty_submodules["lib"] == str(pygit2.hash(code.diff))
    assert [(item.path, item.reason) for item in code.state.left_out] == [
        ("lib/.env", "looks like a secret")
    ]
    text = code.diff.decode()
    assert text.startswith(
        "Submodule lib contains untracked content\n"
        "Submodule lib contains modified content\n"
        "diff --git a/lib/lib.py b/lib/lib.py\n"
    )
    assert "+x = 2\n" in text
    assert "diff --git a/lib/new.py b/lib/new.py\nnew file mode 100644\n" in text
    assert "diff --git a/lib/staged.py b/lib/staged.py\n" in text
    assert "secret" not in text and "ignored" not in text

    # code.diff rebuilds the submodule's working tree from its recorded commit.
    patch = with_submodule.parent / "code.diff"
    patch.write_bytes(code.diff)
    git(lib, "reset", "-q", "--hard")
    git(lib, "clean", "-q", "-fd")
    subprocess.run(["git", "apply", str(patch)], cwd=with_submodule, check=True)
    assert (lib / "lib.py").read_text() == "x = 2\n"
    assert (lib / "new.py").read_text() == "y = 1\n"
    assert (lib / "staged.py").read_text() == "z = 1\n"


def test_two_runs_with_other_submodule_edits_differ(with_submodule: Path) -> None:
    lib = with_submodule / "lib"
    (lib / "lib.py").write_text("x = 2\n")
    first = snapshot.capture(open_workspace(), "r1")
    (lib / "lib.py").write_text("x = 3\n")
    second = snapshot.capture(open_workspace(), "r2")
    assert first.diff != second.diff
    assert first.state.dirty_submodules != second.state.dirty_submodules


def test_submodule_path_with_unusual_bytes_is_quoted_as_git_does(with_submodule: Path) -> None:
    (with_submodule / "lib" / "café.py").write_text("x = 1\n")
    code = snapshot.capture(open_workspace(), "r1")
    assert b'diff --git "a/lib/caf\\303\\251.py" "b/lib/caf\\303\\251.py"\n' in code.diff
    assert b'+++ "b/lib/caf\\303\\251.py"\n' in code.diff


_LOAD_DEEP = """
import sys
from gitexp import config, yamlio
from gitexp.errors import GitexpError
from pathlib import Path
try:
    if sys.argv[1] == "record":
        yamlio.load("a: " + "[" * 30_000 + "]" * 30_000, "experiments/r1/run.yaml")
    else:
        Path("c.yaml").write_text("a: " + "[" * 100_000)
        config.load_file(Path("c.yaml"))
except GitexpError as e:
    print(e)
"""


@pytest.mark.parametrize(
    ("reader", "message"),
    [
        ("record", "experiments/r1/run.yaml nests more than 1000 levels deep; fix or remove it"),
        ("config", "config file c.yaml nests more than 64 levels deep (a YAML alias counts "
         "where it is used); flatten it"),
    ],
)  # fmt: skip
def test_deep_yaml_is_an_error_not_a_crash(tmp_path: Path, reader: str, message: str) -> None:
    # Some 25,000 levels overflow the C stack of ruamel's composer and kill the interpreter.
    done = subprocess.run(
        [sys.executable, "-c", _LOAD_DEEP, reader],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (done.returncode, done.stdout, done.stderr) == (0, message + "\n", "")


def test_yaml_nesting_short_of_a_thousand_levels_loads() -> None:
    node = yamlio.load("a: " + "[" * 900 + "]" * 900, "x")["a"]
    for _ in range(899):
        (node,) = node
    assert node == []


def test_diff_counts_other_submodule_edits_as_the_code_axis(with_submodule: Path) -> None:
    lib = with_submodule / "lib"
    (lib / "lib.py").write_text("x = 2\n")
    assert gitexp("run", "--name", "two", "--", *PASS).exit_code == 0
    (lib / "lib.py").write_text("x = 3\n")
    assert gitexp("run", "--name", "three", "--", *PASS).exit_code == 0

    result = gitexp("diff", "two", "three", "--json")

    assert result.exit_code == 0, result.stderr
    axes = json.loads(result.stdout)["axes"]
    assert [axis["axis"] for axis in axes] == ["code"]


@pytest.mark.parametrize(
    ("name", "text", "reason"),
    [
        ("bad.yaml", "a: [1, 2\n", "is not valid YAML"),
        ("bad.json", "{'a': 1}", "cannot be parsed"),
        ("list.yaml", "- 1\n- 2\n", "must hold a mapping of keys to values at its top"),
    ],
)
def test_a_malformed_config_file_is_a_usage_error(
    project: Path, name: str, text: str, reason: str
) -> None:
    (project / name).write_text(text)
    stderr = _refused(project, "--config", name)
    assert stderr.startswith(f"Error: config file {project / name} ") and reason in stderr
    assert len(stderr.splitlines()) == 1


def test_a_seed_variable_that_is_not_a_number_is_one_clear_error(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import gitexp as api

    monkeypatch.setenv("GITEXP_SEED", "seven")
    with pytest.raises(UsageError) as refused:
        api.init(config={"lr": 0.1})
    assert str(refused.value) == (
        "GITEXP_SEED='seven' is not a seed; use a whole number from 0 to 4294967295"
    )
