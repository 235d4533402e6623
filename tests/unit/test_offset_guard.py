"""The guard in front of each agent: every record of a partition, in order, once,
even when the consumer skips some (see pipeline/worker/offsets.py)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from pipeline.worker.offsets import OffsetGuard, Verdict

P, S, G = Verdict.PROCESS, Verdict.SEEN, Verdict.GAP


def feed(guard: OffsetGuard, offsets: list[int], partition: int = 0) -> list[Verdict]:
    return [guard.check(partition, o) for o in offsets]


def test_in_order_records_are_processed_and_repeats_dropped() -> None:
    guard = OffsetGuard()
    assert feed(guard, [5, 6, 7]) == [P, P, P]  # the first record sets the start
    assert feed(guard, [5, 6, 7, 8]) == [S, S, S, P]  # a seek back re-delivers


def test_a_skipped_stretch_is_reported_until_filled() -> None:
    guard = OffsetGuard()
    feed(guard, [31, 32])
    assert feed(guard, [38]) == [G]  # 33-37 never arrived
    assert guard.expected[0] == 33  # the agent reads 33..37 from the broker
    guard.advance(0, 38)  # ... processes them and 38
    assert feed(guard, [33, 37, 38, 39]) == [S, S, S, P]


def test_partitions_are_independent_and_revocation_forgets() -> None:
    guard = OffsetGuard()
    assert feed(guard, [0, 1], partition=0) == [P, P]
    assert feed(guard, [100], partition=1) == [P]
    assert feed(guard, [3], partition=0) == [G]
    guard.forget(0)
    assert feed(guard, [50], partition=0) == [P]  # a new owner starts where Faust seeks


@given(deliveries=st.lists(st.integers(min_value=0, max_value=40), min_size=1, max_size=80))
def test_whatever_is_delivered_each_offset_is_processed_once_in_order(
    deliveries: list[int],
) -> None:
    # any delivery order with repeats and holes: processing (filled holes included)
    # covers a contiguous run of offsets, each once, ascending
    guard = OffsetGuard()
    processed: list[int] = []
    for offset in deliveries:
        verdict = guard.check(0, offset)
        if verdict is P:
            processed.append(offset)
        elif verdict is G:
            processed.extend(range(guard.expected[0], offset + 1))
            guard.advance(0, offset)
    assert processed == list(range(deliveries[0], processed[-1] + 1))
    assert processed[-1] == max(deliveries)
