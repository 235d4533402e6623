"""Every record of a partition, in offset order, once: a guard in front of each agent.

faust-streaming (0.11) can hand an agent a partition's records with a hole in
them. When flow is suspended or the consumer generation changes while a fetched
batch is being delivered (startup, rebalance, recovery), the rest of the batch
is dropped although the fetch position has moved past it; and after a seek its
read-offset filter drops the records fetched anew while the rest of the older
batch is still delivered. The consumer books the hole as a "gap" and commits
over it, so nothing reads those records again. The integration tests saw it on
a loaded machine: ``pulse.events`` records 33-37 of a partition never reached
ingest, and one person's checkout vanished.

:class:`OffsetGuard` notices, per partition, a record whose offset is beyond
the next one expected, and the agent then reads the missing offsets straight
from the broker (:func:`read_range`) and processes them first, so the partition
is processed in order with nothing skipped. Compaction or a transactional
producer's commit markers can leave offsets without a record; the read then
returns fewer records than offsets, which is fine. Records below the expected
offset (delivered again after a seek back to the committed offset) were
processed already and are dropped. A hole at the end of a quiet partition is
not revealed by a later record; the worker's ``tail-gaps`` timer seeks such a
partition back (``PulseWorker._check_tails``), and a partition that delivered
nothing since its assignment back to the start of its backlog. The first record
after an assignment is checked against that start (the group's committed
offset, else the earliest), so a skipped beginning of the backlog is noticed too.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from enum import Enum


class Verdict(Enum):
    PROCESS = "process"  #: the next record: process it
    SEEN = "seen"  #: processed already (delivered again): drop it
    GAP = "gap"  #: offsets ``expected[p]`` up to it never arrived: fill them first


@dataclass(frozen=True, slots=True)
class Record:
    """One Kafka record, as the agents read it (from Faust or from :func:`read_range`)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]]


@dataclass
class OffsetGuard:
    """Per partition, the offset the agent must process next."""

    expected: dict[int, int] = field(default_factory=dict)

    def check(self, partition: int, offset: int) -> Verdict:
        expected = self.expected.get(partition)
        if expected is None or offset == expected:
            self.advance(partition, offset)
            return Verdict.PROCESS
        return Verdict.SEEN if offset < expected else Verdict.GAP

    def advance(self, partition: int, offset: int) -> None:
        """``offset`` and everything before it is processed."""
        self.expected[partition] = offset + 1

    def forget(self, partition: int) -> None:
        """After the partition was revoked: its next owner starts where Faust seeks."""
        self.expected.pop(partition, None)


def read_range(
    bootstrap_servers: str,
    topic: str,
    partition: int,
    start: int,
    end: int,
    *,
    timeout_s: float = 30.0,
    limit: int | None = None,
) -> list[Record]:
    """The records at offsets ``start <= offset < end`` of one partition, read directly.

    At most ``limit`` of them, when given. Blocking (run it in a thread).
    Raises ``TimeoutError`` if the broker does not deliver up to ``end`` in
    ``timeout_s``.
    """
    from confluent_kafka import Consumer, KafkaError, TopicPartition

    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap_servers,
            "group.id": "pulse-gap-reader",  # assign() only: never joins, never commits
            "enable.auto.commit": False,
            "enable.partition.eof": True,
            "auto.offset.reset": "earliest",  # start deleted by retention: what remains
        }
    )
    records: list[Record] = []
    deadline = time.monotonic() + timeout_s
    try:
        consumer.assign([TopicPartition(topic, partition, start)])
        while True:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{topic}[{partition}]: offsets {start}..{end - 1} not read")
            msg = consumer.poll(0.2)
            if msg is None:
                continue
            error = msg.error()
            if error is not None:
                if error.code() == KafkaError._PARTITION_EOF:
                    return records
                continue
            offset = msg.offset()
            if offset is None or offset >= end:
                return records
            headers = [(k, v if v is not None else b"") for k, v in msg.headers() or []]
            records.append(Record(topic, partition, offset, msg.key(), msg.value(), headers))
            if offset == end - 1 or len(records) == limit:
                return records
    finally:
        consumer.close()


def partition_bounds(
    bootstrap_servers: str, topic: str, partition: int, *, timeout_s: float = 5.0
) -> tuple[int, int]:
    """The earliest offset and the high watermark of one partition, asked of the broker.

    Blocking (run it in a thread). Not through Faust's consumer: its thread
    answers such questions between fetches, which took ~1.5 s on an idle worker,
    and a new worker's first records waited that long. Raises
    ``confluent_kafka.KafkaException`` if the broker does not answer in ``timeout_s``.
    """
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap_servers,
            "group.id": "pulse-gap-reader",  # asks offsets only: never joins, never commits
            "enable.auto.commit": False,
        }
    )
    try:
        low, high = consumer.get_watermark_offsets(
            TopicPartition(topic, partition), timeout=timeout_s, cached=False
        )
    finally:
        consumer.close()
    return int(low), int(high)
