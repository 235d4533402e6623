"""At-least-once delivery: an event read again (restart, rebalance, Faust's
recovery seek, ingest forwarding it twice) is recognised by the source offset
it was read from, and changes nothing: no double count, no late record."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.core.clock import POS_INF_MS
from pipeline.core.engine import SRC, MemoryStore, Processor
from pipeline.topology.operators import default_operators
from tests.unit.helpers import CHECKOUT as RULE
from tests.unit.helpers import MIN, T0, ev


def test_a_redelivered_event_is_skipped_not_counted_twice_nor_late() -> None:
    store = MemoryStore()
    proc = Processor(default_operators(), allowed_lateness_ms=0, store=store)
    proc.process(ev("v1", "product_viewed", 0, anonymous_id="a"), source=(2, 10))
    proc.process(ev("v2", "product_viewed", 5, anonymous_id="a"), source=(2, 11))
    proc.advance_to(T0 + 60 * MIN)  # the watermark is past both events now
    before = store.load("a")
    # the same two records again: neither a second count nor a late record
    assert proc.process(ev("v1", "product_viewed", 0, anonymous_id="a"), source=(2, 10)) == []
    assert proc.process(ev("v2", "product_viewed", 5, anonymous_id="a"), source=(2, 11)) == []
    assert store.load("a") == before
    assert (proc.redelivered_count, proc.late_count) == (2, 0)
    # a new record of the same partition is applied (here: late, so reported)
    late = proc.process(ev("v3", "product_viewed", 6, anonymous_id="a"), source=(2, 12))
    assert [o.topic for o in late] == ["events.late"]


def test_offsets_are_per_source_partition() -> None:
    store = MemoryStore()
    proc = Processor([RULE], allowed_lateness_ms=0, store=store)
    proc.process(ev("c1", "checkout_started", 0, user_id="u"), source=(0, 50))
    # another device of the same person, on another source partition, lower offset
    proc.process(ev("o1", "order_completed", 1, user_id="u"), source=(3, 7))
    assert store.data["u"][SRC] == {"0": 50, "3": 7}
    assert [o for o in proc.advance_to(POS_INF_MS) if o.topic == "triggers"] == []


def test_a_merge_keeps_the_later_offset_of_each_partition() -> None:
    anon = Processor([RULE], allowed_lateness_ms=0, store=MemoryStore())
    anon.process(ev("c1", "checkout_started", 0, anonymous_id="a"), source=(1, 40))
    user = Processor([RULE], allowed_lateness_ms=0, store=MemoryStore())
    # the user's own checkout on another device, then the login on the anonymous one
    user.process(ev("c2", "checkout_started", 1, user_id="u"), "u", source=(0, 9))
    user.process(ev("l1", "logged_in", 2, anonymous_id="a", user_id="u"), "u", source=(1, 41))
    state = anon.extract("a")
    assert state is not None
    user.merge_in("u", state, "a")
    assert user.store.load("u")[SRC] == {"1": 41, "0": 9}  # type: ignore[index]
    # the anonymous checkout, read again, stays one checkout of the merged person
    assert (
        user.process(ev("c1", "checkout_started", 0, anonymous_id="a"), "u", source=(1, 40)) == []
    )
    fired = [o.record for o in user.advance_to(POS_INF_MS) if o.topic == "triggers"]
    assert [r["event_ids"] for r in fired] == [["c1"]]


def test_without_a_source_nothing_is_recorded() -> None:
    # replay and tests pass no source: state stays exactly as before
    store = MemoryStore()
    proc = Processor([RULE], allowed_lateness_ms=0, store=store)
    proc.process(ev("c1", "checkout_started", 0, user_id="u"))
    assert SRC not in store.data["u"]


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(min_value=1, max_value=25),
    data=st.data(),
)
def test_any_redelivered_suffix_gives_the_same_outputs_and_state(
    n: int, data: st.DataObject
) -> None:
    names = ["product_viewed", "product_added", "checkout_started", "order_completed"]
    events = [ev(f"m{i}", data.draw(st.sampled_from(names)), i, user_id="u") for i in range(n)]
    # a restart re-reads everything after some committed offset, once or more
    committed = data.draw(st.integers(min_value=0, max_value=n))
    rereads = data.draw(st.integers(min_value=1, max_value=3))
    delivered = list(range(n))
    for _ in range(rereads):
        delivered += list(range(committed, n))

    def run(order: list[int]) -> tuple[list[object], object]:
        store = MemoryStore()
        proc = Processor(default_operators(), allowed_lateness_ms=0, store=store)
        out: list[object] = []
        for i in order:
            out += [(o.topic, o.record) for o in proc.process(events[i], source=(0, i))]
        out += [(o.topic, o.record) for o in proc.advance_to(T0 + (n + 60) * MIN)]
        return out, store.data

    assert run(delivered) == run(list(range(n)))


def test_a_merge_delivered_twice_merges_once() -> None:
    anon = Processor(default_operators(), allowed_lateness_ms=0, store=MemoryStore())
    anon.process(ev("v1", "product_viewed", 0, anonymous_id="a"), source=(1, 3))
    state = anon.extract("a")
    assert state is not None
    user = Processor(default_operators(), allowed_lateness_ms=0, store=MemoryStore())
    user.process(ev("l1", "logged_in", 1, anonymous_id="a", user_id="u"), "u", awaits="a")
    assert [o.topic for o in user.merge_in("u", state, "a")] == ["identities"]
    once = user.store.load("u")
    # the merge-in record read again after a restart: no second merge
    assert user.merge_in("u", state, "a") == []
    assert user.store.load("u") == once
