"""Dedupe of message ids within an event-time / count horizon (pure core)."""

from __future__ import annotations

import doctest

from hypothesis import given
from hypothesis import strategies as st

from pipeline.core import dedupe as dedupe_module
from pipeline.core.dedupe import DedupeWindow


def test_doctest() -> None:
    assert doctest.testmod(dedupe_module).failed == 0


def test_repeat_within_horizon_is_dropped_and_counted() -> None:
    seen = DedupeWindow(horizon_ms=10_000, max_ids=100).build()
    assert seen.offer("a", 1_000)
    assert seen.offer("b", 5_000)
    assert not seen.offer("a", 1_000)
    assert not seen.offer("a", 9_999)  # same id, whatever its time
    assert seen.duplicates == 2


def test_ids_older_than_the_horizon_are_forgotten() -> None:
    seen = DedupeWindow(horizon_ms=10_000, max_ids=100).build()
    seen.offer("a", 1_000)
    seen.offer("b", 11_000)  # a is exactly at the horizon: kept
    assert "a" in seen
    seen.offer("c", 11_001)  # now a is older than the horizon
    assert "a" not in seen
    assert seen.offer("a", 1_000), "forgotten: processed again"


def test_count_bound() -> None:
    seen = DedupeWindow(horizon_ms=10**12, max_ids=3).build()
    for i in range(10):
        seen.offer(f"m{i}", 1_000 + i)
    assert len(seen) == 3
    assert "m9" in seen
    assert "m6" not in seen


def test_snapshot_round_trip() -> None:
    window = DedupeWindow(horizon_ms=10_000, max_ids=10)
    seen = window.build()
    for i in range(5):
        seen.offer(f"m{i}", 1_000 * i)
    seen.offer("m1", 0)
    again = window.build(seen.snapshot())
    assert again.snapshot() == seen.snapshot()
    assert not again.offer("m3", 0)
    assert again.duplicates == 2


@given(st.lists(st.tuples(st.integers(0, 30), st.integers(0, 100_000)), max_size=200))
def test_never_drops_a_first_occurrence_and_stays_bounded(offers: list[tuple[int, int]]) -> None:
    seen = DedupeWindow(horizon_ms=20_000, max_ids=8).build()
    first: set[int] = set()
    for mid, ts in offers:
        fresh = seen.offer(str(mid), ts)
        if mid not in first:
            assert fresh, "a never-seen id must pass"
            first.add(mid)
        assert len(seen) <= 8
    assert seen.duplicates <= len(offers) - len(first)
