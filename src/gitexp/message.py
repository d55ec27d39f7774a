"""The message of a record commit, so that `git log gitexp/runs` reads as a log of results:
`gitexp: run <id> succeeded (baseline): loss=0.231 acc=0.912`.

Metric names and the run's name come from the training script and are untrusted: control
characters are shown as escapes, never written into a commit's first line raw, where a
newline would forge a line of `git log` and an escape sequence would drive the terminal.
"""

from __future__ import annotations

from gitexp import yamlio
from gitexp.reader import terminal_safe
from gitexp.record import RunInfo

SHOWN = 3  # metrics on the first line: the first ones logged, which a script logs as its main
# The first-logged metrics are looked for in this much of metrics.tsv: a metric first logged
# later than that is not a main one, and a run of a million steps costs no more to describe.
HEAD_BYTES = 256 * 1024
_NAME_CHARS = 32  # a longer name is cut, so the first line stays short


def record_message(info: RunInfo, series: bytes | None) -> tuple[str, str]:
    """The first line and the body of the commit that records `info`'s run.

    `series` is the record's metrics.tsv: the first line ends with the last value of the
    metrics logged first (at most SHOWN, in the order they first appear), to 4 digits.
    """
    label = f" ({_safe(info.name)})" if info.name else ""
    outcome = " ".join(f"{_safe(name)}={value:.4g}" for name, value in last_values(series))
    summary = f"gitexp: run {info.id} {info.status}{label}" + (f": {outcome}" if outcome else "")
    return summary, yamlio.text("command: " + " ".join(info.command))


def first_logged(series: bytes, count: int = SHOWN) -> list[bytes]:
    """The names of the first `count` metrics of metrics.tsv, in the order they first appear."""
    head = series[:HEAD_BYTES].split(b"\n")[1:-1]  # the header, and a line cut by the bound
    names: list[bytes] = []
    for line in head:
        parts = line.split(b"\t")
        if len(parts) == 4 and parts[2] not in names:
            names.append(parts[2])
            if len(names) == count:
                break
    return names


def last_values(series: bytes | None, count: int = SHOWN) -> list[tuple[str, float]]:
    """Each first-logged metric's name and its last value, as metrics.tsv holds them.

    The last row of a metric is found by searching back from the end of the file, not by
    reading every row: summary.yaml holds the same values, but parsing it within a record's
    limits costs a second for a run that logged 2,000 metrics.
    """
    if not series:
        return []
    found = []
    for name in first_logged(series, count):
        value = _last_value(series, name)
        if value is not None:
            found.append((name.decode("utf-8", "backslashreplace"), value))
    return found


def _last_value(series: bytes, name: bytes) -> float | None:
    field = b"\t" + name + b"\t"
    end = len(series)
    while (at := series.rfind(field, 0, end)) >= 0:
        start = series.rfind(b"\n", 0, at) + 1
        stop = series.find(b"\n", at)
        parts = series[start : stop if stop >= 0 else len(series)].split(b"\t")
        if len(parts) == 4 and parts[2] == name:  # not a time or a value that looked alike
            try:
                return float(parts[3])
            except ValueError:
                return None
        end = at + len(field) - 1
    return None


def _safe(text: str) -> str:
    shown = terminal_safe(yamlio.text(text))
    return shown if len(shown) <= _NAME_CHARS else shown[: _NAME_CHARS - 1] + "…"
