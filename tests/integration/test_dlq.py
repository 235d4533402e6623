"""``pulse dlq inspect`` / ``pulse dlq replay`` and ``pulse produce`` inputs, on the real broker."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition

from pipeline.config import Settings
from pipeline.contract.produce import kafka_producer_config
from pipeline.contract.topics import ensure_topics
from pipeline.contract.wire import decode_event
from tests.integration.helpers import PULSE, pulse

pytestmark = pytest.mark.integration

T0 = 1_790_000_000_000


def dead_letter(reason: str, offset: int) -> list[tuple[str, bytes]]:
    return [
        ("trace-id", f"t-{offset}".encode()),
        ("pulse-dlq-reason", reason.encode()),
        ("pulse-dlq-message", f"because {reason}".encode()),
        ("pulse-dlq-source-topic", b"pulse.events"),
        ("pulse-dlq-source-partition", b"0"),
        ("pulse-dlq-source-offset", str(offset).encode()),
    ]


def read_all(settings: Settings, topic: str, expect: int, timeout_s: float = 20) -> list:  # type: ignore[type-arg]
    consumer = Consumer(
        {
            "bootstrap.servers": settings.bootstrap_servers,
            "group.id": "t-read",
            "enable.auto.commit": False,
        }
    )
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(4)])
    out = []
    deadline = time.monotonic() + timeout_s
    while len(out) < expect and time.monotonic() < deadline:
        msg = consumer.poll(0.2)
        if msg is not None and msg.error() is None:
            out.append(msg)
    extra = consumer.poll(1.0)
    consumer.close()
    assert extra is None, "more records than expected"
    return out


def test_inspect_and_replay(settings: Settings, pulse_env: dict[str, str]) -> None:
    ensure_topics(settings, partitions=4)
    dlq_topic = settings.topic("events.dlq")
    producer = Producer(kafka_producer_config(settings))
    fixed = json.dumps(
        {"messageId": "m-fixed", "event": "Order Completed", "userId": "u1", "timestamp": T0}
    ).encode()
    now = int(time.time() * 1000)
    # k2 was dead-lettered before k1 (and sits on a later partition): --max
    # takes the oldest, whatever order the partitions are read in.
    records = [
        (b"k1", b"{not json", "invalid_json", now - 1_000),
        (b"k2", b"{also not", "invalid_json", now - 5_000),
        (b"k3", fixed, "registry_unavailable", now - 3_000),
        (None, b"\xff\xfe\x00binary", "bad_framing", now - 2_000),
    ]
    for i, (key, value, reason, ts) in enumerate(records):
        producer.produce(
            dlq_topic,
            key=key,
            value=value,
            partition=i % 2,
            headers=dead_letter(reason, i),
            timestamp=ts,
        )
    assert producer.flush(30) == 0

    out = pulse(pulse_env, "dlq", "inspect", "--json")
    summary = json.loads(out.stdout)
    assert {r: s["count"] for r, s in summary.items()} == {
        "invalid_json": 2,
        "registry_unavailable": 1,
        "bad_framing": 1,
    }
    assert summary["invalid_json"]["example"]["value"] == "{also not", "the oldest example"
    assert summary["invalid_json"]["example"]["message"] == "because invalid_json"
    assert "value_base64" in summary["bad_framing"]["example"]
    text = pulse(pulse_env, "dlq", "inspect").stdout
    assert "4 record(s)" in text

    pulse(pulse_env, "dlq", "replay", "--reason", "registry_unavailable")
    pulse(pulse_env, "dlq", "replay", "--reason", "invalid_json", "--max", "1")
    replayed = read_all(settings, settings.topic("events"), expect=2)
    by_key = {m.key(): m for m in replayed}
    assert set(by_key) == {b"k3", b"k2"}, "--max 1 replays the oldest invalid_json"
    assert by_key[b"k3"].value() == fixed
    assert by_key[b"k3"].headers() == [("trace-id", b"t-2")], "pulse-dlq-* headers are dropped"
    assert decode_event(by_key[b"k3"].value()).message_id == "m-fixed"


def test_produce_csv_from_stdin_with_rate(
    settings: Settings, pulse_env: dict[str, str], tmp_path: Path
) -> None:
    csv_text = (
        "when,who,what,amount,coupon\n"
        f"{T0},u1,Checkout Started,99.5,\n"
        f"{T0 + 60_000},u1,Order Completed,99.5,SAVE10\n"
        f"{T0 + 120_000},u2,Product Viewed,12,\n"
    )
    proc = subprocess.run(
        [
            *PULSE,
            "produce",
            "--csv",
            "-",
            "--rate",
            "20",
            "--map",
            "timestamp=when,userId=who,event=what,properties.revenue=amount",
        ],
        input=csv_text,
        env=pulse_env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "3/3" in proc.stderr, "progress bar on stderr"
    records = read_all(settings, settings.topic("events"), expect=3)
    events = sorted((decode_event(m.value()) for m in records), key=lambda e: e.timestamp_ms)
    assert [e.event for e in events] == ["checkout_started", "order_completed", "product_viewed"]
    assert events[1].properties == {"revenue": 99.5, "coupon": "SAVE10"}
    assert events[0].message_id.startswith("csv-")
