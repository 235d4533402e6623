"""The producer SDK against the real broker: sync and asyncio, read back from pulse.events."""

from __future__ import annotations

import time
from typing import Any

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from pipeline.config import Settings
from pipeline.contract.topics import ensure_topics
from pipeline.contract.wire import decode_event
from pipeline.sdk import AsyncPulseClient, PulseClient

pytestmark = pytest.mark.integration

T0 = 1_790_000_000_000


def read_events(settings: Settings, until: int, timeout_s: float = 30) -> list[Any]:
    topic = settings.topic("events")
    consumer = Consumer(
        {
            "bootstrap.servers": settings.bootstrap_servers,
            "group.id": "t-sdk",
            "enable.auto.commit": False,
        }
    )
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(4)])
    out: list[Any] = []
    deadline = time.monotonic() + timeout_s
    while len(out) < until and time.monotonic() < deadline:
        msg = consumer.poll(0.2)
        if msg is not None and msg.error() is None:
            out.append(msg)
    consumer.close()
    return out


def test_sdk_sends_in_order_and_counts_deliveries(settings: Settings) -> None:
    ensure_topics(settings, partitions=4)
    with PulseClient(settings=settings) as pulse:
        pulse.page(anonymous_id="dev-1", timestamp_ms=T0, properties={"path": "/"})
        pulse.identify(
            "u-1", anonymous_id="dev-1", traits={"email": "u@example.com"}, timestamp_ms=T0 + 1
        )
        for i in range(200):
            pulse.track(
                "Product Viewed",
                anonymous_id="dev-1",
                user_id="u-1",
                properties={"i": i},
                timestamp_ms=T0 + 2 + i,
            )
        pulse.alias("u-1", "old-id", timestamp_ms=T0 + 500)
    assert pulse.delivered == pulse.sent == 203
    assert pulse.failed == 0
    records = read_events(settings, 203)
    events = [decode_event(m.value(), registry=None) for m in records]
    device = [e for e in events if e.anonymous_id == "dev-1"]
    assert {
        m.key() for m in records if decode_event(m.value(), registry=None).anonymous_id == "dev-1"
    } == {b"dev-1"}, "one key per device: one partition, in order"
    assert [e.timestamp_ms for e in device] == sorted(e.timestamp_ms for e in device)
    assert device[1].type == "identify"
    assert next(e for e in events if e.type == "alias").previous_id == "old-id"


async def test_async_client(settings: Settings) -> None:
    ensure_topics(settings, partitions=4)
    async with AsyncPulseClient(settings=settings) as pulse:
        for i in range(50):
            await pulse.track("Checkout Started", user_id=f"u-{i}", timestamp_ms=T0 + i)
        await pulse.flush()
        assert pulse.delivered == 50
    assert len(read_events(settings, 50)) == 50
