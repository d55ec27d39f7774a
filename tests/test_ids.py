from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone

from gitexp.ids import ID_PATTERN, new_run_id, suffix_of


def test_ids_are_short_and_sort_by_start_time_to_the_millisecond() -> None:
    start = datetime(2026, 11, 22, 13, 3, 51, 999_000, tzinfo=timezone.utc)
    moments = [start + timedelta(milliseconds=ms) for ms in (0, 1, 2, 500, 1001, 60_000)]
    ids = [new_run_id(moment) for moment in moments]
    assert ids == sorted(ids)
    assert all(ID_PATTERN.match(run_id) and len(run_id) <= 24 for run_id in ids)
    assert ids[0].startswith("20261122-130351-rr")


def test_seeding_the_global_random_does_not_repeat_ids() -> None:
    moment = datetime(2026, 1, 1, tzinfo=timezone.utc)
    random.seed(0)
    first = new_run_id(moment)
    random.seed(0)
    assert new_run_id(moment) != first


def test_suffix_names_the_run() -> None:
    assert suffix_of("20261122-130351-0rk3f9q") == "0rk3f9q"
