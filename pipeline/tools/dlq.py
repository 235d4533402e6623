"""``pulse dlq inspect`` and ``pulse dlq replay``: the dead-letter topic after the fact.

A DLQ record is the original record, untouched (key, value, headers), plus
``pulse-dlq-*`` headers the ingest agent adds::

    pulse-dlq-reason            a reason code (pipeline.contract.wire.REASONS, or processing_error)
    pulse-dlq-message           what went wrong, for humans
    pulse-dlq-source-topic      where the record was read
    pulse-dlq-source-partition
    pulse-dlq-source-offset

``inspect`` reads the topic from the beginning to its current end and counts
records by reason, with one example each. ``replay`` re-drives the chosen
records (by reason; with ``--max N`` the N oldest, by the time they were
dead-lettered) to ``pulse.events`` with their original key, value and
headers, without the ``pulse-dlq-*`` ones. Replaying twice sends
twice: the ingest's message-id dedupe drops repeats of events that went
through.

The same tools work on ``pulse.activations.dlq`` (``topic="activations.dlq"``,
``pulse dlq inspect|replay --activations``), where the delivery worker puts
activations it gave up on, with ``pulse-dlq-destination``, ``-attempts`` and
``-status`` headers besides the reason; replay sends each back to its
destination's ``pulse.activations.<destination>`` topic.
"""

from __future__ import annotations

import base64
import heapq
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from pipeline.config import Settings
from pipeline.errors import BrokerUnavailable, PulseError

DLQ_HEADER_PREFIX = "pulse-dlq-"
EVENTS_DLQ = "events.dlq"
ACTIVATIONS_DLQ = "activations.dlq"
_EXAMPLE_BYTES = 300
_ACTIVATION_FIELDS = ("destination", "attempts", "status")


@dataclass(frozen=True)
class DeadLetter:
    """One DLQ record: the original bytes and the reason headers."""

    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]]
    timestamp_ms: int = 0

    @property
    def age_order(self) -> tuple[int, int, int]:
        """Oldest first: when it was dead-lettered, then where it sits in the topic."""
        return (self.timestamp_ms, self.partition, self.offset)

    def header(self, name: str) -> str | None:
        for key, value in self.headers:
            if key == name:
                return value.decode("utf-8", "replace")
        return None

    @property
    def reason(self) -> str:
        return self.header("pulse-dlq-reason") or "unknown"

    @property
    def original_headers(self) -> list[tuple[str, bytes]]:
        """The headers the producer sent, without Pulse's ``pulse-dlq-*``."""
        return [(k, v) for k, v in self.headers if not k.startswith(DLQ_HEADER_PREFIX)]

    def example(self) -> dict[str, Any]:
        """A JSON-able view: value as text when it is UTF-8, else base64 (both cut short)."""
        value = self.value or b""
        try:
            shown: dict[str, Any] = {"value": value[:_EXAMPLE_BYTES].decode()}
        except UnicodeDecodeError:
            shown = {"value_base64": base64.b64encode(value[:_EXAMPLE_BYTES]).decode()}
        return {
            "partition": self.partition,
            "offset": self.offset,
            "timestamp_ms": self.timestamp_ms,
            "key": None if self.key is None else self.key.decode("utf-8", "replace"),
            "message": self.header("pulse-dlq-message"),
            "source": f"{self.header('pulse-dlq-source-topic')}/"
            f"{self.header('pulse-dlq-source-partition')}@"
            f"{self.header('pulse-dlq-source-offset')}",
            "bytes": len(value),
            **{k: self.header(f"pulse-dlq-{k}") for k in _ACTIVATION_FIELDS
               if self.header(f"pulse-dlq-{k}") is not None},
            **shown,
        }  # fmt: skip


def _target(settings: Settings, topic: str, letter: DeadLetter) -> str:
    """Where a replayed record goes: ``pulse.events``, or its destination's activation topic."""
    if topic != ACTIVATIONS_DLQ:
        return settings.topic("events")
    destination = letter.header("pulse-dlq-destination")
    if not destination:
        raise PulseError(f"dead letter at {letter.partition}@{letter.offset} names no destination")
    return settings.topic(f"activations.{destination}")


@dataclass
class ReasonSummary:
    count: int = 0
    example: dict[str, Any] = field(default_factory=dict)


def format_summary(topic: str, summary: dict[str, ReasonSummary], *, as_json: bool) -> str:
    """What ``pulse dlq inspect`` and ``pulse deliver dlq inspect`` print for ``summary``."""
    if as_json:
        return json.dumps(
            {r: {"count": s.count, "example": s.example} for r, s in summary.items()}, indent=1
        )
    total = sum(s.count for s in summary.values())
    lines = [f"{topic}: {total} record(s)"]
    for reason, entry in summary.items():
        lines.append(f"{entry.count:>8}  {reason}")
        lines.append(f"          e.g. {json.dumps(entry.example, ensure_ascii=False)}")
    return "\n".join(lines)


