"""The first trigger end to end on the real broker, through the public commands.

``pulse produce`` -> pulse.events -> ``pulse worker`` (ingest + behavior agents)
-> pulse.triggers, read back with a Kafka consumer and with ``pulse tail``.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from confluent_kafka import Producer

from pipeline.config import Settings
from pipeline.contract.produce import kafka_producer_config
from pipeline.contract.wire import encode_event
from pipeline.core.absence import trigger_id
from pipeline.core.events import Event
from tests.integration.helpers import (
    TopicReader,
    event_line,
    person_on_partition,
    pulse,
    running_worker,
)

pytestmark = pytest.mark.integration

MIN = 60_000
T0 = 1_790_000_000_000
PARTITIONS = 4


def write(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n")
    return path


def test_abandoner_triggers_once_buyer_never(
    settings: Settings, pulse_env: dict[str, str], tmp_path: Path
) -> None:
    journeys = write(
        tmp_path / "journeys.jsonl",
        [
            event_line("c-ab", "Checkout Started", T0, anonymousId="abandoner"),
            event_line("c-buy", "checkout_started", T0, userId="buyer"),
            event_line("o-buy", "Order Completed", T0 + 12 * MIN, userId="buyer"),
            # a purchase at exactly +30 min is too late: this one abandons too
            event_line("c-late", "checkout_started", T0, userId="late-buyer"),
            event_line("o-late", "order_completed", T0 + 30 * MIN, userId="late-buyer"),
            "{not json",
        ],
    )
    pulse(pulse_env, "produce", "--file", str(journeys), "--allow-invalid")

    reader = TopicReader(settings, settings.topic("triggers"))
    with running_worker(pulse_env, tmp_path / "worker.log"):
        # The late buyer's own purchase at T0+30min moves its partition's
        # watermark to the deadline: that one may fire now. The abandoner's
        # partition is still at T0: its timer must wait for the watermark.
        early = reader.read(until=2, timeout_s=20)
        assert [t["person_id"] for t in early] in ([], ["late-buyer"])
        # Move every partition's watermark past the deadlines (T0 + 30 min),
        # with a plain Kafka producer so the delay below is the worker's.
        producer = Producer(kafka_producer_config(settings))
        for p in range(PARTITIONS):
            person = person_on_partition(p, PARTITIONS)
            clock = Event(
                message_id=f"tick-{p}",
                type="track",
                event="page_viewed",
                user_id=person,
                timestamp_ms=T0 + 31 * MIN,
            )
            producer.produce(
                settings.topic("events"), key=person.encode(), value=encode_event(clock)
            )
        assert producer.flush(30) == 0
        produced_at = time.monotonic()
        triggers = early + reader.read(until=2 - len(early), timeout_s=60)
        assert sorted(t["person_id"] for t in triggers) == ["abandoner", "late-buyer"], (
            tmp_path / "worker.log"
        ).read_text()[-3000:]
        extra = reader.read(until=1, timeout_s=5)
        assert extra == [], "a trigger fired twice or for the buyer"
    reader.close()

    by_person = {t["person_id"]: t for t in triggers}
    ab = by_person["abandoner"]
    assert ab["rule"] == "checkout_abandoned"
    assert ab["event_ids"] == ["c-ab"]
    assert ab["event_time_ms"] == T0 + 30 * MIN
    assert ab["trigger_id"] == trigger_id("checkout_abandoned", "abandoner", "c-ab")
    delay = max(t["_received"] for t in triggers) - produced_at
    print(f"\nwatermark passed deadline -> trigger readable: {delay * 1000:.0f} ms")

    # The same records through the public `pulse tail`.
    tailed = pulse(pulse_env, "tail", settings.topic("triggers"), "--max", "2", "--timeout", "10")
    lines = [json.loads(line) for line in tailed.stdout.splitlines()]
    assert sorted(line["value"]["person_id"] for line in lines) == ["abandoner", "late-buyer"]

    # The bad line went to the dead-letter topic with its reason, bytes untouched.
    dlq = pulse(pulse_env, "tail", settings.topic("events.dlq"), "--max", "1", "--timeout", "10")
    (dead,) = [json.loads(line) for line in dlq.stdout.splitlines()]
    assert dead["value"] == "{not json"
    assert dead["headers"]["pulse-dlq-reason"] == "invalid_json"
