"""Outputs are a function of the events and their event times (hypothesis).

The worker sees a person's events, timers and identity merges in an order that
differs from replay's: events within the allowed lateness in any order, the
watermark moving at any point that leaves no event late, the merge of an
anonymous person arriving before or after the user's own events (and, with
the ``awaits`` barrier, after the watermark passed the link). Every such
delivery gives the same outputs -- as a multiset of records with their
deterministic ids -- as replay in event-time order: triggers, suppressions
(caps, quiet hours, fatigue), segment changes, activations, sessions,
profiles and evictions.
"""

from __future__ import annotations

import json
import random
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.core.clock import POS_INF_MS
from pipeline.core.engine import MemoryStore, Processor
from pipeline.core.events import Event
from pipeline.core.identity import IDENTITIES, IdentityRules
from pipeline.core.outputs import Output
from pipeline.core.stitching import Stitcher
from pipeline.topology.dsl import Topology, load_topology

MIN = 60_000
T0 = 1_790_000_000_000  # 2026-09-21 13:46 UTC
LATENESS = 10 * MIN
TOPOLOGY = load_topology(
    "order.yaml",
    """
triggers:
  checkout_abandoned:
    absence: {start: checkout_started, missing: order_completed, within: 30m}
    channel: email
    destinations: [email]
  cart_abandoned:
    absence: {start: product_added, missing: checkout_started, within: 1h, on_repeat: restart}
    channel: push
  high_value:
    immediate: product_added
    where:
      properties.price: {gte: 100}
      trait.events_total: {gte: 2}
    channel: push
    destinations: [push]
  first_purchase:
    milestone: order_completed
  revisit:
    repetition: {event: product_viewed, at_least: 2, within: 1h, same: product_id,
                 unless: checkout_started}
    channel: push
segments:
  browsing_now:
    where: {trait.counts_1h.product_viewed: {gte: 2}}
    destinations: [ads]
  buyer:
    where: {trait.orders_total: {gte: 1}}
  regular:
    where: {trait.sessions_total: {gte: 2}}
caps:
  limits:
    - {name: push_2_per_hour, channel: push, max: 2, per: 1h}
    - {name: any_3_per_day, max: 3, per: calendar_day}
  quiet_hours: {from: 23, to: 6}
  fatigue: {events: [push_dismissed], at_least: 2, within: 1h, factor: 0.5}
""",
)
NAMES = [
    "page_viewed",
    "product_viewed",
    "product_added",
    "checkout_started",
    "order_completed",
    "push_dismissed",
]
ZONES = ["UTC", "Europe/Paris", "Asia/Tokyo"]


@st.composite
def journeys(draw: st.DrawFn) -> tuple[list[Event], list[int]]:
    """One visitor (anonymous ``a1``, later user ``u1``), server events of ``u1``, others."""
    link_at = draw(st.integers(20, 150)) * MIN
    raw: list[tuple[str | None, int, str | None, str | None]] = []
    if draw(st.booleans()):
        raw.append((None, link_at, "a1", "u1"))  # the identify that links them
    for _ in range(draw(st.integers(0, 12))):  # the visitor, anonymous (or after the login)
        at = draw(st.integers(0, 200)) * MIN
        both = at > link_at and draw(st.booleans())
        raw.append((draw(st.sampled_from(NAMES)), at, "a1", "u1" if both else None))
    for _ in range(draw(st.integers(0, 8))):  # server-side: the user id only
        raw.append((draw(st.sampled_from(NAMES)), draw(st.integers(0, 200)) * MIN, None, "u1"))
    for _ in range(draw(st.integers(1, 5))):  # someone else
        raw.append((draw(st.sampled_from(NAMES)), draw(st.integers(0, 200)) * MIN, "x1", None))
    events = []
    for i, (name, at, anon, user) in enumerate(raw):
        props: dict[str, Any] = {}
        if name in ("product_viewed", "product_added"):
            props["product_id"] = draw(st.sampled_from(["p1", "p2"]))
            props["price"] = draw(st.sampled_from([20.0, 150.0]))
        if name in ("checkout_started", "order_completed"):
            props["value"] = draw(st.sampled_from([9.99, 120.0]))
        events.append(
            Event(
                message_id=f"m{i:03d}",
                type="identify" if name is None else "track",
                event=name,
                anonymous_id=anon,
                user_id=user,
                timestamp_ms=T0 + at + draw(st.sampled_from([0, 1, 999])),
                properties=props,
                context={"timezone": draw(st.sampled_from(ZONES)), "channel": "web"},
            )
        )
    jitter = [draw(st.integers(0, LATENESS)) for _ in events]
    return events, jitter


