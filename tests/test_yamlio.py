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
