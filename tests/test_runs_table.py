"""`gitexp log --columns/--sort/--where/--csv`: the runs table, and the API behind it."""

from __future__ import annotations

import csv
import io
import json
import sys
from pathlib import Path

import pytest

from gitexp.catalog import RunSummary
from gitexp.comparison import table
from gitexp.errors import UsageError

from .conftest import gitexp, run_ids

# --- the API: keys, conditions, sorting, on runs as the index lists them ---------------------


def _summary(run_id: str, **given: object) -> RunSummary:
    defaults: dict[str, object] = {"name": None, "status": "succeeded", "started": "2026-01-02"}
    return RunSummary(id=run_id, **{**defaults, **given})  # type: ignore[arg-type]


RUN = _summary(
    "r1",
    started="2026-01-02T10:00:00.000Z",
    tags=("best", "sweep"),
    config_json=json.dumps({"optim.lr": 0.001, "optim.name": "adam", "model.deep": True}),
    summary={"val/loss": {"last": 0.5, "min": 0.25}},
    fields_json=json.dumps({"code.branch": "main", "code.dirty": False}),
)


@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        ("config.optim.lr<=1e-3", True),
        ("config.optim.lr<1e-3", False),
        ("config.optim.lr=0.001", True),
        ("config.optim.lr!=0.001", False),
        ("config.optim.name=adam", True),
        ("config.optim.name='adam'", True),
        ("config.model.deep=true", True),
        ("config.model.deep=1", False),  # a flag is not a number
        ("config.missing=null", True),  # absent is null
        ("config.missing!=3", True),
        ("config.missing<3", False),
        ("summary.val/loss.last>0.4", True),
        ("val/loss.min>0.4", False),
        ("val/loss.max>0", False),  # never logged: no value
        ("status=succeeded", True),
        ("status!=failed", True),
        ("tag=best", True),
        ("tags!=sweep", False),
        ("code.branch=main", True),
        ("code.dirty=false", True),
        ("started>2026-01-01", True),
        ("started<2026-01-02", False),  # the same day: on or after its start
        ("started>=2026-01-02", True),
        ("started>'2026-01-01 23:59'", True),  # as `log` prints it: the same as with a T
        ("name=null", True),
    ],
)
def test_condition(condition: str, expected: bool) -> None:
    assert table.parse_where([condition]).matches(RUN) is expected


def test_conditions_must_all_hold() -> None:
    assert table.parse_where(["tag=best", "config.optim.lr<1"]).matches(RUN)
    assert not table.parse_where(["tag=best", "config.optim.lr>1"]).matches(RUN)
    assert table.parse_where([]).matches(RUN)


@pytest.mark.parametrize(
    ("condition", "message"),
    [
        (
            "config.lr",
            "--where 'config.lr': no comparison; write KEY OP VALUE with OP one of "
            "= != < <= > >=, e.g. config.optim.lr<=1e-3",
        ),
        (
            "config.lr<<3",
            "--where 'config.lr<<3': '<3' is not a value; one operator per "
            "condition (quote a value that starts with one)",
        ),
        ("config.lr>=", "--where 'config.lr>=': no value after '>='"),
        (
            "status=done",
            "--where 'status=done': 'done' is not a status; use one of running, "
            "succeeded, failed, interrupted, crashed, invalid",
        ),
        ("tag>best", "--where 'tag>best': tags can only be compared with = or !="),
        (
            "config.lr<abc",
            "--where 'config.lr<abc': 'abc' is not a number; < <= > >= compare numbers, and "
            "dates for started and finished",
        ),
        (
            "started>yesterday",
            "--where 'started>yesterday': 'yesterday' is not a date; write 2026-11-30 or "
            "'2026-11-30 14:05' (UTC)",
        ),
        (
            "summary.loss<1",
            "--where 'summary.loss<1': 'summary.loss' names no aggregate: write "
            "summary.METRIC.AGG with AGG one of last, min, max, last_step, min_step, max_step, "
            "count, nan_count",
        ),
    ],
)
def test_bad_condition_says_which_part(condition: str, message: str) -> None:
    with pytest.raises(UsageError) as raised:
        table.parse_where([condition])
    assert str(raised.value) == message


def test_unknown_key_lists_what_keys_exist() -> None:
    with pytest.raises(UsageError, match=r"^--where 'lr<1': unknown key 'lr'; use config.KEY, "):
        table.parse_where(["lr<1"])
    with pytest.raises(UsageError, match=r"^--columns 'confg.lr': unknown key 'confg.lr'; .*"):
        table.columns(["status,confg.lr"])