def processor(topology: Topology = TOPOLOGY) -> Processor:
    return Processor(
        topology.operators,
        allowed_lateness_ms=LATENESS,
        store=MemoryStore(),
        stage=topology.stage,
        identity=IdentityRules(),
    )


def link(
    proc: Processor, anon: str, user: str, event: Event, out: list[Output],
    state: dict[str, Any] | None = None,
) -> None:  # fmt: skip
    """Move ``anon``'s state into ``user`` (``state``: extracted already, on its way)."""
    state = (proc.extract(anon) or {}) if state is None else state
    out.extend(
        proc.merge_in(user, state, anon, event_time_ms=event.timestamp_ms,
                      message_id=event.message_id)
    )  # fmt: skip


def in_event_time(events: list[Event]) -> list[Output]:
    """The reference: replay in event-time order, the clock following the events."""
    proc, stitcher, out = processor(), Stitcher(IdentityRules()), []
    for event in sorted(events, key=lambda e: (e.timestamp_ms, e.message_id)):
        person, actions = stitcher.route(event)
        for action in actions:
            if action.kind == "link":
                link(proc, action.anonymous_id, action.user_id, event, out)
        out.extend(proc.process(event, person))
    out.extend(proc.advance_to(POS_INF_MS))
    return out


def live(events: list[Event], jitter: list[int], seed: int, mode: str) -> list[Output]:
    """Arrival order (``ts + jitter``), the watermark moved at random allowed points.

    ``mode`` says when the merge reaches the user: ``now`` (with the link),
    ``late`` (after more of the user's own events; the watermark stays at or
    below the link until then) or ``barrier`` (the link event carries
    ``awaits``; the watermark may pass the link before the merge arrives).
    """
    rng = random.Random(seed)
    order = sorted(range(len(events)), key=lambda i: (events[i].timestamp_ms + jitter[i], i))
    arrivals = [events[i] for i in order]
    proc, stitcher, out = processor(), Stitcher(IdentityRules()), []
    # the anonymous partition extracts at the link (its watermark is not past it yet);
    # the state then travels to the user's partition
    pending: tuple[str, str, Event, list[Output], dict[str, Any]] | None = None
    linked_at: int | None = None
    for n, event in enumerate(arrivals):
        person, actions = stitcher.route(event)
        awaits = None
        for action in actions:
            if action.kind != "link":
                continue
            linked_at = event.timestamp_ms
            if mode == "now":
                link(proc, action.anonymous_id, action.user_id, event, out)
            else:
                state = proc.extract(action.anonymous_id) or {}
                pending = (action.anonymous_id, action.user_id, event, out, state)
                awaits = action.anonymous_id if mode == "barrier" else None
        if pending is not None and (event.anonymous_id == pending[0] and event is not pending[2]):
            link(proc, *pending)  # the merge travels ahead of the visitor's next event
            pending = None
        out.extend(proc.process(event, person, advance_clock=False, awaits=awaits))
        if pending is not None and rng.random() < 0.3:
            link(proc, *pending)
            pending = None
        if rng.random() < 0.6:
            rest = [e.timestamp_ms for e in arrivals[n + 1 :]]
            ceiling = min(rest, default=POS_INF_MS - LATENESS)
            if pending is not None and mode != "barrier" and linked_at is not None:
                ceiling = min(ceiling, linked_at)  # the merge arrives before the link is passed
            floor = proc.watermark_ms
            if ceiling > floor:
                target = rng.randint(max(floor, ceiling - 90 * MIN), ceiling)
                out.extend(proc.advance_to(target + LATENESS))
    if pending is not None:
        link(proc, *pending)
    out.extend(proc.advance_to(POS_INF_MS))
    return out


