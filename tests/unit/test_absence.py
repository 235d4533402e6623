"""Checkout abandonment through the pure core: exact outputs on hand-written sequences."""

from __future__ import annotations

import itertools

import pytest

from pipeline.core.absence import AbsenceRule, trigger_id
from pipeline.core.clock import POS_INF_MS
from pipeline.core.engine import MemoryStore, Processor
from pipeline.core.events import Event
from pipeline.tools.replay import replay_events

MIN = 60_000
T0 = 1_790_000_000_000
RULE = AbsenceRule("checkout_abandoned", "checkout_started", "order_completed", 30 * MIN)


def ev(mid: str, name: str, at_min: float, person: str = "u1") -> Event:
    return Event(
        message_id=mid,
        type="track",
        event=name,
        user_id=person,
        timestamp_ms=T0 + int(at_min * MIN),
    )


def fired(
    events: list[Event], rule: AbsenceRule = RULE, lateness: int = 0
) -> list[tuple[str, str]]:
    outs = replay_events(events, [rule], allowed_lateness_ms=lateness)
    return [
        (o.record["person_id"], o.record["event_ids"][0]) for o in outs if o.topic == "triggers"
    ]


@pytest.mark.parametrize(
    ("purchase_at_min", "abandoned"),
    [
        (None, True),
        (0, False),  # same millisecond: the checkout sorts first, the purchase converts it
        (10, False),
        (29.99, False),
        (30, True),  # half-open: a purchase at exactly +30 min is too late
        (45, True),
        (-5, True),  # a purchase before the checkout does not convert it
    ],
)
def test_purchase_within_30_minutes_half_open(
    purchase_at_min: float | None, abandoned: bool
) -> None:
    events = [ev("c1", "checkout_started", 0)]
    if purchase_at_min is not None:
        events.append(ev("o1", "order_completed", purchase_at_min))
    assert fired(events) == ([("u1", "c1")] if abandoned else [])


def test_trigger_record_is_complete_and_deterministic() -> None:
    start = Event(
        message_id="c1",
        type="track",
        event="checkout_started",
        user_id="u1",
        timestamp_ms=T0,
        properties={"value": 99.5, "currency": "EUR", "color": "red"},
        context={"channel": "web"},
    )
    (out,) = replay_events([start], [RULE], allowed_lateness_ms=0)
    assert out.topic == "triggers"
    assert out.key == "u1"
    assert out.record == {
        "trigger_id": trigger_id("checkout_abandoned", "u1", "c1"),
        "rule": "checkout_abandoned",
        "person_id": "u1",
        "event_ids": ["c1"],
        "event_time_ms": T0 + 30 * MIN,
        "context": {"value": 99.5, "currency": "EUR", "started_at_ms": T0, "channel": "web"},
    }
    assert trigger_id("checkout_abandoned", "u1", "c1") != trigger_id(
        "checkout_abandoned", "u2", "c1"
    )


def test_timer_fires_only_when_watermark_reaches_deadline() -> None:
    proc = Processor([RULE], allowed_lateness_ms=0, store=MemoryStore())
    assert proc.process(ev("c1", "checkout_started", 0)) == []
    assert proc.process(ev("x", "page_viewed", 29.99, person="other")) == []
    (out,) = proc.process(ev("y", "page_viewed", 30, person="other"))
    assert out.record["event_ids"] == ["c1"]
    assert proc.advance_to(POS_INF_MS) == []  # fires exactly once


def test_repeat_checkout_does_not_rearm_by_default() -> None:
    events = [ev("c1", "checkout_started", 0), ev("c2", "checkout_started", 20)]
    assert fired(events) == [("u1", "c1")]


def test_repeat_checkout_restarts_timer_when_asked() -> None:
    rule = AbsenceRule(
        "checkout_abandoned",
        "checkout_started",
        "order_completed",
        30 * MIN,
        restart_on_repeat=True,
    )
    # the purchase at +40 is within 30 min of the second checkout, not of the first
    events = [
        ev("c1", "checkout_started", 0),
        ev("c2", "checkout_started", 20),
        ev("o1", "order_completed", 40),
    ]
    assert fired(events, rule) == []
    assert fired(events, RULE) == [("u1", "c1")]


def test_checkout_after_deadline_starts_a_new_journey() -> None:
    events = [ev("c1", "checkout_started", 0), ev("c2", "checkout_started", 31)]
    assert fired(events) == [("u1", "c1"), ("u1", "c2")]


def test_people_are_independent() -> None:
    events = [
        ev("c1", "checkout_started", 0, "a"),
        ev("c2", "checkout_started", 0, "b"),
        ev("o2", "order_completed", 5, "b"),
    ]
    assert fired(events) == [("a", "c1")]


def test_late_event_goes_to_late_output_not_lost() -> None:
    proc = Processor([RULE], allowed_lateness_ms=5 * MIN, store=MemoryStore())
    proc.process(ev("p", "page_viewed", 60))
    (out,) = proc.process(ev("o1", "order_completed", 54))  # watermark is at 55
    assert out.topic == "events.late"
    assert out.record["message_id"] == "o1"
    assert out.record["watermark_ms"] == T0 + 55 * MIN
    assert proc.late_count == 1


def test_any_arrival_order_within_lateness_gives_same_triggers() -> None:
    events = [
        ev("c1", "checkout_started", 0),
        ev("o1", "order_completed", 10),
        ev("c2", "checkout_started", 40),
        ev("c3", "checkout_started", 50),
    ]
    expected = fired(events, lateness=60 * MIN)
    assert expected == [("u1", "c2")]
    for order in itertools.permutations(events):
        assert fired(list(order), lateness=60 * MIN) == expected


def test_state_is_cleared_when_nothing_is_pending() -> None:
    store = MemoryStore()
    proc = Processor([RULE], allowed_lateness_ms=0, store=store)
    proc.process(ev("c1", "checkout_started", 0))
    proc.process(ev("o1", "order_completed", 5))
    proc.process(ev("p", "page_viewed", 10))
    # nothing pending, but the last `within` of history is kept for identity merges
    state = store.data["u1"]["checkout_abandoned"]
    assert state["act"] is None
    assert [item[2] for item in state["hist"]] == ["c1", "o1"]
    assert proc.advance_to(T0 + 35 * MIN) == []  # pruned by its own timer
    assert store.data == {}


def test_timer_index_rebuilds_from_store() -> None:
    store = MemoryStore()
    proc = Processor([RULE], allowed_lateness_ms=0, store=store)
    proc.process(ev("c1", "checkout_started", 0))
    restarted = Processor([RULE], allowed_lateness_ms=0, store=store)
    assert restarted.rebuild_index() == 1
    restarted.clock.observe(T0)
    (out,) = restarted.advance_to(T0 + 30 * MIN)
    assert out.record["event_ids"] == ["c1"]


def test_rule_validates_itself() -> None:
    with pytest.raises(ValueError, match="within_ms"):
        AbsenceRule("r", "a", "b", 0)
    with pytest.raises(ValueError, match="same event"):
        AbsenceRule("r", "Checkout Started", "checkout_started", 10)
