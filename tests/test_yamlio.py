from __future__ import annotations

import threading

import pytest

from gitexp import yamlio


@pytest.mark.slow
def test_dump_and_load_are_safe_from_many_threads() -> None:
    data = {f"key{i}": {"values": list(range(i)), "name": f"n{i}: x"} for i in range(20)}
    failures: list[BaseException] = []

    def work() -> None:
        try:
            for _ in range(20):
                assert yamlio.load(yamlio.dump(data), "test") == data
        except BaseException as e:  # collected: the assertion below names it
            failures.append(e)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []


def test_dump_keeps_the_callers_key_order() -> None:
    assert yamlio.dump({"b": 1, "a": 2}) == b"b: 1\na: 2\n"


def test_one_scalar_is_changed_in_place_and_nothing_else() -> None:
    raw = b"# tuned\noptim:\n  lr: 0.1  # best\n  ratio: 1e-3\nsteps: 017\nflow: {a: 1, b: 2}\n"
    assert yamlio.with_scalar(raw, "optim.lr", 1e-05, "c.yaml") == raw.replace(
        b"lr: 0.1", b"lr: 1.0e-05"
    )
    assert yamlio.with_scalar(raw, "flow.b", "x y", "c.yaml") == raw.replace(b"b: 2}", b'b: "x y"}')
    assert yamlio.with_scalar(raw, "optim.nope", 1, "c.yaml") is None
    assert yamlio.with_scalar(raw, "optim", 1, "c.yaml") is None  # a mapping, no scalar
    shared = b"base: &lr 0.1\nhead: *lr\n"  # one value in two places: no edit of one alone
    assert yamlio.with_scalar(shared, "head", 0.2, "c.yaml") is None


def test_scalars_read_back_alike_in_yaml_1_1_and_1_2() -> None:
    assert [yamlio.scalar_text(v) for v in (1e-05, 1e20, 0.25, 3, True, float("inf"))] == [
        "1.0e-05", "1.0e+20", "0.25", "3", "true", ".inf",
    ]  # fmt: skip
    assert yamlio.scalar_text("a: b") == '"a: b"'
