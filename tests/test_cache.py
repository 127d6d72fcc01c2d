"""The bounded memo adapters keep per-record knowledge in."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from connectors.cache import Bounded


def test_it_forgets_the_entry_used_longest_ago() -> None:
    memo: Bounded[str, int] = Bounded(3)
    for number, key in enumerate("abc"):
        memo[key] = number
    assert memo["a"] == 0  # "a" is now the most recently used
    memo["d"] = 3
    assert sorted(memo) == ["a", "c", "d"] and len(memo) == 3
    assert memo.get("b") is None


def test_it_never_holds_more_than_its_size_however_many_workers_write() -> None:
    memo: Bounded[int, int] = Bounded(100)
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda n: memo.__setitem__(n, n), range(10_000)))
    assert len(memo) == 100


def test_a_size_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match="at least one entry"):
        Bounded(0)
