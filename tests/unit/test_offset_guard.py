"""The guard in front of each agent: every record of a partition, in order, once,
even when the consumer skips some (see pipeline/worker/offsets.py)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from pipeline.worker.offsets import OffsetGuard, StreamReadOffsets, Verdict

P, S, K, W, H = Verdict.PROCESS, Verdict.SEEN, Verdict.SEEK, Verdict.WAIT, Verdict.HOLE


def feed(guard: OffsetGuard, offsets: list[int], partition: int = 0) -> list[Verdict]:
    return [guard.check(partition, o) for o in offsets]


def test_in_order_records_are_processed_and_repeats_dropped() -> None:
    guard = OffsetGuard()
    assert feed(guard, [5, 6, 7]) == [P, P, P]  # the first record sets the start
    assert feed(guard, [5, 6, 7, 8]) == [S, S, S, P]  # Faust's seek back re-delivers


def test_a_skipped_record_is_sought_back_and_processed_in_order() -> None:
    guard = OffsetGuard()
    feed(guard, [31, 32])
    # 33-37 never arrive: 38 comes first, then what was already fetched
    assert feed(guard, [38, 39, 40]) == [K, W, W]
    assert guard.expected[0] == 33  # the agent seeks here
    # after the seek everything from 33 comes again, in order
    assert feed(guard, [33, 34, 35, 36, 37, 38, 39, 40, 41]) == [P] * 9


def test_a_real_hole_is_accepted_when_records_after_it_repeat() -> None:
    guard = OffsetGuard()
    feed(guard, [10])
    # offsets 11-12 are transaction markers: nothing to read there
    assert feed(guard, [13, 14]) == [K, W]
    # the seek to 11 delivers 13 again: the hole is real
    assert feed(guard, [13, 14, 15]) == [H, P, P]


def test_partitions_are_independent_and_revocation_forgets() -> None:
    guard = OffsetGuard()
    assert feed(guard, [0, 1], partition=0) == [P, P]
    assert feed(guard, [100], partition=1) == [P]
    assert feed(guard, [3], partition=0) == [K]
    guard.forget(0)
    assert feed(guard, [50], partition=0) == [P]  # a new owner starts where Faust seeks


def test_the_guard_gives_up_waiting_after_a_bound() -> None:
    guard = OffsetGuard(give_up_after=3)
    feed(guard, [0])
    assert feed(guard, [5, 6, 7, 8]) == [K, W, W, H]


@given(
    n=st.integers(min_value=2, max_value=60),
    data=st.data(),
)
def test_whatever_the_consumer_skips_once_each_record_is_processed_once_in_order(
    n: int, data: st.DataObject
) -> None:
    # a delivery that skips a stretch, then (after the seek) delivers from the hole on
    start = data.draw(st.integers(min_value=1, max_value=n - 1))
    end = data.draw(st.integers(min_value=start + 1, max_value=n))
    leftovers = data.draw(st.integers(min_value=0, max_value=n - end))
    guard = OffsetGuard()
    processed: list[int] = []
    first = [*range(start), *range(end, end + 1 + leftovers)]
    for offset in first:
        if guard.check(0, offset) in (P, H):
            processed.append(offset)
    resume = guard.expected[0]
    for offset in range(resume, n + 1):
        if guard.check(0, offset) in (P, H):
            processed.append(offset)
    assert processed == list(range(n + 1))


def test_fausts_read_offset_filter_is_off_for_the_agents_topics_only() -> None:
    from faust.types import TP

    events, changelog = TP("pulse.events", 0), TP("pulse-person-state-changelog", 0)
    offsets = StreamReadOffsets(["pulse.events"], {changelog: 7, events: 9})
    assert offsets[events] is None  # every delivered record reaches the guard
    assert offsets[changelog] == 7  # recovery keeps Faust's filter
    offsets[events] = 12
    offsets.update({events: 13, changelog: 8})
    assert (offsets[events], offsets[changelog]) == (None, 8)
    assert offsets[TP("pulse-identity-links-changelog", 1)] is None  # defaultdict behaviour
