"""Identity stitching properties (hypothesis).

For any arrival order within the allowed lateness of a visitor's anonymous
events, the identify that links the anonymous id to a user, the events sent
after it (carrying both ids) and server-side events (user id only), replay
with stitching gives the same triggers (up to the person id) and the same final
traits as replay where every event carried the user id from the start.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.core.engine import MemoryStore, Processor
from pipeline.core.events import Event
from pipeline.core.identity import IdentityRules
from pipeline.core.outputs import Output
from pipeline.core.traits import traits_of
from pipeline.tools.replay import replay_events
from pipeline.topology.dsl import Topology, load_topology

MIN = 60_000
T0 = 1_790_000_000_000
LATENESS = 15 * MIN
GAP = 30 * MIN  # the built-in behavior operator's session gap
TOPOLOGY = load_topology(
    "identity.yaml",
    """
triggers:
  checkout_abandoned:
    absence: {start: checkout_started, missing: order_completed, within: 30m}
  first_purchase:
    milestone: order_completed
  added:
    immediate: product_added
    channel: push
  revisit:
    repetition: {event: product_viewed, at_least: 2, within: 1h, same: product_id}
caps:
  limits: [{name: push_2_per_hour, channel: push, max: 2, per: 1h}]
""",
)
# Server-side events carry only the user id. They exclude what the arrival-driven
# rules (milestone, repetition, immediate) count: two persons that both fire such a
# rule before the link both keep their trigger (nothing is unsent).
ANONYMOUS = [
    "page_viewed",
    "product_viewed",
    "product_added",
    "checkout_started",
    "order_completed",
]
SERVER = ["page_viewed", "checkout_started", "payment_info_entered"]
TRIGGER_TOPICS = ("triggers", "triggers.suppressed")


@st.composite
def journeys(draw: st.DrawFn, server_from_min: int = 0) -> tuple[list[Event], list[int]]:
    """A visitor's events (one anonymous id, one user) and an arrival jitter for each.

    Server-side events start ``server_from_min`` minutes from the login.
    """
    login_at = draw(st.integers(35, 120)) * MIN
    raw: list[tuple[str, int, str | None, str | None]] = [("identify", login_at, "a1", "u1")]
    # mostly near the login, where the two persons' timelines meet
    near = st.integers(-60, 30).map(lambda m: max(0, login_at + m * MIN))
    for _ in range(draw(st.integers(0, 14))):  # anonymous, before or after the login
        at = draw(st.one_of(near, near, st.integers(0, 180).map(lambda m: m * MIN)))
        raw.append((draw(st.sampled_from(ANONYMOUS)), at, "a1", None))
    for _ in range(draw(st.integers(0, 8))):  # the same device after the login: both ids
        at = login_at + draw(st.integers(0, 60)) * MIN
        raw.append((draw(st.sampled_from(ANONYMOUS)), at, "a1", "u1"))
    for _ in range(draw(st.integers(0, 6))):  # server-side: user id only
        at = login_at + draw(st.integers(server_from_min, 60)) * MIN
        raw.append((draw(st.sampled_from(SERVER)), at, None, "u1"))
    for _ in range(draw(st.integers(0, 6))):  # someone else moves the watermark too
        raw.append(("page_viewed", draw(near), "other", None))
    events = []
    for i, (name, at, anon, user) in enumerate(raw):
        props: dict[str, Any] = {}
        if name in ("product_viewed", "product_added"):
            props["product_id"] = draw(st.sampled_from(["p1", "p2"]))
        if name in ("product_added", "checkout_started", "order_completed"):
            props["value"] = draw(st.sampled_from([9.99, 25.5, 120.0]))
        events.append(
            Event(
                message_id=f"m{i:03d}",
                type="identify" if name == "identify" else "track",
                event=None if name == "identify" else name,
                anonymous_id=anon,
                user_id=user,
                timestamp_ms=T0 + at + draw(st.sampled_from([0, 1, 999])),
                properties=props,
                context={"timezone": draw(st.sampled_from(["UTC", "Europe/Paris"]))},
            )
        )
    jitter = [draw(st.integers(0, LATENESS)) for _ in events]
    return events, jitter


def arrival_order(events: list[Event], jitter: list[int]) -> list[Event]:
    order = sorted(range(len(events)), key=lambda i: (events[i].timestamp_ms + jitter[i], i))
    return [events[i] for i in order]


def as_known_from_the_start(events: list[Event]) -> list[Event]:
    return [dataclasses.replace(e, user_id="u1") if e.anonymous_id == "a1" else e for e in events]


def run(
    topology: Topology, events: list[Event], identity: IdentityRules | None
) -> tuple[list[Output], Processor]:
    """Replay up to where every session has closed (and nobody is evicted yet)."""
    proc = Processor(
        topology.operators,
        allowed_lateness_ms=LATENESS,
        store=MemoryStore(),
        stage=topology.stage,
        identity=identity,
    )
    end = max(e.timestamp_ms for e in events) + GAP + LATENESS + 1
    outputs = replay_events(
        events, (), allowed_lateness_ms=LATENESS, identity=identity, processor=proc, end_ms=end
    )
    return outputs, proc


def triggers(outputs: list[Output]) -> list[tuple[str, str, list[str], int, str | None]]:
    return sorted(
        (o.topic, o.record["rule"], o.record["event_ids"], o.record["event_time_ms"],
         o.record.get("reason"))
        for o in outputs
        if o.topic in TRIGGER_TOPICS
    )  # fmt: skip


def final_traits(proc: Processor, person: str) -> str:
    return json.dumps(traits_of(proc.store.load(person)), sort_keys=True)


@settings(max_examples=120, deadline=None)
@given(journeys())
def test_stitched_replay_equals_known_from_the_start(
    journey: tuple[list[Event], list[int]],
) -> None:
    events, jitter = journey
    arrival = arrival_order(events, jitter)
    got, stitched = run(TOPOLOGY, arrival, IdentityRules())
    want, baseline = run(TOPOLOGY, as_known_from_the_start(arrival), None)
    assert not [o for o in got if o.topic == "events.late"]
    assert triggers(got) == triggers(want)
    assert {o.key for o in got if o.topic == "triggers" and o.key != "other"} <= {"a1", "u1"}
    assert stitched.store.load("a1") is None
    assert final_traits(stitched, "u1") == final_traits(baseline, "u1")
    kinds = [o.record["kind"] for o in got if o.topic == "identities"]
    assert kinds == ["link", "merge"]


@settings(max_examples=500, deadline=None)
@given(journeys(server_from_min=-30))
def test_stitched_triggers_equal_known_from_the_start_with_earlier_server_events(
    journey: tuple[list[Event], list[int]],
) -> None:
    """Server-side events up to 30 min (the absence window) before the login.

    Both persons have then decided part of their timeline when they merge. A
    link at ``T`` joins them for what is decided after ``T``; what either
    decided up to ``T`` is their own, so the reference is stitched replay in
    event-time order (not "known from the start"): any arrival order within
    the lateness gives its triggers.
    """
    events, jitter = journey
    arrival = arrival_order(events, jitter)
    got, _ = run(TOPOLOGY, arrival, IdentityRules())
    in_time = sorted(events, key=lambda e: (e.timestamp_ms, e.message_id))
    want, _ = run(TOPOLOGY, in_time, IdentityRules())
    assert triggers(got) == triggers(want)


# -- the journey of the issue, in any arrival order within the lateness ------------------


def journey_events(with_server_payment: bool) -> list[Event]:
    def e(mid: str, name: str | None, at_min: float, anon: str | None, user: str | None) -> Event:
        return Event(
            message_id=mid,
            type="identify" if name is None else "track",
            event=name,
            anonymous_id=anon,
            user_id=user,
            timestamp_ms=T0 + int(at_min * MIN),
            properties={"product_id": "p1", "value": 80.0} if name else {},
        )

    events = [
        e("v1", "page_viewed", 0, "a1", None),
        e("v2", "product_viewed", 1, "a1", None),
        e("v3", "product_added", 2, "a1", None),
        e("c1", "checkout_started", 3, "a1", None),
        e("id", None, 4, "a1", "u1"),
        e("c2", "checkout_started", 5, "a1", "u1"),
        e("p1", "payment_info_entered", 6, "a1", "u1"),
    ]
    if with_server_payment:
        events.append(e("f1", "payment_failed", 7, None, "u1"))
    return events


@settings(max_examples=80, deadline=None)
@given(st.booleans(), st.lists(st.integers(0, LATENESS), min_size=8, max_size=8))
def test_anonymous_checkout_then_login_then_abandon_fires_once_for_the_user(
    server: bool, jitter: list[int]
) -> None:
    events = journey_events(server)
    arrival = arrival_order(events, jitter[: len(events)])
    outputs = replay_events(
        arrival, TOPOLOGY.operators, allowed_lateness_ms=LATENESS, stage=TOPOLOGY.stage,
        identity=IdentityRules(),
    )  # fmt: skip
    abandoned = [
        o for o in outputs if o.topic == "triggers" and o.record["rule"] == "checkout_abandoned"
    ]
    assert [(o.key, o.record["event_ids"]) for o in abandoned] == [("u1", ["c1"])]
    (session,) = [o.record for o in outputs if o.topic == "sessions"]
    assert session["person_id"] == "u1"
    assert session["first_event_id"] == "v1"
    assert session["event_count"] == len(events)