def read_dlq(
    settings: Settings, *, timeout_s: float = 30.0, topic: str = EVENTS_DLQ
) -> Iterator[DeadLetter]:
    """Every record of a DLQ topic (logical name), from the beginning to its end as of now."""
    from confluent_kafka import Consumer, TopicPartition

    from pipeline.tools.tail import topic_partitions

    topic = settings.topic(topic)
    consumer = Consumer({"bootstrap.servers": settings.bootstrap_servers,
                         "group.id": "pulse-dlq-tool", "enable.auto.commit": False,
                         "isolation.level": "read_committed",
                         "enable.partition.eof": False})  # fmt: skip
    try:
        ends: dict[int, int] = {}
        assignment = []
        for p in topic_partitions(consumer, settings, topic):
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
            if high > low:
                ends[p] = high
                assignment.append(TopicPartition(topic, p, low))
        if not assignment:
            return
        consumer.assign(assignment)
        while ends:
            msg = consumer.poll(min(timeout_s, 1.0))
            if msg is None:
                # Transaction markers take offsets too: a partition whose
                # position reached its end is done even without a last record.
                positions = consumer.position([TopicPartition(topic, p) for p in ends])
                for tp in positions:
                    if tp.offset >= ends[tp.partition]:
                        del ends[tp.partition]
                timeout_s -= 1.0
                if ends and timeout_s <= 0:
                    raise PulseError(f"reading {topic}: stuck before its end "
                                     f"({len(ends)} partition(s) left)")  # fmt: skip
                continue
            if msg.error() is not None:
                raise PulseError(f"reading {topic}: {msg.error()}")
            p, offset = msg.partition(), msg.offset()
            end = ends.get(p)
            if end is None or offset >= end:
                continue  # finished partition, or a record that came after we started
            if offset + 1 >= end:
                del ends[p]
            yield DeadLetter(
                partition=p,
                offset=offset,
                key=msg.key(),
                value=msg.value(),
                headers=[(k, v if v is not None else b"") for k, v in (msg.headers() or [])],
                timestamp_ms=msg.timestamp()[1],
            )
    finally:
        consumer.close()


def inspect(settings: Settings, *, topic: str = EVENTS_DLQ) -> dict[str, ReasonSummary]:
    """Reason -> count and the oldest example, for the whole DLQ.

    On the activations DLQ the reason is prefixed with the destination
    (``crm: rejected``).
    """
    summary: dict[str, ReasonSummary] = {}
    oldest: dict[str, DeadLetter] = {}
    for letter in read_dlq(settings, topic=topic):
        destination = letter.header("pulse-dlq-destination")
        label = f"{destination}: {letter.reason}" if destination else letter.reason
        summary.setdefault(label, ReasonSummary()).count += 1
        seen = oldest.get(label)
        if seen is None or letter.age_order < seen.age_order:
            oldest[label] = letter
    for reason, letter in oldest.items():
        summary[reason].example = letter.example()
    return dict(sorted(summary.items(), key=lambda kv: (-kv[1].count, kv[0])))


def replay(
    settings: Settings,
    *,
    reason: str | None = None,
    max_records: int | None = None,
    topic: str = EVENTS_DLQ,
) -> int:
    """Re-drive DLQ records to ``pulse.events`` (or their activation topic); returns how many.

    All records, or those with ``reason``; with ``max_records`` the oldest
    that many (partitions are read in parallel, so "the first N read" would be
    arbitrary). Each goes with its original key, value and headers (without
    ``pulse-dlq-*``).
    """
    from confluent_kafka import KafkaException, Producer

    from pipeline.contract.produce import kafka_producer_config

    errors: list[str] = []

    def on_delivery(err: Any, _msg: Any) -> None:
        if err is not None:
            errors.append(str(err))

    producer = Producer(kafka_producer_config(settings))
    sent = 0
    chosen: Iterable[DeadLetter] = (
        letter
        for letter in read_dlq(settings, topic=topic)
        if reason is None or letter.reason == reason
    )
    if max_records is not None:
        chosen = heapq.nsmallest(max(max_records, 0), chosen, key=lambda d: d.age_order)
    try:
        for letter in chosen:
            producer.produce(
                _target(settings, topic, letter),
                key=letter.key,
                value=letter.value,
                headers=letter.original_headers,
                on_delivery=on_delivery,
            )
            producer.poll(0)
            sent += 1
        remaining = producer.flush(60)
    except KafkaException as exc:
        raise BrokerUnavailable(f"producing to {settings.bootstrap_servers} failed: {exc}") from exc
    if remaining or errors:
        raise BrokerUnavailable(f"{remaining} record(s) not re-driven"
                                + (f": {errors[0]}" if errors else ""))  # fmt: skip
    return sent