def test_keys() -> None:
    keys = table.columns(["config.optim.lr,val/loss.min", "summary.val/loss.min, status, tag"])
    assert [key.text for key in keys] == [
        "config.optim.lr",
        "summary.val/loss.min",
        "status",
        "tags",
    ]
    assert [key.value(RUN) for key in keys] == [0.001, 0.25, "succeeded", ["best", "sweep"]]
    # A metric whose name has dots: the aggregate is the last part.
    assert table.parse_key("summary.acc.top1.max") == table.Key("metric", "acc.top1", "max")


def test_sort_puts_runs_without_a_value_last_either_way() -> None:
    runs = [
        _summary("a", config_json='{"lr": 0.1, "seed": 1}'),
        _summary("b", config_json='{"seed": 0}'),
        _summary("c", config_json='{"lr": 0.01, "seed": 0}'),
        _summary("d", config_json='{"lr": 0.1, "seed": 0}'),
    ]

    def order(*texts: str) -> list[str]:
        return [run.id for run in table.sort_runs(runs, table.parse_sort(texts))]

    assert order("config.lr") == ["c", "a", "d", "b"]
    assert order("-config.lr") == ["a", "d", "c", "b"]
    assert order("-config.lr", "config.seed") == ["d", "a", "c", "b"]
    assert order() == ["a", "b", "c", "d"]


# --- gitexp log, on real runs -----------------------------------------------------------------

_PROGRAM = """\
import gitexp
run = gitexp.init()
for loss in {losses!r}:
    run.log({{"loss": loss}})
"""


def _run(lr: float, seed: int, losses: list[float], *options: str) -> str:
    program = _PROGRAM.format(losses=losses)
    result = gitexp("run", "-p", f"lr={lr}", "-p", f"seed={seed}", *options, "--",
                    sys.executable, "-c", program)  # fmt: skip
    assert result.exit_code == 0, result.output
    return run_ids(Path.cwd())[0]


@pytest.fixture
def sweep(project: Path) -> dict[str, str]:
    """Four runs: lr 0.1 and 0.01, seeds 0 and 1; one tagged."""
    return {
        "fast0": _run(0.1, 0, [1.0, 0.3]),
        "fast1": _run(0.1, 1, [1.0, 0.2], "--tag", "best"),
        "slow0": _run(0.01, 0, [1.0, 0.8]),
        "slow1": _run(0.01, 1, [1.0, 0.9]),
    }


@pytest.mark.slow
def test_columns_sorted_by_a_metric(sweep: dict[str, str]) -> None:
    result = gitexp(
        "log", "--columns", "config.lr,summary.loss.last", "--sort", "summary.loss.last"
    )
    assert result.exit_code == 0, result.output
    assert [line.split() for line in result.stdout.splitlines()] == [
        ["id", "config.lr", "summary.loss.last"],
        [sweep["fast1"], "0.1", "0.2"],
        [sweep["fast0"], "0.1", "0.3"],
        [sweep["slow0"], "0.01", "0.8"],
        [sweep["slow1"], "0.01", "0.9"],
    ]


@pytest.mark.slow
def test_where_csv_and_json(sweep: dict[str, str]) -> None:
    chosen = ["log", "-c", "config.seed,loss.min,status,tags", "-w", "config.lr<=1e-1",
              "-w", "summary.loss.last<0.85", "-s", "-config.seed"]  # fmt: skip
    result = gitexp(*chosen, "--csv")
    assert result.exit_code == 0, result.output
    assert list(csv.reader(io.StringIO(result.stdout))) == [
        ["id", "config.seed", "summary.loss.min", "status", "tags"],
        [sweep["fast1"], "1", "0.2", "succeeded", "best"],
        [sweep["slow0"], "0", "0.8", "succeeded", ""],  # ties stay newest first
        [sweep["fast0"], "0", "0.3", "succeeded", ""],
    ]
    listed = json.loads(gitexp(*chosen, "--json").stdout)
    assert listed[0] == {
        "id": sweep["fast1"],
        "config.seed": 1,
        "summary.loss.min": 0.2,
        "status": "succeeded",
        "tags": ["best"],
    }
    assert [run["id"] for run in listed] == [sweep["fast1"], sweep["slow0"], sweep["fast0"]]
    # Filters of the index and of the table together, with a limit after both.
    tagged = gitexp("log", "--json", "-n", "1", "-w", "tag=best", "-w", "code.branch!=nope")
    assert [run["id"] for run in json.loads(tagged.stdout)] == [sweep["fast1"]]
    assert gitexp("log", "-w", "config.lr>1").stderr == (
        "no run matches; `gitexp log` with no filter lists every run; archived runs are hidden "
        "unless --all\n"
    )
    column = gitexp("log", "-c", "config.lrr", "-s", "config.lr")
    assert (column.exit_code, column.stderr) == (2, (
        "Error: --columns names what no run here has: config.lrr (did you mean config.lr?); "
        "`gitexp log --json` shows the keys\n"
    ))  # fmt: skip
    assert (
        "--sort names what no run here has: config.nope"
        in gitexp("log", "-s", "config.nope").stderr
    )
    typo = gitexp("log", "-w", "config.lrr<1", "-w", "summary.los.last<1")
    assert typo.exit_code == 2
    assert typo.stderr == (
        "Error: --where names what no run has: config.lrr (did you mean config.lr?), "
        "summary.los.last (did you mean summary.loss.last?); `gitexp log --json` shows the keys\n"
    )


