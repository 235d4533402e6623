"""Sessions: a merging table and hand-written sequences with exact outputs."""

from __future__ import annotations

import pytest

from pipeline.core.engine import MemoryStore, Processor
from pipeline.core.events import Event
from pipeline.core.facts import fact_of
from pipeline.core.opensession import Session
from pipeline.core.sessions import (
    SessionsOperator,
    SessionWindows,
    assign,
    merge_open,
    session_id,
    summary,
)
from pipeline.tools.replay import replay_events

MIN = 60_000
T0 = 1_790_000_000_000
GAP = 30 * MIN
OP = SessionsOperator(SessionWindows(inactivity_gap_ms=GAP))


def ev(
    mid: str, at_min: float, name: str = "page_viewed", person: str = "u1", **kw: object
) -> Event:
    return Event(
        message_id=mid,
        type="track",
        event=name,
        user_id=person,
        timestamp_ms=T0 + int(at_min * MIN),
        **kw,
    )  # type: ignore[arg-type]


def spans(arrivals: list[float], lateness_min: int = 120) -> list[tuple[float, float, int]]:
    events = [ev(f"m{i}", t) for i, t in enumerate(arrivals)]
    outs = replay_events(events, [OP], allowed_lateness_ms=lateness_min * MIN)
    assert all(o.topic == "sessions" for o in outs)
    return [
        (
            (o.record["start_ms"] - T0) / MIN,
            (o.record["end_ms"] - T0) / MIN,
            o.record["event_count"],
        )
        for o in outs
    ]


@pytest.mark.parametrize(
    ("arrivals", "expected"),
    [
        ([0], [(0, 0, 1)]),
        ([0, 29], [(0, 29, 2)]),
        ([0, 29.99], [(0, 29.99, 2)]),
        ([0, 30], [(0, 0, 1), (30, 30, 1)]),  # half-open: exactly the gap apart is a new session
        ([10, 0], [(0, 10, 2)]),  # a late event extends a session backwards
        ([0, 50, 25], [(0, 50, 3)]),  # a late event bridges two sessions into one
        ([0, 60, 30], [(0, 0, 1), (30, 30, 1), (60, 60, 1)]),  # 30 apart on both sides: no bridge
        ([0, 40, 80, 20, 60], [(0, 80, 5)]),  # two bridges merge three sessions
        ([80, 40, 0], [(0, 0, 1), (40, 40, 1), (80, 80, 1)]),
        ([5, 5], [(5, 5, 2)]),  # same millisecond
        ([0, 100, 29, 129.5], [(0, 29, 2), (100, 129.5, 2)]),
    ],
)
def test_session_merging_table(
    arrivals: list[float], expected: list[tuple[float, float, int]]
) -> None:
    assert spans(arrivals) == expected


def test_session_record_is_exact() -> None:
    events = [
        ev(
            "a",
            0,
            "page_viewed",
            context={"channel": "web", "page_path": "/home", "timezone": "Europe/Paris"},
        ),
        ev(
            "b",
            3,
            "product_viewed",
            properties={"product_id": "p2", "category": "shoes"},
            context={"campaign_source": "google", "campaign_name": "spring"},
        ),
        ev("c", 5, "product_added", properties={"product_id": "p1", "cart_value": 80}),
        ev(
            "d",
            9,
            "checkout_started",
            properties={"value": 120.5, "products": [{"product_id": "p1"}, {"product_id": "p2"}]},
        ),
        ev("e", 11, "order_completed", properties={"revenue": 99.0}),
    ]
    (out,) = replay_events(events, [OP], allowed_lateness_ms=0)
    assert out.topic == "sessions"
    assert out.key == "u1"
    assert out.record == {
        "session_id": session_id("u1", "a"),
        "person_id": "u1",
        "start_ms": T0,
        "end_ms": T0 + 11 * MIN,
        "duration_ms": 11 * MIN,
        "closed_at_ms": T0 + 41 * MIN,
        "first_event_id": "a",
        "event_count": 5,
        "event_counts": {
            "checkout_started": 1,
            "order_completed": 1,
            "page_viewed": 1,
            "product_added": 1,
            "product_viewed": 1,
        },
        "pages": ["/home"],
        "products": ["p1", "p2"],
        "max_cart_value": 120.5,
        "converted": True,
        "channel": "web",
        "campaign_source": "google",
        "campaign_medium": None,
        "campaign_name": "spring",
        "timezone": "Europe/Paris",
    }


