"""Outcomes in `gitexp diff`, seed groups and their statistics, on real runs of a sweep."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from gitexp import workspace
from gitexp.comparison import groups, stats

from .conftest import git, gitexp, run_ids, sealed

pytestmark = pytest.mark.slow  # eight real runs, shared by the module

# The loss depends on lr, and on the seed by a fixed offset: a sweep whose numbers are known.
TRAIN = """\
import argparse
import gitexp
parser = argparse.ArgumentParser()
parser.add_argument("--lr", type=float, default=0.1)
parser.add_argument("--seed", type=int, default=0)
parser.add_argument("--epochs", type=int, default=5)
args = parser.parse_args()
noise = {0: 0.0, 1: 0.02}[args.seed]
extra = 0.001 if args.epochs != 5 else 0.0  # epochs barely matter: within seed noise
with gitexp.init(config=args, seed=args.seed) as run:
    run.log({"loss": 2.0}, step=0)
    run.log({"loss": {0.1: 0.5, 0.2: 0.3}[args.lr] + noise + extra}, step=1)
"""

Sweep = dict[str, str]  # "lr-seed" (or "e6-seed") → run id


def make_sweep(
    root: Path, mp: pytest.MonkeyPatch, configure: Callable[[Path], None] | None = None
) -> Sweep:
    """lr 0.1 and 0.2 with seeds 0 and 1, and lr 0.1 with 6 epochs with seeds 0 and 1;
    `configure` sets the new repository up (a signing key) before the first run."""
    root.mkdir()
    (root / "train.py").write_text(TRAIN)
    git(root, "init", "-q")
    if configure is not None:
        configure(root)
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "initial")
    mp.chdir(root)
    found = {}
    for name, options in (
        ("0.1-0", ["--lr", "0.1", "--seed", "0"]),
        ("0.1-1", ["--lr", "0.1", "--seed", "1"]),
        ("0.2-0", ["--lr", "0.2", "--seed", "0"]),
        ("0.2-1", ["--lr", "0.2", "--seed", "1"]),
        ("e6-0", ["--epochs", "6", "--seed", "0"]),
        ("e6-1", ["--epochs", "6", "--seed", "1"]),
    ):
        result = gitexp("run", "--", sys.executable, "train.py", *options)
        assert result.exit_code == 0, result.output
        found[name] = run_ids(root)[0]
    return found


@pytest.fixture(scope="module")
def sweep(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sweep]:
    with pytest.MonkeyPatch.context() as mp, sealed(tmp_path_factory.mktemp("home"), mp):
        yield make_sweep(tmp_path_factory.mktemp("sweep") / "project", mp)


def test_diff_shows_each_metric_and_the_seed_statistics(sweep: Sweep) -> None:
    a, b = sweep["0.1-0"], sweep["0.2-0"]
    result = gitexp("diff", a, b, "--stat")
    assert result.exit_code == 0, result.output
    head = result.stdout.split(" experiments/")[0]
    p = stats.welch_p([0.5, 0.52], [0.3, 0.32])
    assert head == (
        f"{a} → {b}: 1 axis differs\n"
        "  config.lr: 0.1 → 0.2\n"
        "\n"
        "outcome (last value of each metric):\n"
        "  metric  A    B    change\n"
        "  loss    0.5  0.3  -0.2 (-40.0%)\n"
        "over seed groups (A and 1 siblings, B and 1 siblings; runs identical but for seed "
        "that succeeded):\n"
        "  metric  A                   B                   change         noise\n"
        "  loss    0.51 ± 0.014 (n=2)  0.31 ± 0.014 (n=2)  -0.2 (-39.2%)  "
        f"p={p:.2g}: beyond seed noise\n"  # the verdict compare gives, without its interval
    )
    assert p < 0.05
    timed = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "gitexp", "diff", a, b],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert " scipy" not in timed.stderr and " numpy" not in timed.stderr  # none of a second


def test_welch_p_is_scipys_welch_t_test() -> None:
    from scipy.stats import ttest_ind

    for a, b in (([0.5, 0.52], [0.3, 0.32]), ([1, 2, 3.5], [2, 2.2, 9, 4])):
        assert stats.welch_p(a, b) == pytest.approx(ttest_ind(b, a, equal_var=False).pvalue)


def test_diff_json_carries_the_outcome(sweep: Sweep) -> None:
    a, b = sweep["0.1-0"], sweep["0.2-0"]
    found = json.loads(gitexp("diff", a, b, "--json").stdout)["outcome"]
    assert found["aggregate"] == "last"
    assert found["a_group"] == [a, sweep["0.1-1"]]
    assert found["b_group"] == [b, sweep["0.2-1"]]
    [loss] = found["metrics"]
    assert (loss["metric"], loss["a"], loss["b"]) == ("loss", 0.5, 0.3)
    assert loss["delta"] == pytest.approx(-0.2)
    assert loss["relative"] == pytest.approx(-0.4)
    seeds = loss["seeds"]
    assert seeds["a"]["n"] == seeds["b"]["n"] == 2
    assert (seeds["a"]["mean"], seeds["b"]["mean"]) == (pytest.approx(0.51), pytest.approx(0.31))
    assert seeds["within_noise"] is False
    assert seeds["p_value"] < 0.05 and seeds["ci95"] is None  # the interval: compare


def test_a_change_that_did_nothing_is_within_seed_noise(sweep: Sweep) -> None:
    found = json.loads(gitexp("diff", sweep["0.1-0"], sweep["e6-0"], "--json").stdout)
    [loss] = found["outcome"]["metrics"]
    assert loss["seeds"]["within_noise"] is True
    assert loss["seeds"]["p_value"] > 0.05
    text = gitexp("diff", sweep["0.1-0"], sweep["e6-0"], "--stat").stdout
    assert ": within seed noise\n" in text


def test_a_seed_change_is_judged_by_the_group_spread(sweep: Sweep) -> None:
    text = gitexp("diff", sweep["0.1-0"], sweep["0.1-1"], "--stat").stdout
    assert "over the seed group of A and B (2 runs identical but for seed):\n" in text
    # A and B alone: their spread is their own difference, which says nothing of noise.
    assert (
        "  loss    0.51 ± 0.014 (n=2)  no statistics: A and B are their seed group's only "
        "runs: repeat with a third seed to judge noise\n" in text
    )


def test_seed_groups_gather_runs_identical_but_for_seed(sweep: Sweep) -> None:
    ws = workspace.open_workspace()
    order = [sweep[k] for k in ("0.1-0", "0.2-0", "0.1-1", "e6-0", "0.2-1", "e6-1")]
    found = groups.seed_groups(ws, order)
    assert [g.run_ids for g in found] == [
        (sweep["0.1-0"], sweep["0.1-1"]),
        (sweep["0.2-0"], sweep["0.2-1"]),
        (sweep["e6-0"], sweep["e6-1"]),
    ]
    assert [g.n for g in found] == [2, 2, 2]
    assert found[1].inputs.config["lr"] == 0.2
    assert groups.seed_siblings(ws, sweep["e6-1"]) == (sweep["e6-1"], sweep["e6-0"])


def test_statistics_need_two_runs_a_side() -> None:
    one = stats.difference([1.0], [2.0])
    assert (one.delta, one.p_value, one.ci, one.within_noise) == (1.0, None, None, None)
    assert one.reason is not None and "n = 1" in one.reason
    half = stats.difference([1.0, 1.2], [1.15])
    assert (half.within_noise, half.method) == (True, "|Δ| ≤ 2 sd")
    assert stats.spread([1.0, float("nan")]) == stats.Spread(1, 1.0, None)
    assert stats.spread([]).values_needed == "no run has a finite value"


def test_a_failed_seed_sibling_is_compared_but_never_counted_in_a_group(sweep: Sweep) -> None:
    # Seed 2 fails (the script has no noise for it): it is A's sibling in seed alone.
    failed = gitexp("run", "--", sys.executable, "train.py", "--lr", "0.1", "--seed", "2")
    assert failed.exit_code == 1
    crashed = run_ids(Path.cwd())[0]
    text = gitexp("diff", sweep["0.1-0"], crashed, "--stat").stdout
    assert "over the seed group of A and B (2 runs identical but for seed):" in text
    found = json.loads(gitexp("diff", sweep["0.2-0"], crashed, "--json").stdout)["outcome"]
    # B stands for itself, with its siblings that succeeded; it is in no other run's group.
    assert found["b_group"][0] == crashed
    assert set(found["b_group"][1:]) == {sweep["0.1-0"], sweep["0.1-1"]}
    other = json.loads(gitexp("diff", sweep["0.2-0"], sweep["0.1-0"], "--json").stdout)
    assert crashed not in other["outcome"]["b_group"]


def test_the_t_distribution_is_scipys_to_eight_digits() -> None:
    """`diff` computes Student's t itself (scipy.special takes longer to import than its
    whole budget): held to scipy over small and huge freedoms, tiny and huge statistics."""
    from scipy.special import stdtr

    for df in (1, 1.5, 2, 3, 4.7, 10, 30, 99.3, 1_000, 1e5, 1e7):
        for t in (0, 1e-9, 1e-3, 0.5, 1, 1.96, 2.5, 4, 8, 20, 300, 1e4):
            expected = 2 * stdtr(df, -t)
            assert stats._t_two_sided(t, df) == pytest.approx(expected, rel=1e-7, abs=1e-300)
            assert stats._t_two_sided(-t, df) == stats._t_two_sided(t, df)
