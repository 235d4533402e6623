"""Reading a partition's changelog back into its store, before the partition runs.

Called on assignment for every newly assigned partition number at once: one
consumer, outside the group, reads each changelog partition from its store's
checkpoint to the end of what is committed (``read_committed``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from confluent_kafka import Consumer, KafkaError, TopicPartition

from pipeline.errors import BrokerUnavailable
from pipeline.worker.store import PartitionStore

if TYPE_CHECKING:
    from pipeline.worker.partition import PartitionTask

log = logging.getLogger(__name__)


def restore(
    bootstrap: str, changelog: str, stores: dict[int, PartitionStore], *, timeout_s: float = 120
) -> dict[int, int]:
    """Bring each store up to its changelog partition's end; returns records read per partition."""
    if not stores:
        return {}
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"{changelog}-restore",
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
            "enable.partition.eof": True,
            "fetch.wait.max.ms": 50,
        }
    )
    read = dict.fromkeys(stores, 0)
    try:
        starts = []
        pending = set()
        for p, store in stores.items():
            low, high = consumer.get_watermark_offsets(TopicPartition(changelog, p), timeout=30)
            start = store.checkpoint + 1
            if start > high or (start < low and store.checkpoint >= 0):
                # the local copy does not belong to this changelog (recreated topic,
                # other cluster) or fell behind what compaction kept: start over
                log.warning(
                    "partition %d: local state (checkpoint %d) does not match the "
                    "changelog (%d..%d); restoring from scratch",
                    p,
                    store.checkpoint,
                    low,
                    high,
                )
                store.wipe()
                start = low
            if start < high:
                starts.append(TopicPartition(changelog, p, start))
                pending.add(p)
        if not starts:
            return read
        consumer.assign(starts)
        deadline = time.monotonic() + timeout_s
        while pending:
            if time.monotonic() > deadline:
                raise BrokerUnavailable(
                    f"restoring {changelog} partitions {sorted(pending)} "
                    f"took over {timeout_s:.0f} s"
                )
            batches: dict[int, list[tuple[int, bytes, bytes | None]]] = {}
            for msg in consumer.consume(5000, timeout=0.5):
                _apply(msg, batches, pending)
            for p, records in batches.items():
                stores[p].restore_records(records)
                read[p] += len(records)
    finally:
        consumer.close()
    return read


def _apply(
    msg: Any, batches: dict[int, list[tuple[int, bytes, bytes | None]]], pending: set[int]
) -> None:
    err = msg.error()
    if err is not None:
        if err.code() == KafkaError._PARTITION_EOF:
            pending.discard(msg.partition())
            return
        log.warning("restoring: %s", err)
        return
    batches.setdefault(msg.partition(), []).append((msg.offset(), msg.key(), msg.value()))


def recent_message_ids(
    bootstrap: str, topic: str, partition: int, end: int, *, limit: int
) -> list[tuple[str, int]]:
    """Message ids and event times of the ``limit`` records before ``end`` in ``topic[partition]``.

    Read on assignment to refill the partition's duplicate window (it is not
    kept in the store: one changelog write per event would double the
    changelog). Records that do not decode are left out.
    """
    from pipeline.contract.wire import decode_for_processing
    from pipeline.errors import DecodeError

    if end <= 0 or limit <= 0:
        return []
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"{topic}-dedupe-refill",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
            "fetch.wait.max.ms": 50,
        }
    )
    found: list[tuple[str, int]] = []
    try:
        tp = TopicPartition(topic, partition)
        low, _high = consumer.get_watermark_offsets(tp, timeout=30)
        start = max(low, end - limit)
        if start >= end:
            return []
        consumer.assign([TopicPartition(topic, partition, start)])
        deadline = time.monotonic() + 60
        done = False
        while not done and time.monotonic() < deadline:
            for msg in consumer.consume(1000, timeout=0.5):
                if msg.error() is not None:
                    done = done or msg.error().code() == KafkaError._PARTITION_EOF
                    continue
                if msg.offset() >= end:
                    done = True
                    break
                try:
                    event, _ = decode_for_processing(msg.value())
                except DecodeError:
                    continue
                found.append((event.message_id, event.timestamp_ms))
                done = msg.offset() >= end - 1
    finally:
        consumer.close()
    return found


#: How many records refill a source's duplicate window when its store has none (an upgrade).
DEDUPE_REFILL = 20_000


def refill_duplicate_windows(
    bootstrap: str,
    topic: str,
    tasks: Mapping[int, PartitionTask],
    starts: Mapping[tuple[str, int], int],
) -> None:
    """A source's duplicate window, from the records before its start, if its store has none.

    The store keeps the window (``seen.py``); a store written by a Pulse
    before that has none, and gets the last ``DEDUPE_REFILL`` records' ids, so
    a duplicate whose first copy came just before the upgrade is still
    recognised.
    """
    for p, task in tasks.items():
        if task.seen_restored:  # the store kept the window (seen.py)
            continue
        start = starts.get((topic, p), 0)
        for message_id, at_ms in recent_message_ids(
            bootstrap, topic, p, start, limit=DEDUPE_REFILL
        ):
            task.source.dedupe.offer(message_id, at_ms)