def test_session_closes_exactly_when_watermark_reaches_last_plus_gap() -> None:
    # gap 30, lateness 5: events at 0 and 20 close when the watermark reaches 50,
    # that is when stream time reaches 55 (last + gap + grace).
    proc = Processor([OP], allowed_lateness_ms=5 * MIN, store=MemoryStore())
    assert proc.process(ev("a", 0)) == []
    assert proc.process(ev("b", 20)) == []
    assert proc.process(ev("x", 54.99, person="other")) == []
    (out,) = proc.process(ev("y", 55, person="other"))
    assert (out.record["session_id"], out.record["closed_at_ms"]) == (
        session_id("u1", "a"),
        T0 + 50 * MIN,
    )


def test_late_event_within_grace_joins_beyond_grace_goes_to_late_output() -> None:
    proc = Processor([OP], allowed_lateness_ms=5 * MIN, store=MemoryStore())
    proc.process(ev("a", 10))
    proc.process(ev("b", 16))  # watermark 11
    assert proc.process(ev("c", 11)) == []  # within grace: joins
    (late,) = proc.process(ev("d", 10.5))  # below the watermark: late, not applied
    assert late.topic == "events.late"
    (out,) = proc.advance_to(10**15)
    assert out.record["event_count"] == 3


def test_first_event_tie_broken_by_message_id() -> None:
    events = [ev("z", 0), ev("b", 0), ev("q", 1)]
    (out,) = replay_events(events, [OP], allowed_lateness_ms=10 * MIN)
    assert out.record["first_event_id"] == "b"
    assert out.record["session_id"] == session_id("u1", "b")


def test_pages_and_products_are_bounded_and_order_independent() -> None:
    cfg = SessionWindows(max_items=3)
    op = SessionsOperator(cfg)
    events = [ev(f"m{i}", i * 0.1, context={"page_path": f"/p{9 - i}"}) for i in range(10)]
    (a,) = replay_events(events, [op], allowed_lateness_ms=60 * MIN)
    (b,) = replay_events(events[::-1], [op], allowed_lateness_ms=60 * MIN)
    assert a.record["pages"] == b.record["pages"] == ["/p0", "/p1", "/p2"]


def test_merge_open_is_the_sessions_of_the_union() -> None:
    cfg = OP.windows
    left = [ev("a", 0), ev("b", 50)]
    right = [ev("c", 25), ev("d", 200)]

    def build(events: list[Event]) -> list[Session]:
        open_: list[Session] = []
        for e in events:
            open_ = assign(open_, fact_of(e), e, cfg)
        return open_

    merged = merge_open(build(left), build(right), cfg)
    union = build(left + right)
    assert [summary(s, "u", cfg) for s in merged] == [summary(s, "u", cfg) for s in union]
    assert [(s.s, s.l) for s in merged] == [(T0, T0 + 50 * MIN), (T0 + 200 * MIN,) * 2]


def test_state_is_deleted_when_no_session_is_open() -> None:
    store = MemoryStore()
    proc = Processor([OP], allowed_lateness_ms=0, store=store)
    proc.process(ev("a", 0))
    assert store.data["u1"]["sessions"]["open"]
    proc.advance_to(T0 + GAP)
    assert store.data == {}


def test_session_windows_validate_themselves() -> None:
    with pytest.raises(ValueError, match="inactivity_gap_ms"):
        SessionWindows(inactivity_gap_ms=0)
    with pytest.raises(ValueError, match="grace_ms"):
        SessionWindows(grace_ms=-1)
    with pytest.raises(ValueError, match="max_items"):
        SessionWindows(max_items=0)
    assert SessionWindows().inactivity_gap_ms == 30 * MIN
    assert SessionWindows().check_lateness(5_000) == 5_000
    assert SessionWindows(grace_ms=5_000).check_lateness(5_000) == 5_000
    with pytest.raises(ValueError, match="same setting"):
        SessionWindows(grace_ms=1_000).check_lateness(5_000)