def canonical(outputs: list[Output]) -> list[str]:
    # identity records name the link event, which is the first event with both ids
    # to *arrive*; everything else must be the same
    return sorted(
        json.dumps([o.topic, o.key, o.record], sort_keys=True)
        for o in outputs
        if o.topic != IDENTITIES
    )


@settings(max_examples=400, deadline=None)
@given(journeys(), st.integers(0, 2**32), st.sampled_from(["now", "late", "barrier"]))
def test_any_delivery_within_the_lateness_gives_the_outputs_of_event_time_order(
    journey: tuple[list[Event], list[int]], seed: int, mode: str
) -> None:
    events, jitter = journey
    want = in_event_time(events)
    got = live(events, jitter, seed, mode)
    assert not [o for o in got if o.topic == "events.late"]
    assert canonical(got) == canonical(want)


@settings(max_examples=100, deadline=None)
@given(journeys(), st.integers(0, 2**32))
def test_the_watermark_moved_often_or_once_gives_the_same_outputs(
    journey: tuple[list[Event], list[int]], seed: int
) -> None:
    events, _ = journey
    still = [0] * len(events)
    assert canonical(live(events, still, seed, "now")) == canonical(in_event_time(events))


# -- the two violations found while testing crashes, as plain examples -------------------


def ev(mid: str, name: str | None, at_min: float, **ids: Any) -> Event:
    props = {"price": 150.0, "product_id": "p1"} if name == "product_added" else {}
    return Event(
        message_id=mid,
        type="identify" if name is None else "track",
        event=name,
        timestamp_ms=T0 + int(at_min * MIN),
        properties=props,
        context={"timezone": "UTC"},
        **ids,
    )


def test_a_cap_counts_a_trigger_decided_at_its_deadline_after_later_ones() -> None:
    """``any_3_per_day``: an abandonment at +30 decided after triggers at +31..+40 were sent."""
    events = [
        ev("c1", "checkout_started", 0, user_id="u1"),
        ev("v1", "page_viewed", 1, user_id="u1"),
        ev("a1", "product_added", 31, user_id="u1"),  # high_value (push) + cart timer
        ev("f1", "order_completed", 33, user_id="u1"),  # first_purchase
        ev("a2", "product_added", 40, user_id="u1"),  # high_value again
    ]
    want = in_event_time(events)
    proc, out = processor(), []
    for e in events:  # the watermark stays before +30 until every event is in
        out.extend(proc.process(e, "u1", advance_clock=False))
    out.extend(proc.advance_to(POS_INF_MS))
    assert canonical(out) == canonical(want)
    delivered = [o.record["rule"] for o in want if o.topic == "triggers"]
    assert delivered[:1] == ["checkout_abandoned"]
    assert len([o for o in want if o.topic == "triggers"]) <= 3


def test_a_late_merge_does_not_fire_a_cart_timer_the_users_checkout_cancelled() -> None:
    """The anonymous cart (+0) merges after the user's own checkout (+20) was decided."""
    anon_cart = ev("a1", "product_added", 0, anonymous_id="a1")
    login = ev("l1", None, 10, anonymous_id="a1", user_id="u1")
    checkout = ev("c1", "checkout_started", 20, user_id="u1")
    proc, out = processor(), []
    out.extend(proc.process(anon_cart, "a1", advance_clock=False))
    state = proc.extract("a1") or {}  # the link reaches the anonymous partition
    out.extend(proc.process(login, "u1", advance_clock=False, awaits="a1"))
    out.extend(proc.process(checkout, "u1", advance_clock=False))
    out.extend(proc.advance_to(T0 + 90 * MIN))  # past the cart deadline (+60)
    out.extend(proc.merge_in("u1", state, "a1", event_time_ms=login.timestamp_ms,
                             message_id="l1"))  # fmt: skip
    out.extend(proc.advance_to(POS_INF_MS))
    assert [o.record["rule"] for o in out if o.topic == "triggers"] == ["checkout_abandoned"]
    assert canonical(out) == canonical(in_event_time([anon_cart, login, checkout]))


