"""The benchmark workload: synthetic shoppers, Avro-encoded once, produced to a topic."""

from __future__ import annotations

import io
import time
from dataclasses import dataclass
from typing import Any

from confluent_kafka import Producer

from pipeline.contract.avro import known_writer_schemas, load_schema


@dataclass
class Workload:
    keys: list[bytes]
    values: list[bytes]
    people: int  # distinct record keys (a person as the raw topic is keyed)
    persons: int  # distinct person ids after decoding (what Pulse keys by-person with)
    checkouts: int

    def __len__(self) -> int:
        return len(self.values)


def _events(n: int, people: int, seed: int) -> list[Any]:
    from pipeline.tools.synthetic import SyntheticConfig, generate

    days = max(1, round(n / (people * 2.85)))
    while True:
        events = generate(SyntheticConfig(seed=seed, people=people, days=days)).events
        if len(events) >= n:
            return events[:n]
        days = int(days * n / max(len(events), 1)) + 1


def build(n: int, people: int, seed: int = 7) -> Workload:
    """``n`` events of about ``people`` people, keyed like ``pulse produce`` keys them."""
    from pipeline.contract.produce import partition_key
    from pipeline.contract.wire import encode_event

    events = _events(n, people, seed)
    keys = [partition_key(e) for e in events]
    values = [encode_event(e) for e in events]
    return Workload(
        keys,
        values,
        people=len(set(keys)),
        persons=len({e.person_id for e in events}),
        checkouts=sum(e.event == "checkout_started" for e in events),
    )


def produce(bootstrap: str, topic: str, workload: Workload) -> float:
    """Produce every record (murmur2 partitioner, like Pulse's producers); returns seconds."""
    from pipeline.config import Settings
    from pipeline.contract.produce import kafka_producer_config

    conf = kafka_producer_config(Settings(bootstrap_servers=bootstrap))
    conf.update(
        {"linger.ms": 20, "batch.size": 256 * 1024, "queue.buffering.max.messages": 500_000}
    )
    producer = Producer(conf)
    errors: list[str] = []

    def on_delivery(err: Any, _msg: Any) -> None:
        if err is not None:
            errors.append(str(err))

    started = time.monotonic()
    for key, value in zip(workload.keys, workload.values, strict=True):
        while True:
            try:
                producer.produce(topic, key=key, value=value, on_delivery=on_delivery)
                break
            except BufferError:
                producer.poll(0.05)
        producer.poll(0)
    left = producer.flush(120)
    if left or errors:
        raise RuntimeError(f"{left} record(s) not delivered to {topic}: {errors[:1]}")
    return time.monotonic() - started


def warm_workload() -> Workload:
    """One ``logged_in`` of a new user: a worker's first trigger (latency runs start warm)."""
    from pipeline.contract.wire import encode_event
    from pipeline.core.events import event_from_json

    event = event_from_json(
        {
            "messageId": "warm",
            "type": "track",
            "event": "Logged In",
            "anonymousId": "warm",
            "userId": "warm",
            "timestamp": 1_779_000_000_000,
        }
    )
    return Workload([b"warm"], [encode_event(event)], 1, 1, 0)


def fast_decoder() -> Any:
    """The bare fastavro path: skip the 10-byte single-object header, read the body.

    Returns ``decode(bytes) -> dict``; no validation beyond Avro's own.
    """
    import fastavro

    writers = known_writer_schemas("event")
    # parsed by fastavro once: a schema without fastavro's parsed marker is parsed
    # again on every call, which made this baseline ~2x slower (35.7 vs 18.7 us per
    # event) than Pulse's own decoder until 2026-12-01
    current = load_schema("event")
    reader = fastavro.parse_schema(current.parsed)
    read = fastavro.schemaless_reader
    by_fp = {
        fp.to_bytes(8, "little"): reader
        if fp == current.fingerprint
        else fastavro.parse_schema(s.parsed)
        for fp, s in writers.items()
    }

    def decode(data: bytes) -> dict[str, Any]:
        writer = by_fp[data[2:10]]
        return read(io.BytesIO(data[10:]), writer, reader if writer is not reader else None)

    return decode


def person_key(record: dict[str, Any]) -> str:
    """The key the raw topic is partitioned by: anonymous id, else user id."""
    return record.get("anonymous_id") or record.get("user_id") or ""
