from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from gitexp.cli import cli
from gitexp.ids import suffix_of

from .conftest import gitexp, run_ids


def _metrics_run(project: Path, name: str, losses: list[float]) -> str:
    """A run under `gitexp run` whose code logged metrics through the Python API."""
    program = (
        "import gitexp\n"
        "run = gitexp.init()\n"
        f"for loss in {losses!r}:\n"
        "    run.log({'loss': loss, 'acc': 1 - loss})\n"
    )
    assert gitexp("run", "--name", name, "--", sys.executable, "-c", program).exit_code == 0
    return run_ids(project)[0]


@pytest.fixture
def three_runs(project: Path, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    first = _metrics_run(project, "base", [0.9, 0.5, 0.25])
    gitexp("run", "--tag", "sweep", "--tag", "lr", "--", sys.executable, "train.py", "--lr", "1")
    second = run_ids(project)[0]
    monkeypatch.setenv("EXIT", "2")
    gitexp("run", "--tag", "sweep", "--", sys.executable, "train.py", "--lr", "2")
    third = run_ids(project)[0]
    return [third, second, first]  # newest first


def test_log_lists_newest_first_with_metrics(three_runs: list[str]) -> None:
    result = gitexp("log")
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert lines[0].split() == [
        "id",
        "name",
        "status",
        "started",
        "(UTC)",
        "duration",
        "tags",
        "acc",
        "loss",
    ]
    assert [line.split()[0] for line in lines[1:]] == three_runs
    assert "failed" in lines[1] and "sweep" in lines[1]
    assert lines[3].split()[-2:] == ["0.75", "0.25"]


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--status", "failed"], [0]),
        (["--tag", "sweep"], [0, 1]),
        (["--tag", "sweep", "--tag", "lr"], [1]),
        (["--name", "base"], [2]),
        (["-n", "2"], [0, 1]),
        (["--status", "crashed"], []),
    ],
)
def test_log_filters(three_runs: list[str], args: list[str], expected: list[int]) -> None:
    listed = json.loads(gitexp("log", "--json", *args).stdout)
    assert [run["id"] for run in listed] == [three_runs[i] for i in expected]


def test_log_json_carries_what_scripts_need(three_runs: list[str]) -> None:
    (newest, _, oldest) = json.loads(gitexp("ls", "--json").stdout)
    assert {"id", "name", "status", "tags", "started", "duration_s", "config", "summary"} <= set(
        newest
    )
    assert newest["config"] == {"argv._": ["train.py"], "argv.lr": 2}
    assert oldest["summary"]["loss"] == {
        "last": 0.25,
        "last_step": 2,
        "min": 0.25,
        "min_step": 2,
        "max": 0.9,
        "max_step": 0,
        "count": 3,
    }


def test_log_on_a_repository_without_runs(project: Path) -> None:
    result = gitexp("log")
    assert result.exit_code == 0
    assert result.stderr == "no runs yet; record one with `gitexp run -- python train.py`\n"
    assert gitexp("log", "--json").stdout == "[]\n"


@pytest.mark.parametrize("how", ["id", "prefix", "suffix", "name", "@", "@~2"])
def test_show_resolves_every_way_of_naming_a_run(three_runs: list[str], how: str) -> None:
    oldest = three_runs[2]
    ref = {
        "id": oldest,
        "prefix": oldest[:-2],
        "suffix": suffix_of(oldest),
        "name": "base",
        "@": three_runs[0],
        "@~2": "@~2",
    }[how]
    shown = json.loads(gitexp("show", ref, "--json").stdout)
    assert shown["run"]["id"] == (three_runs[0] if how == "@" else oldest)


def test_show_json_is_keyed_by_record_file(three_runs: list[str]) -> None:
    shown = json.loads(gitexp("show", "base", "--json").stdout)
    assert set(shown) == {
        "run",
        "config",
        "code",
        "diff",
        "env",
        "seeds",
        "summary",
        "metrics",
        "output",
        "lineage",  # not a file: which runs this one read from, and which read from it
    }
    first = shown["metrics"][0]
    assert (first["step"], first["name"], first["value"]) == (0, "loss", 0.9)
    assert 0 <= first["time"] < 60  # seconds since the run started


def test_show_prints_every_part(three_runs: list[str]) -> None:
    out = gitexp("show", "base").stdout
    for part in (
        "config.yaml",
        "code.yaml",
        "seeds.yaml",
        "env.yaml",
        "base",
        "succeeded",
        "distributions",
    ):
        assert part in out
    assert " loss    0.25  0.25   0.9      3  █▃▁" in out  # summary and curve of metrics.tsv


def test_unknown_run_is_one_clear_error(three_runs: list[str]) -> None:
    result = gitexp("show", "nope")
    assert (result.exit_code, result.stderr) == (1, "Error: no run 'nope'; see `gitexp log`\n")


def test_ambiguous_run_lists_candidates(three_runs: list[str]) -> None:
    result = gitexp("show", "2")
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: '2' names 3 runs: ")
    assert all(run_id in result.stderr for run_id in three_runs)
    assert "(base)" in result.stderr


def test_relative_run_past_the_oldest(three_runs: list[str]) -> None:
    result = gitexp("show", "@~3")
    assert result.stderr == "Error: there is no run @~3: the branch holds 3 runs\n"


def test_index_is_derived_and_rebuilt_when_deleted(three_runs: list[str], project: Path) -> None:
    before = gitexp("log", "--json").stdout
    (project / ".git" / "gitexp" / "catalog.sqlite").unlink()
    assert gitexp("log", "--json").stdout == before
    (project / ".git" / "gitexp" / "catalog.sqlite").write_bytes(b"not a database")
    assert gitexp("log", "--json").stdout == before


@pytest.mark.parametrize("name", sorted(cli.commands))
def test_every_command_has_help(name: str) -> None:
    assert cli.commands[name].help
    assert gitexp(name, "--help").exit_code == 0


def test_a_damaged_record_is_listed_as_invalid_not_fatal(
    three_runs: list[str], project: Path
) -> None:
    from gitexp import store
    from gitexp.workspace import open_workspace

    ws = open_workspace()
    store.write_run(ws, "20200101-000000-broken0", {"run.yaml": b"status: [\n"}, ("bad", ""))
    result = gitexp("log")
    assert result.exit_code == 0
    assert "20200101-000000-broken0" in result.stdout and "invalid" in result.stdout
    assert result.stderr == (
        "warning: run 20200101-000000-broken0 cannot be read: "
        "experiments/20200101-000000-broken0/run.yaml is not valid YAML (while parsing a flow "
        "node); fix or remove it\n"
    )
    assert all(run_id in result.stdout for run_id in three_runs)


@pytest.mark.parametrize("system", ["standard", "256", "truecolor"])
def test_log_colours_status_on_a_terminal(three_runs: list[str], system: str) -> None:
    from gitexp import cells, history, listing
    from gitexp.workspace import open_workspace

    rows = [cells.of(run) for run in history.runs(open_workspace())]
    table = listing.runs_table(rows, system)
    assert "\x1b[31mfailed\x1b[0m" in table  # red, in every colour system
    plain = listing.runs_table(rows, None)
    assert "\x1b" not in plain