@pytest.mark.slow
def test_plain_csv_has_the_table_columns(sweep: dict[str, str]) -> None:
    rows = list(csv.reader(io.StringIO(gitexp("log", "--csv").stdout)))
    assert rows[0] == ["id", "name", "status", "started", "duration", "tags", "summary.loss.last"]
    assert [row[0] for row in rows[1:]] == [sweep[k] for k in ("slow1", "slow0", "fast1", "fast0")]
    assert rows[1][-1] == "0.9" and rows[1][3].endswith("Z")


def test_bad_where_is_a_usage_error(project: Path) -> None:
    result = gitexp("log", "--where", "config.lr=<1")
    assert result.exit_code == 2
    assert result.stderr == (
        "Error: --where 'config.lr=<1': '<1' is not a value; one operator per condition "
        "(quote a value that starts with one)\n"
    )
    both = gitexp("log", "--json", "--csv")
    assert both.exit_code == 2 and "give --json or --csv, not both" in both.stderr


def test_log_json_is_every_run_as_dict() -> None:
    from gitexp import jsontext, listing

    odd = _summary("r2", summary={"loss": {"last": float("nan")}}, command_json='["python"]')
    runs = [RUN, odd]
    assert json.loads(listing.runs_json(runs)) == [
        json.loads(jsontext.as_json(run.as_dict())) for run in runs
    ]
    assert json.loads(listing.runs_json(runs))[1]["summary"] == {"loss": {"last": "nan"}}


def test_the_index_keeps_each_runs_json_line_as_it_would_be_made(project: Path) -> None:
    from gitexp import history, jsontext
    from gitexp.workspace import open_workspace

    for lr in ("0.1", "0.2"):
        gitexp("run", "--", sys.executable, "train.py", "--lr", lr)
    gitexp("archive", run_ids(project)[0])
    runs = history.runs(open_workspace())
    assert len(runs) == 2 and all(run.listed_json is not None for run in runs)
    for run in runs:
        assert run.json_line() == jsontext.line(run._replace(listed_json=None).as_dict())
    assert [json.loads(run.json_line())["archived"] for run in runs] == [True, False]


def test_the_plain_listing_agrees_with_the_general_one(project: Path) -> None:
    """`log` and `log --json` read runs brief or as stored JSON lines; a filter that keeps
    every run takes the general path, which reads whole rows: both print the same."""
    for lr in ("0.1", "0.2", "0.3"):
        gitexp("run", "--tag", "sweep", "--", sys.executable, "train.py", "--lr", lr)
    gitexp("archive", run_ids(project)[1])
    for extra in ([], ["--all"], ["--json"], ["--json", "--all"], ["--tag", "sweep", "-n", "1"]):
        plain = gitexp("log", *extra)
        general = gitexp("log", *extra, "--where", "status!=invalid")
        assert plain.exit_code == general.exit_code == 0
        assert plain.stdout == general.stdout and plain.stdout.count("\n") >= 2, extra


def test_a_column_only_older_runs_have_is_no_typo(project: Path) -> None:
    gitexp("run", "--", sys.executable, "train.py", "--lr", "0.1")
    gitexp("run", "--", sys.executable, "train.py")  # the newest has no lr
    shown = gitexp("log", "-n", "1", "-c", "config.argv.lr")
    assert shown.exit_code == 0, shown.output
    assert shown.stdout.splitlines()[0].split() == ["id", "config.argv.lr"]
    typo = gitexp("log", "-n", "1", "-c", "config.argv.lrr")
    assert typo.exit_code == 2 and "names what no run here has" in typo.stderr
