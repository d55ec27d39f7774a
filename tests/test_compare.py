"""`gitexp compare` and `gitexp ablate` on a real sweep: lr by seed, and an epochs variant."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from .conftest import gitexp, sealed
from .test_outcomes import Sweep, make_sweep

pytestmark = pytest.mark.slow  # six real runs, shared by the module


@pytest.fixture(scope="module")
def sweep(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sweep]:
    with pytest.MonkeyPatch.context() as mp, sealed(tmp_path_factory.mktemp("home"), mp):
        yield make_sweep(tmp_path_factory.mktemp("sweep") / "project", mp)


def test_compare_rows_are_seed_groups_with_the_keys_that_differ(sweep: Sweep) -> None:
    result = gitexp("compare", "--json")
    assert result.exit_code == 0, result.output
    found = json.loads(result.stdout)
    assert found["keys"] == ["epochs", "lr"]
    assert found["seed_keys"] == ["seed"]
    assert found["common"] == {"argv._": ["train.py"]}
    rows = [(set(r["runs"]), r["config"], r["baseline"]) for r in found["rows"]]
    assert rows == [
        ({sweep["0.1-0"], sweep["0.1-1"]}, {"epochs": 5, "lr": 0.1}, True),
        ({sweep["0.2-0"], sweep["0.2-1"]}, {"epochs": 5, "lr": 0.2}, False),
        ({sweep["e6-0"], sweep["e6-1"]}, {"epochs": 6, "lr": 0.1}, False),
    ]  # sorted by the differing keys, the first row the baseline
    loss = [r["metrics"]["loss"] for r in found["rows"]]
    assert [(m["n"], m["mean"]) for m in loss] == [
        (2, pytest.approx(0.51)), (2, pytest.approx(0.31)), (2, pytest.approx(0.511)),
    ]  # fmt: skip
    assert "change" not in loss[0]
    assert loss[2]["change"]["within_noise"] is True
    assert loss[1]["change"]["within_noise"] is False
    assert loss[1]["change"]["p_value"] < 0.05
    assert loss[1]["change"]["delta"] == pytest.approx(-0.2)


def test_compare_table_marks_noise_and_names_the_baseline(sweep: Sweep) -> None:
    text = gitexp("compare", "-m", "loss", "--baseline", sweep["0.2-1"]).stdout
    lines = text.splitlines()
    assert lines[0] == 'same in every row: argv._=["train.py"]'
    assert lines[1] == "rows are seed groups: runs identical but for seed (seed), mean ± sd (n)"
    assert lines[2].split() == ["run", "epochs", "lr", "status", "loss", "Δ", "loss"]
    assert "(baseline)" in lines[4] and " 0.2 " in lines[4]
    assert "≈" not in lines[3] + lines[5]  # lr 0.1 is beyond the noise of lr 0.2
    assert lines[6].startswith(f"Δ: against the baseline {sweep['0.2-1']}; p: Welch's t-test")


def test_compare_without_seed_groups_has_no_statistics(sweep: Sweep) -> None:
    result = gitexp("compare", sweep["0.1-0"], sweep["0.2-0"], "--no-group-seeds", "--csv")
    assert result.exit_code == 0, result.output
    rows = result.stdout.splitlines()
    assert rows[0] == (
        "runs,baseline,status,lr,loss,loss sd,loss n,loss delta,loss relative,loss p,"
        "loss ci_low,loss ci_high,loss within_noise"
    )
    assert rows[1] == f"{sweep['0.1-0']},True,succeeded,0.1,0.5,,1,,,,,,"
    assert rows[2].startswith(f"{sweep['0.2-0']},False,succeeded,0.2,0.3,,1,-0.2")
    assert rows[2].endswith(",,,,")


def test_compare_markdown_is_a_table(sweep: Sweep) -> None:
    text = gitexp("compare", sweep["0.1-0"], sweep["0.1-1"], "--markdown", "-m", "loss.max").stdout
    assert "| run | status | loss.max |\n|---|---|---:|\n" in text
    assert f"| {sweep['0.1-0']} +1 (baseline) | succeeded | 2 ± 0 (n=2) |\n" in text


def test_compare_an_unknown_metric_is_a_usage_error(sweep: Sweep) -> None:
    result = gitexp("compare", "-m", "acc")
    assert result.exit_code == 2
    assert result.stderr == (
        "Error: -m 'acc': no compared run logged that metric (they logged: loss); write METRIC "
        "or METRIC.last, .min or .max\n"
    )


def test_ablate_lists_the_single_axis_variants_by_axis(sweep: Sweep) -> None:
    found = json.loads(gitexp("ablate", sweep["0.1-0"], "--json").stdout)
    assert found["baseline"] == sweep["0.1-0"]
    by_axis = {a["axis"]: a for a in found["axes"]}
    assert list(by_axis) == ["config.epochs", "config.lr", "seed"]
    assert by_axis["config.lr"]["baseline"] == 0.1
    [lr] = by_axis["config.lr"]["runs"]
    assert (lr["run"], lr["value"]) == (sweep["0.2-0"], 0.2)
    assert lr["metrics"]["loss"]["delta"] == pytest.approx(-0.2)
    assert [(r["run"], r["value"]) for r in by_axis["seed"]["runs"]] == [(sweep["0.1-1"], 1)]
    assert by_axis["seed"]["baseline"] == 0  # the seed as the config names it
    assert [r["run"] for r in by_axis["config.epochs"]["runs"]] == [sweep["e6-0"]]


def test_ablate_prints_each_axis_with_the_metric_change(sweep: Sweep) -> None:
    text = gitexp("ablate", sweep["0.1-0"]).stdout
    assert text.startswith(f"baseline {sweep['0.1-0']}: loss 0.5\n\nconfig.epochs (baseline 5)\n")
    assert f"  {sweep['0.2-0']}  0.2    succeeded  0.3   -0.2 (-40.0%)\n" in text  # aligned
