"""``pulse tail TOPIC``: decode any Pulse topic to JSON lines.

Each line is one record: ``{"topic", "partition", "offset", "timestamp_ms",
"key", "headers", "value"}`` where ``value`` is the decoded Avro record (or, on
the dead-letter topic, the original bytes as text when they are UTF-8, else
base64 under ``value_base64``).
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from typing import Any

from pipeline.config import Settings
from pipeline.contract.topics import DLQ, EVENTS, decode_output, logical_name, schema_name
from pipeline.contract.wire import decode_event
from pipeline.errors import BrokerUnavailable, DecodeError, PulseError


def _text(data: bytes | None) -> str | None:
    if data is None:
        return None
    try:
        return data.decode()
    except UnicodeDecodeError:
        return base64.b64encode(data).decode()


def topic_partitions(consumer: Any, settings: Settings, topic: str) -> list[int]:
    """The partitions of ``topic``, with one clear error for no broker / no topic."""
    from confluent_kafka import KafkaException

    try:
        meta = consumer.list_topics(topic, timeout=15)
    except KafkaException as exc:
        raise BrokerUnavailable(
            f"no Kafka broker answered at {settings.bootstrap_servers}"
        ) from exc
    tmeta = meta.topics.get(topic)
    if tmeta is None or tmeta.error is not None:
        raise PulseError(f"topic {topic} does not exist on {settings.bootstrap_servers}")
    return sorted(tmeta.partitions)


def decode_value(logical: str, value: bytes | None) -> dict[str, Any]:
    """``{"value": ...}`` for the record, or the raw bytes where it is not Avro."""
    if value is None:
        return {"value": None}
    if logical == DLQ:
        try:
            return {"value": value.decode()}
        except UnicodeDecodeError:
            return {"value_base64": base64.b64encode(value).decode()}
    try:
        if logical == EVENTS:
            return {"value": decode_event(value).to_record()}
        return {"value": decode_output(logical, value)}
    except DecodeError as err:
        return {"error": f"{err.reason}: {err}", "value_base64": base64.b64encode(value).decode()}


def tail(
    settings: Settings,
    topic: str,
    *,
    max_records: int | None = None,
    timeout_s: float = 10.0,
    from_beginning: bool = True,
) -> Iterator[dict[str, Any]]:
    """Yield decoded records of ``topic`` until ``max_records`` or ``timeout_s`` of quiet."""
    from confluent_kafka import (
        OFFSET_BEGINNING,
        OFFSET_END,
        Consumer,
        TopicPartition,
    )

    logical = logical_name(settings, topic)
    if logical != DLQ:
        schema_name(logical)  # fails early, naming the topic, if it has no schema
    consumer = Consumer(
        {
            "bootstrap.servers": settings.bootstrap_servers,
            "group.id": "pulse-tail",
            "enable.auto.commit": False,
            "isolation.level": "read_committed",  # never an aborted transaction's records
            "enable.partition.eof": False,
        }
    )
    try:
        start = OFFSET_BEGINNING if from_beginning else OFFSET_END
        partitions = topic_partitions(consumer, settings, topic)
        consumer.assign([TopicPartition(topic, p, start) for p in partitions])
        seen = 0
        deadline = time.monotonic() + timeout_s
        while max_records is None or seen < max_records:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            msg = consumer.poll(min(remaining, 0.5))
            if msg is None:
                continue
            if msg.error() is not None:
                raise PulseError(f"reading {topic}: {msg.error()}")
            deadline = time.monotonic() + timeout_s
            seen += 1
            headers = {k: _text(v) for k, v in (msg.headers() or [])}
            if "pulse-control" in headers:
                body: dict[str, Any] = {"control": _text(msg.value())}
            else:
                body = decode_value(logical, msg.value())
            yield {
                "topic": msg.topic(),
                "partition": msg.partition(),
                "offset": msg.offset(),
                "timestamp_ms": msg.timestamp()[1],
                "key": _text(msg.key()),
                "headers": headers,
                **body,
            }
    finally:
        consumer.close()


def dumps(record: dict[str, Any]) -> str:
    return json.dumps(record, sort_keys=True, separators=(",", ":"), default=_text)
