"""Identity stitching on the real broker, several partitions per topic: a visitor
browses anonymously, starts checkout, logs in on the same device and abandons."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.config import Settings
from pipeline.core.events import Event
from tests.integration.helpers import (
    clock_events,
    person_on_partition,
    produce_events,
    read_outputs,
    running_worker,
)

pytestmark = pytest.mark.integration

MIN = 60_000
T0 = 1_790_000_000_000


def track(mid: str, name: str, at_min: int, **ids: str) -> Event:
    return Event(
        message_id=mid,
        type="track",
        event=name,
        timestamp_ms=T0 + at_min * MIN,
        properties={"value": 120.0} if name == "checkout_started" else {},
        **ids,
    )  # type: ignore[arg-type]


def test_anonymous_checkout_then_login_abandons_once_for_the_user(
    settings: Settings, pulse_env: dict[str, str], tmp_path: Path
) -> None:
    anon, user = "device-9f2c", "customer-77"
    events = [
        track("a-1", "page_viewed", 0, anonymous_id=anon),
        track("a-2", "product_viewed", 1, anonymous_id=anon),
        track("a-3", "checkout_started", 2, anonymous_id=anon),
        track("a-4", "logged_in", 3, anonymous_id=anon, user_id=user),
        track("a-5", "page_viewed", 4, anonymous_id=anon),  # after login: the user's
        *clock_events(settings, T0 + 120 * MIN),
    ]
    produce_events(settings, events)
    with running_worker(pulse_env, tmp_path / "worker.log"):
        got = read_outputs(
            settings,
            ["triggers", "sessions", "identities"],
            timeout_s=90,
            until=lambda g: (
                any(t == "triggers" for t, _ in g)
                and any(t == "sessions" and r["person_id"] == user for t, r in g)
                and {"link", "merge"} <= {r["kind"] for t, r in g if t == "identities"}
            ),
        )
        got += read_outputs(settings, ["triggers"], timeout_s=3, until=lambda _g: False)
    log = (tmp_path / "worker.log").read_text()[-3000:]

    triggers = [r for t, r in got if t == "triggers"]
    unique = {r["trigger_id"]: r for r in triggers}
    assert [(r["rule"], r["person_id"], r["event_ids"]) for r in unique.values()] == [
        ("checkout_abandoned", user, ["a-3"])
    ], log
    sessions = [r for t, r in got if t == "sessions" and r["person_id"] == user]
    assert sessions, log
    counts = sessions[0]["event_counts"]
    assert counts.get("page_viewed") == 2
    assert counts.get("product_viewed") == 1  # the anonymous events are in the user's session
    assert counts.get("checkout_started") == 1
    assert not [r for t, r in got if t == "sessions" and r["person_id"] == anon]
    kinds = sorted({r["kind"] for t, r in got if t == "identities"})
    assert kinds == ["link", "merge"], kinds


def dead_letters(settings: Settings) -> int:
    """How many records the DLQ holds (every partition)."""
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer({"bootstrap.servers": settings.bootstrap_servers, "group.id": "t-dlq"})
    try:
        topic = settings.topic("events.dlq")
        total = 0
        for p in range(4):
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
            total += high - low
        return total
    finally:
        consumer.close()


def test_links_on_every_partition_still_route_after_a_restart(
    settings: Settings, pulse_env: dict[str, str], tmp_path: Path
) -> None:
    """A worker that starts with links on several of its partitions routes an
    anonymous-only event to the linked user (its links table lookups are per
    partition inside an agent; building the per-user index must not be)."""
    devices = [person_on_partition(p, 4, "device") for p in range(4)]
    users = {device: f"customer-{i}" for i, device in enumerate(devices)}
    first = [
        e
        for i, device in enumerate(devices)
        for e in (
            track(f"v-{i}", "page_viewed", 0, anonymous_id=device),
            track(f"l-{i}", "logged_in", 1, anonymous_id=device, user_id=users[device]),
        )
    ]
    produce_events(settings, first)
    with running_worker(pulse_env, tmp_path / "worker-1.log"):
        links = read_outputs(
            settings,
            ["identities"],
            timeout_s=60,
            until=lambda g: len({r["anonymous_id"] for _t, r in g if r["kind"] == "link"}) == 4,
        )
    assert len({r["anonymous_id"] for _t, r in links if r["kind"] == "link"}) == 4

    # after the restart: anonymous-only events of the linked devices, then a
    # clock that closes their sessions
    later = [track(f"p-{i}", "page_viewed", 5, anonymous_id=d) for i, d in enumerate(devices)]
    produce_events(settings, [*later, *clock_events(settings, T0 + 600 * MIN)])
    with running_worker(pulse_env, tmp_path / "worker-2.log"):
        got = read_outputs(
            settings,
            ["sessions"],
            timeout_s=90,
            until=lambda g: {r["person_id"] for _t, r in g} >= set(users.values()),
        )
    log = (tmp_path / "worker-2.log").read_text()[-3000:]
    persons = {r["person_id"] for _t, r in got}
    assert persons >= set(users.values()), log
    assert not persons & set(devices), "an anonymous-only event was not routed to its user"
    assert "Traceback" not in (tmp_path / "worker-2.log").read_text(), log
    assert dead_letters(settings) == 0, log
