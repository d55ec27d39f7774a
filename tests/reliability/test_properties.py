"""Random input from the command line, config files and the API: the outcome is always a
correct record or one clear error line with status 1, 2 or 3. Never a traceback, never the
unexpected-error report, never a branch that fsck or a reader would reject.

Each test keeps one repository for all its examples (hypothesis runs the body many times
under one function-scoped fixture, on purpose).
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
import time
import unicodedata
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result
from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis import strategies as st

import gitexp as gitexp_api
from gitexp import secrets_scan, yamlio

from ..conftest import gitexp
from .conftest import ALWAYS, check_branch, cli, no_crash_report, read_branch

STATUSES = ("running", "succeeded", "failed", "interrupted", "crashed")
FEW = settings(
    max_examples=30,
    deadline=None,
    database=None,  # nothing written into the project's working tree
    print_blob=True,
    # No shrinking: a failure is shown as found, at once, instead of minutes of minimising.
    phases=[Phase.explicit, Phase.reuse, Phase.generate],
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
# Text a real argv can carry: no NUL, no lone surrogate. Bytes that are not UTF-8 (which
# Python reads as lone surrogates) go through real processes below: in one process, a value
# that fails to be written as YAML would spoil every example after it.
ARGV_TEXT = st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00")
GREEK = "\u03b1 \u03b2"  # a run name in another script
ANY = object()  # a value whose typing is YAML's business: only its presence is checked
NODES = 100_000  # keys and values a config may hold, an alias counting each time it is used


def one_clear_outcome(result: Result, refusal_explains: bool = False) -> None:
    """Exit 0, or 1, 2 or 3 with a single `Error: …` line (click's usage lines aside).

    A refusal (exit 3) of a comparison may explain itself on further lines.
    """
    no_crash_report(result.output)
    if result.exit_code == 0:
        return
    assert result.exit_code in (1, 2, 3), (result.exit_code, result.output)
    if refusal_explains and result.exit_code == 3:
        assert result.stderr.startswith("Error: "), result.stderr
        return
    lines = [
        line
        for line in result.stderr.splitlines()
        if line.strip() and not line.startswith(("Usage:", "Try '"))
    ]
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    controls = [c for c in lines[0] if unicodedata.category(c) == "Cc"]
    assert not controls, f"control characters in {lines[0]!r}"


def same(a: Any, b: Any) -> bool:
    """Equal as recorded values: NaN equals NaN, mappings ignore key order, 1 is not True."""
    if isinstance(a, float) and isinstance(b, float):
        return a == b or (math.isnan(a) and math.isnan(b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and a == b


def _new_record(project: Path, before: set[str], result: Result) -> dict[str, bytes] | None:
    """The record `result` added, None if it added none; the branch stays sound either way."""
    branch = read_branch(project)
    added = branch.ids - before
    if result.exit_code != 0:
        assert not added, f"a failed command left records {added}: {result.output}"
        return None
    (run_id,) = added
    check_branch(project)  # fsck, every record whole, one commit per run
    files = branch.files[run_id]
    assert all(name in files for name in ALWAYS), sorted(files)
    return files


# -p KEY=VALUE ------------------------------------------------------------------------------

KEYS = st.one_of(
    st.sampled_from(
        ["lr", "optim.lr", "model.layers.0", "a-b_c", "x" * 300, "a..b", ".a", "a.", "",
         " ", "a b", "é", "λ.μ", "学习率", "🚀", "a/b", "../x", "-p", "argv.lr", "argv"]
    ),
    st.from_regex(r"[A-Za-z0-9_-]{1,8}(\.[A-Za-z0-9_-]{1,8}){0,3}", fullmatch=True),
    st.text(alphabet=ARGV_TEXT.filter(lambda c: c != "="), max_size=12),
)  # fmt: skip
_WORDS = {"true", "false", "null", "nan", "inf", "y", "n", "yes", "no", "on", "off"}
VALUES = st.one_of(
    st.integers(min_value=-(10**40), max_value=10**40).map(lambda i: (str(i), i)),
    st.floats(allow_nan=False, allow_infinity=False).map(lambda f: (repr(f), f)),
    st.sampled_from([("true", True), ("false", False)]),
    st.from_regex(r"[a-z][a-z_]{0,10}", fullmatch=True)
    .filter(lambda w: w not in _WORDS)
    .map(lambda w: (w, w)),
    st.sampled_from(
        ["", "nan", ".nan", ".inf", "-.inf", "1e400", "~", "null", "[1, 2]", "{a: 1}",
         "&a [1]", "*a", "!!python/object/apply:os.system ['true']", "'q'", '"dq"', "a: b",
         "- x", "# c", "9" * 5000, "[" * 100, "2026-01-01", "0x1F", "=", "a=b", "\t", "\n"]
    ).map(lambda t: (t, ANY)),
    st.text(alphabet=ARGV_TEXT, max_size=30).map(lambda t: (t, ANY)),
)  # fmt: skip


def _leaf(config: Any, key: str) -> Any:
    node = config
    for part in key.split("."):
        assert isinstance(node, dict) and part in node, f"-p {key} is not in {config!r}"
        node = node[part]
    return node


@pytest.mark.slow
@FEW
@given(st.lists(st.tuples(KEYS, VALUES), min_size=1, max_size=3))
@example([("argv.lr", ("0.1", 0.1))])  # `argv` also holds the command's own options
@example([("lr", ("1e-05", 1e-05)), ("optim.momentum", ("0.9", 0.9))])
def test_random_overrides(project: Path, overrides: list[tuple[str, tuple[str, Any]]]) -> None:
    before = read_branch(project).ids
    params = [f"--param={key}={text}" for key, (text, _) in overrides]

    result = gitexp("run", *params, "--", "true")

    one_clear_outcome(result)
    files = _new_record(project, before, result)
    if files is None:
        return
    config = yamlio.load(files["config.yaml"], "config.yaml")
    given_last = {key.strip(): value for key, (_, value) in overrides}
    for key, value in given_last.items():
        leaf = _leaf(config, key)
        if value is ANY:
            continue
        if leaf == secrets_scan.REDACTED and secrets_scan.redact_config({key: value})[1]:
            continue  # a secret, by its name or its look: kept out of the record
        assert same(leaf, value), f"-p {key}: recorded {leaf!r}, given {value!r}"


# --config FILE -----------------------------------------------------------------------------

SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(),
    st.text(alphabet=ARGV_TEXT, max_size=10),
)
DOC_KEYS = st.one_of(st.text(alphabet=ARGV_TEXT, max_size=8), st.sampled_from(["argv", "a.b", ""]))
TREES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(DOC_KEYS, inner, max_size=4),
    max_leaves=20,
)


def _yaml_with_aliases(doc: dict[str, Any]) -> str:
    """`doc` as YAML where every value also appears through an alias of an anchored copy."""
    text = yamlio.dump({"anchored": doc}).decode().replace("anchored:", "anchored: &shared", 1)
    return text + "again: *shared\n"


def _nested(depth: int) -> str:
    return "".join(f"{'  ' * level}k{level}:\n" for level in range(depth)) + "  " * depth + "1\n"


DOCUMENTS = st.one_of(
    st.dictionaries(DOC_KEYS, TREES, max_size=5).map(lambda d: ("json", json.dumps(d), d)),
    st.dictionaries(DOC_KEYS, TREES, max_size=5).map(
        lambda d: ("yaml", yamlio.dump(d).decode(), d)
    ),
    st.dictionaries(DOC_KEYS, TREES, min_size=1, max_size=3).map(
        lambda d: ("yaml", _yaml_with_aliases(d), {"anchored": d, "again": d})
    ),
    st.integers(min_value=1, max_value=80).map(lambda n: ("yaml", _nested(n), ANY)),
    TREES.map(lambda t: ("json", json.dumps(t), ANY)),  # a top level that may not be a mapping
    st.text(alphabet=ARGV_TEXT, max_size=60).map(lambda t: ("yaml", t, ANY)),
    st.text(alphabet=ARGV_TEXT, max_size=60).map(lambda t: ("json", t, ANY)),
    st.binary(max_size=40).map(lambda b: ("yaml", b, ANY)),
)


@pytest.mark.slow
@FEW
@given(DOCUMENTS)
@example(("yaml", "argv: {lr: 0.1}\n", {"argv": {"lr": 0.1}}))
@example(("yaml", "a: &x [1, 2]\nb: *x\n", {"a": [1, 2], "b": [1, 2]}))
def test_random_config_files(project: Path, document: tuple[str, str | bytes, Any]) -> None:
    kind, content, expected = document
    path = project.parent / f"conf.{kind}"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    before = read_branch(project).ids

    result = gitexp("run", f"--config={path}", "--", "true")

    one_clear_outcome(result)
    files = _new_record(project, before, result)
    if files is None or expected is ANY:
        return
    config = yamlio.load(files["config.yaml"], "config.yaml")
    expected, _ = secrets_scan.redact_config(expected)  # what a record may keep of it
    for key, value in expected.items():
        assert key in config, f"{key!r} is not in the recorded config {config!r}"
        assert same(config[key], value), f"{key!r}: recorded {config[key]!r}, given {value!r}"


@pytest.mark.slow
@settings(FEW, max_examples=6)
@given(st.integers(min_value=2, max_value=9), st.integers(min_value=2, max_value=9))
@example(9, 9)  # 9^9 = 387,420,489 nodes once expanded
def test_yaml_alias_bombs_are_refused_in_a_moment(project: Path, width: int, levels: int) -> None:
    lines = [f"l0: &l0 [{', '.join(['lol'] * width)}]"]
    for level in range(1, levels):
        lines.append(f"l{level}: &l{level} [{', '.join([f'*l{level - 1}'] * width)}]")
    path = project.parent / "bomb.yaml"
    path.write_text("\n".join(lines) + "\n")

    started = time.monotonic()
    done = cli(["run", f"--config={path}", "--", "true"], project, timeout=60)

    assert time.monotonic() - started < 20, "an alias bomb took gitexp this long"
    no_crash_report(done.stdout + done.stderr)
    expanded = sum(width**level for level in range(1, levels + 1))  # each use of an alias
    if expanded <= NODES // 2:
        assert done.returncode in (0, 2), done.stderr  # small enough to hold, or refused
    if expanded >= NODES * 2:
        assert done.returncode in (1, 2), done.stderr
    if done.returncode != 0:
        assert len(done.stderr.splitlines()) == 1, done.stderr


# gitexp show / diff / log -------------------------------------------------------------------


@pytest.fixture
def some_runs(project: Path) -> list[dict[str, Any]]:
    """Four finished runs: names (one unicode), tags, two statuses; their run.yaml."""
    for args in (
        ["--name", "base", "-p", "lr=0.1", "--tag", "t1", "--", "true"],
        ["--name", GREEK, "-p", "lr=0.2", "--tag", "t1", "--tag", "t2", "--", "true"],
        ["-p", "lr=0.3", "--", "true"],
        ["--name", "broken", "--tag", "t2", "--", "false"],
    ):
        assert gitexp("run", *args).exit_code in (0, 1)
    return sorted(read_branch(project).runs.values(), key=lambda run: run["id"])


def _suffix(run_id: str) -> str:
    return run_id.rsplit("-", 1)[-1]


# `@~²` is a digit to str.isdigit() and not to int(); the rest are paths, escapes, git words.
ODD_REFS = ["@", "@~1", "@~3", "@~4", "@~99999999999999999999", "@~-1", "@~", "@~x",
            "@~²", "@~\u0663", "@@", "~1", "HEAD", "..", "../..", "/", "\x1b[31m", "a\nb",
            "\r"]  # fmt: skip


def _refs(runs: list[dict[str, Any]]) -> st.SearchStrategy[str]:
    ids = [run["id"] for run in runs]
    return st.one_of(
        st.sampled_from(ids),
        st.sampled_from(ids).flatmap(lambda i: st.integers(0, len(i)).map(lambda n: i[:n])),
        st.sampled_from([_suffix(i) for i in ids]),
        st.sampled_from(["base", GREEK, "broken", "BASE", GREEK[0]]),
        st.sampled_from(ODD_REFS),
        st.text(alphabet=ARGV_TEXT, max_size=12),
    )


def _resolves_to(runs: list[dict[str, Any]], ref: str) -> tuple[str | None, set[str]]:
    """The run `ref` must name (None when none or several), and every run it may name.

    Documented: an id, a unique id prefix, the random suffix, a name, `@`, `@~N`.
    """
    if ref.startswith("@"):
        return None, {run["id"] for run in runs}
    exact = [run["id"] for run in runs if run["id"] == ref]
    if exact:
        return exact[0], set(exact)
    strict = {
        run["id"]
        for run in runs
        if run["id"].startswith(ref) or _suffix(run["id"]) == ref or run.get("name") == ref
    }
    loose = strict | {run["id"] for run in runs if _suffix(run["id"]).startswith(ref)}
    must = next(iter(strict)) if len(strict) == 1 and loose == strict else None
    return must, loose


@pytest.mark.slow
@FEW
@given(data=st.data())
def test_random_run_names_for_show_and_diff(
    project: Path, some_runs: list[dict[str, Any]], data: st.DataObject
) -> None:
    ids = {run["id"] for run in some_runs}
    a, b = data.draw(_refs(some_runs), "a"), data.draw(_refs(some_runs), "b")

    shown = gitexp("show", "--json", "--", a)

    one_clear_outcome(shown)
    must, may = _resolves_to(some_runs, a)
    if must is not None:
        assert shown.exit_code == 0, f"{a!r} names {must}: {shown.output}"
    if shown.exit_code == 0:
        named = {run_id for run_id in ids if run_id in shown.stdout}
        assert len(named) == 1 and named <= may, (a, named, may)
        assert must is None or named == {must}
    elif not may:
        assert shown.exit_code == 1, shown.output

    compared = gitexp("diff", "--no-pager", "--", a, b)

    one_clear_outcome(compared, refusal_explains=True)
    if must is not None and _resolves_to(some_runs, b)[0] is not None and a != b:
        assert compared.exit_code in (0, 3), compared.output
    assert read_branch(project).ids == ids


def test_odd_run_names(some_runs: list[dict[str, Any]]) -> None:
    """The odd names of the random test above, each tried every time."""
    wrong = {}
    for ref in ODD_REFS:
        for args in (["show", "--", ref], ["diff", "--no-pager", "--", "@", ref]):
            try:
                one_clear_outcome(gitexp(*args), refusal_explains=True)
            except AssertionError as e:
                wrong[ref] = str(e).splitlines()[0]
    assert not wrong, wrong


@FEW
@given(data=st.data())
def test_random_log_filters(
    project: Path, some_runs: list[dict[str, Any]], data: st.DataObject
) -> None:
    text = st.text(alphabet=ARGV_TEXT, max_size=8)
    statuses = data.draw(st.lists(st.sampled_from(STATUSES) | text, max_size=3), "statuses")
    tags = data.draw(st.lists(st.sampled_from(["t1", "t2", "nope"]) | text, max_size=3), "tags")
    name = data.draw(st.none() | st.sampled_from(["base", GREEK, "broken"]) | text, "name")
    args = [f"--status={s}" for s in statuses] + [f"--tag={t}" for t in tags]
    args += [] if name is None else [f"--name={name}"]

    result = gitexp("log", "--json", *args)

    one_clear_outcome(result)
    if any(s not in STATUSES for s in statuses):
        assert result.exit_code == 2, result.output
        return
    assert result.exit_code == 0, result.output
    listed = [run["id"] for run in json.loads(result.stdout)]
    expected = [
        run["id"]
        for run in some_runs
        if (not statuses or run["status"] in statuses)
        and all(tag in (run.get("tags") or []) for tag in tags)
        and (name is None or run.get("name") == name)
    ]
    assert sorted(listed) == sorted(expected), (args, listed, expected)


# Run.log values ----------------------------------------------------------------------------

METRIC_NAMES = st.one_of(
    st.sampled_from(["loss", "train/loss", "a b", "tab\there", "new\nline", "cr\r", "", "é/λ",
                     "🚀", "x" * 300, "step", "time", "name\tvalue"]),
    st.text(alphabet=ARGV_TEXT, max_size=12),
)  # fmt: skip
METRIC_VALUES = st.one_of(
    st.floats(),
    st.integers(min_value=-(10**400), max_value=10**400),
    st.sampled_from([1e308, -1e308, 5e-324, math.nan, math.inf, -math.inf, 2**63, -(2**63),
                     10**309, True, False]),
)  # fmt: skip


def _as_recorded(value: Any) -> float:
    try:
        return float(value)
    except OverflowError:  # an int beyond a float: only its sign survives
        return math.inf if value > 0 else -math.inf


@pytest.mark.slow
@FEW
@given(st.lists(st.tuples(METRIC_NAMES, METRIC_VALUES), min_size=1, max_size=6))
@example([("loss", 10**400)])
@example([("tab\there", 1.0)])
def test_random_metric_values_through_the_api(project: Path, logged: list[tuple[str, Any]]) -> None:
    run = gitexp_api.init(config={"case": "metrics"})
    accepted: list[tuple[int, str, float]] = []
    try:
        for step, (name, value) in enumerate(logged):
            try:
                run.log({name: value}, step=step)
            except (TypeError, ValueError) as e:  # refused: one clear line, training goes on
                assert "\n" not in str(e), str(e)
                continue
            accepted.append((step, name, _as_recorded(value)))
    finally:
        run.finish()

    branch = check_branch(project)
    files = branch.files[run.id]
    assert branch.runs[run.id]["status"] == "succeeded"
    rows = files.get("metrics.tsv", b"step\ttime\tname\tvalue\n").decode().split("\n")
    assert rows[0] == "step\ttime\tname\tvalue" and rows[-1] == "", rows
    assert len(rows) - 2 == len(accepted), f"{len(accepted)} values logged: {rows!r}"
    assert all(len(row.split("\t")) == 4 for row in rows[1:-1]), rows
    summary = yamlio.load(files.get("summary.yaml", b"{}"), "summary.yaml") or {}
    for logged_name in {name for _, name, _ in accepted}:
        values = [value for _, n, value in accepted if n == logged_name]
        name = _as_column(logged_name)
        assert name in summary, (name, summary)
        assert summary[name]["count"] == len(values), summary[name]
        assert same(float(summary[name]["last"]), values[-1]), (summary[name], values)
    shown = gitexp("show", "--json", run.id)  # and gitexp reads it back
    assert shown.exit_code == 0, shown.output


def _as_column(name: str) -> str:
    """A metric name as the record keeps it: one TSV field, controls written as escapes."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in name)


# Bytes that are not UTF-8 ----------------------------------------------------------------

ARGPARSE = """\
import argparse, gitexp
parser = argparse.ArgumentParser()
parser.add_argument("--data")
with gitexp.init(config=parser.parse_args()) as run:
    run.log({"loss": 1.0})
"""


@pytest.mark.parametrize(
    "args",
    [
        [b"run", b"--param=path=/data/caf\xe9", b"--", b"true"],
        [b"run", b"--name=caf\xe9", b"--", b"true"],
        [b"run", b"--tag=\xff", b"--", b"true"],
        [b"run", b"--", b"true", b"--data", b"/data/caf\xe9"],
        [b"show", b"--", b"\xff"],
        [b"log", b"--name=\xff"],
    ],
    ids=["param", "name", "tag", "command", "show", "log"],
)
def test_argv_bytes_that_are_not_utf8(project: Path, args: list[bytes]) -> None:
    """A Latin-1 file name on the command line: a record that keeps it, or one clear error."""
    assert gitexp("run", "--", "true").exit_code == 0
    before = read_branch(project).ids

    done = subprocess.run(
        [sys.executable.encode(), b"-m", b"gitexp", *args], cwd=project, capture_output=True
    )

    out, err = done.stdout.decode(errors="replace"), done.stderr.decode(errors="replace")
    no_crash_report(out + err)
    added = read_branch(project).ids - before
    if done.returncode != 0 or args[0] != b"run":
        assert done.returncode in (0, 1, 2, 3), err
        assert done.returncode == 0 or len(err.splitlines()) == 1, err
        assert not added
    else:
        assert len(added) == 1
    check_branch(project)


def test_a_script_parsing_bytes_that_are_not_utf8(project: Path) -> None:
    (project.parent / "args.py").write_text(ARGPARSE)
    before = read_branch(project).ids

    done = subprocess.run(
        [sys.executable.encode(), b"../args.py", b"--data", b"/data/caf\xe9"],
        cwd=project,
        capture_output=True,
    )

    err = done.stderr.decode(errors="replace")
    no_crash_report(err)
    assert done.returncode == 0, err  # gitexp never stops a training
    (run_id,) = read_branch(project).ids - before
    assert check_branch(project).runs[run_id]["status"] == "succeeded"
