"""Helpers for integration tests: run ``pulse`` commands, read topics, cover partitions."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from aiokafka.partitioner import DefaultPartitioner
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from pipeline.config import Settings
from pipeline.contract.topics import decode_output, logical_name

PULSE = [sys.executable, "-m", "pipeline.cli"]


def pulse(
    env: dict[str, str], *args: str, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run a ``pulse`` command to completion; fail the test with its stderr if it fails."""
    proc = subprocess.run(
        [*PULSE, *args], env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    assert proc.returncode == 0, f"pulse {' '.join(args)} failed:\n{proc.stderr}"
    return proc


@contextmanager
def running_worker(
    env: dict[str, str], log_path: Path, *args: str
) -> Iterator[subprocess.Popen[bytes]]:
    """``pulse worker`` in the background for the duration of the block."""
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [*PULSE, "worker", *args], env=env, stdout=log, stderr=subprocess.STDOUT
        )
        try:
            yield proc
        finally:
            proc.terminate()
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def person_on_partition(partition: int, partitions: int, prefix: str = "clock") -> str:
    """A person id that the worker's partitioner (Java/aiokafka murmur2) puts on ``partition``."""
    part = DefaultPartitioner()
    everything = list(range(partitions))
    for i in range(10_000):
        candidate = f"{prefix}-{i}"
        if part(candidate.encode(), everything, everything) == partition:
            return candidate
    raise AssertionError("no key found")  # pragma: no cover


def event_line(mid: str, name: str, ts_ms: int, **ids: str) -> str:
    obj: dict[str, Any] = {"messageId": mid, "type": "track", "event": name, "timestamp": ts_ms}
    obj.update(ids)
    return json.dumps(obj)


class TopicReader:
    """Reads a Pulse output topic from the beginning, decoding its Avro records."""

    def __init__(self, settings: Settings, topic: str, partitions: int = 4) -> None:
        self.logical = logical_name(settings, topic)
        self.consumer = Consumer(
            {
                "bootstrap.servers": settings.bootstrap_servers,
                "group.id": f"test-{topic}",
                "enable.auto.commit": False,
            }
        )
        self.consumer.assign(
            [TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(partitions)]
        )

    def read(self, *, until: int, timeout_s: float) -> list[dict[str, Any]]:
        """Records until ``until`` were read or ``timeout_s`` passed; each with ``_received``."""
        records: list[dict[str, Any]] = []
        deadline = time.monotonic() + timeout_s
        while len(records) < until and time.monotonic() < deadline:
            msg = self.consumer.poll(0.2)
            if msg is None or msg.error() is not None:
                continue
            record = decode_output(self.logical, msg.value())
            record["_received"] = time.monotonic()
            records.append(record)
        return records

    def close(self) -> None:
        self.consumer.close()


def produce_events(settings: Settings, events: list[Any]) -> None:
    """Produce events to ``<prefix>events`` in order, the way ``pulse produce`` does
    (creating Pulse's topics first); fails on any delivery error."""
    from confluent_kafka import Producer

    from pipeline.contract.produce import kafka_producer_config, partition_key
    from pipeline.contract.topics import ensure_topics
    from pipeline.contract.wire import encode_event

    ensure_topics(settings)
    errors: list[str] = []

    def on_delivery(err: Any, _msg: Any) -> None:
        if err is not None:
            errors.append(str(err))

    producer = Producer(kafka_producer_config(settings))
    topic = settings.topic("events")
    for event in events:
        producer.produce(
            topic, key=partition_key(event), value=encode_event(event), on_delivery=on_delivery
        )
        producer.poll(0)
    assert producer.flush(60) == 0
    assert errors == [], errors[:3]


def clock_events(
    settings: Settings, at_ms: int, partitions: int = 4, tag: str = "clock"
) -> list[Any]:
    """One event per by-person partition at ``at_ms``: moves every watermark there."""
    from pipeline.core.events import Event

    return [
        Event(
            message_id=f"{tag}-{p}",
            type="track",
            event="page_viewed",
            user_id=person_on_partition(p, partitions, tag),
            timestamp_ms=at_ms,
        )
        for p in range(partitions)
    ]


def read_outputs(
    settings: Settings,
    logical_topics: list[str],
    *,
    until: Any,
    timeout_s: float,
    partitions: int = 4,
) -> list[tuple[str, dict[str, Any]]]:
    """(logical topic, record) from the start of each topic until ``until(records)`` is true."""
    topics = [settings.topic(t) for t in logical_topics]
    consumer = Consumer(
        {
            "bootstrap.servers": settings.bootstrap_servers,
            "group.id": f"test-read-{time.monotonic_ns()}",
            "enable.auto.commit": False,
        }
    )
    consumer.assign(
        [TopicPartition(t, p, OFFSET_BEGINNING) for t in topics for p in range(partitions)]
    )
    got: list[tuple[str, dict[str, Any]]] = []
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline and not until(got):
            msg = consumer.poll(0.2)
            if msg is None or msg.error() is not None:
                continue
            logical = logical_name(settings, msg.topic())
            got.append((logical, decode_output(logical, msg.value())))
    finally:
        consumer.close()
    return got