# -- the idle TTL in event time (commerce topology: weekend_shopper) ----------------------

COMMERCE = load_topology("topologies/commerce.yaml")
DAY = 24 * 60 * MIN
COMMERCE_NAMES = ["page_viewed", "product_viewed", "product_added", "checkout_started",
                  "order_completed"]  # fmt: skip


def commerce_in_event_time(events: list[Event]) -> list[Output]:
    proc, out = processor(COMMERCE), []
    for event in sorted(events, key=lambda e: (e.timestamp_ms, e.message_id)):
        out.extend(proc.process(event, "u1"))
    out.extend(end_of_input(proc, events))
    return out


def end_of_input(proc: Processor, events: list[Event]) -> list[Output]:
    """The last real watermark at the last event, then the flush to +inf.

    Commerce has a ``predictions:`` section: the flush censors the labels due
    after the last real watermark, so both sides end with the same one.
    """
    out = proc.advance_to(max(e.timestamp_ms for e in events) + LATENESS)
    return out + proc.advance_to(POS_INF_MS)


def test_an_event_after_the_idle_ttl_that_arrives_early_does_not_keep_the_person() -> None:
    """Two Saturday sessions five weeks apart: the person is evicted 30 days after the
    first, so the second is a first session again (not ``weekend_shopper``), even
    when it arrives while the watermark (another source partition's) is still
    before the eviction."""
    saturday = 5 * DAY // MIN  # minutes after T0, a Monday
    events = [
        ev("s1", "product_viewed", saturday, user_id="u1"),
        ev("s2", "product_viewed", saturday + 5 * 7 * DAY // MIN, user_id="u1"),
    ]
    want = commerce_in_event_time(events)
    assert [o for o in want if o.record.get("segment") == "weekend_shopper"] == []
    assert len([o for o in want if o.topic == "persons.evicted"]) == 2
    proc, out = processor(COMMERCE), []
    for e in events:  # the watermark stays before the first session's eviction
        out.extend(proc.process(e, "u1", advance_clock=False))
    out.extend(end_of_input(proc, events))
    assert canonical(out) == canonical(want)


@st.composite
def months(draw: st.DrawFn) -> list[Event]:
    """One person's events over about two months: sessions days or weeks apart."""
    events = []
    for i in range(draw(st.integers(1, 10))):
        at = draw(st.integers(0, 70)) * DAY + draw(st.sampled_from([0, 20, 600, 1300])) * MIN
        name = draw(st.sampled_from(COMMERCE_NAMES))
        props: dict[str, Any] = {"product_id": "p1", "price": 250.0, "category": "bags"}
        events.append(
            Event(message_id=f"m{i:03d}", type="track", event=name, user_id="u1",
                  timestamp_ms=T0 + at + i, properties=props,
                  context={"timezone": draw(st.sampled_from(ZONES))})
        )  # fmt: skip
    return events


@settings(max_examples=200, deadline=None)
@given(months(), st.randoms(use_true_random=False))
def test_any_arrival_order_the_watermark_allows_gives_the_commerce_outputs(
    events: list[Event], rng: random.Random
) -> None:
    """The watermark (the slowest source partition) may lag by weeks: a person's events
    arrive in any order that leaves none late, the watermark moved at random points."""
    want = commerce_in_event_time(events)
    arrivals = list(events)
    rng.shuffle(arrivals)
    proc, out = processor(COMMERCE), []
    for n, event in enumerate(arrivals):
        out.extend(proc.process(event, "u1", advance_clock=False))
        ceiling = min((e.timestamp_ms for e in arrivals[n + 1 :]), default=POS_INF_MS)
        if ceiling < POS_INF_MS and rng.random() < 0.5 and ceiling > proc.watermark_ms:
            out.extend(proc.advance_to(rng.randint(proc.watermark_ms, ceiling) + LATENESS))
    out.extend(end_of_input(proc, events))
    assert not [o for o in out if o.topic == "events.late"]
    assert canonical(out) == canonical(want)
