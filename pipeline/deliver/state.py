"""Which destinations are disabled, kept in a compacted topic; the delivery topics' creation.

A destination that answers ``410 Gone`` is disabled by the worker that saw it:
a record ``{"disabled": true, "reason": ..., "status": 410, "at_ms": ...}`` keyed by
the destination's name goes to ``pulse.deliver.state``. Every delivery worker
reads that topic at start and follows it while it runs, so
``pulse deliver enable NAME`` (which writes ``{"disabled": false}``) resumes the
destination everywhere, and ``pulse deliver status`` shows it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from typing import Any

from pipeline.config import Settings
from pipeline.contract.topics import wait_for_topics
from pipeline.deliver.records import DLQ, STATE, input_topic, retry_topic
from pipeline.errors import BrokerUnavailable, PulseError


def _admin(settings: Settings) -> Any:
    from confluent_kafka.admin import AdminClient

    return AdminClient({"bootstrap.servers": settings.bootstrap_servers})


def partition_counts(
    settings: Settings, topics: Iterable[str], timeout_s: float = 30
) -> dict[str, int]:
    """Partitions of each topic that exists."""
    from confluent_kafka import KafkaException

    try:
        metadata = _admin(settings).list_topics(timeout=timeout_s).topics
    except KafkaException as exc:
        raise BrokerUnavailable(
            f"no Kafka broker answered at {settings.bootstrap_servers}"
        ) from exc
    return {
        t: len(metadata[t].partitions) for t in topics if t in metadata and metadata[t].partitions
    }


def ensure_delivery_topics(
    settings: Settings, destinations: Iterable[str], *, partitions: int = 4, timeout_s: float = 30
) -> dict[str, int]:
    """Create the delivery topics that are missing; the partitions of each input topic.

    Input topics get ``partitions``, retry topics as many as their input, then
    the activations DLQ and the compacted state topic.
    """
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import NewTopic

    names = list(destinations)
    admin = _admin(settings)
    replicas = settings.replication_factor
    wanted: dict[str, tuple[int, dict[str, str]]] = {
        settings.topic(DLQ): (partitions, {}),
        settings.topic(STATE): (1, {"cleanup.policy": "compact"}),
    }
    for name in names:
        wanted[input_topic(settings, name)] = (partitions, {})
    existing = partition_counts(settings, wanted, timeout_s)
    counts = {name: existing.get(input_topic(settings, name), partitions) for name in names}
    for name in names:
        wanted[retry_topic(settings, name)] = (counts[name], {})
    existing.update(partition_counts(settings, [retry_topic(settings, n) for n in names]))
    for name in names:
        have = existing.get(retry_topic(settings, name))
        if have is not None and have != counts[name]:
            raise PulseError(
                f"{retry_topic(settings, name)} has {have} partitions but "
                f"{input_topic(settings, name)} has {counts[name]}: they must match (a person's "
                "retries share the partition number of their activations)"
            )
    missing = [NewTopic(t, num_partitions=n, replication_factor=replicas, config=cfg)
               for t, (n, cfg) in wanted.items() if t not in existing]  # fmt: skip
    if missing:
        for topic, future in admin.create_topics(missing, operation_timeout=timeout_s).items():
            try:
                future.result()
            except KafkaException as exc:
                if "TOPIC_ALREADY_EXISTS" not in str(exc):
                    raise PulseError(f"could not create topic {topic}: {exc}") from exc
        wait_for_topics(admin, [t.topic for t in missing], timeout_s=timeout_s)
    return counts


def watermarks(consumer: Any, tp: Any, timeout_s: float = 15) -> tuple[int, int]:
    """A partition's low and high watermarks, asked again while the metadata settles.

    A topic created a moment ago answers NOT_LEADER_FOR_PARTITION for a while.
    """
    from confluent_kafka import KafkaException

    deadline = time.monotonic() + timeout_s
    while True:
        try:
            low, high = consumer.get_watermark_offsets(tp, timeout=5, cached=False)
            return int(low), int(high)
        except KafkaException:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


class StateReader:
    """Follows ``pulse.deliver.state`` from its beginning: destination -> latest state."""

    def __init__(self, settings: Settings) -> None:
        from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

        self.topic = settings.topic(STATE)
        self.consumer = Consumer({
            "bootstrap.servers": settings.bootstrap_servers, "group.id": "pulse-deliver-state",
            "enable.auto.commit": False, "enable.partition.eof": False,
        })  # fmt: skip
        self.consumer.assign([TopicPartition(self.topic, 0, OFFSET_BEGINNING)])
        self.states: dict[str, dict[str, Any]] = {}

    def read_to_end(self, timeout_s: float = 30) -> dict[str, dict[str, Any]]:
        from confluent_kafka import TopicPartition

        _, high = watermarks(self.consumer, TopicPartition(self.topic, 0))
        deadline = time.monotonic() + timeout_s
        while True:
            position = self.consumer.position([TopicPartition(self.topic, 0)])[0].offset
            if position >= high or high == 0:
                return self.states
            if time.monotonic() > deadline:
                raise BrokerUnavailable(f"reading {self.topic}: not at its end after {timeout_s} s")
            self.poll(0.2)

    def poll(self, timeout_s: float = 0.0) -> dict[str, dict[str, Any]]:
        """New states since the last call (destination -> state)."""
        changed: dict[str, dict[str, Any]] = {}
        for msg in self.consumer.consume(100, timeout=timeout_s):
            if msg.error() is not None or msg.key() is None:
                continue
            name = msg.key().decode()
            try:
                state = json.loads(msg.value()) if msg.value() else {"disabled": False}
            except ValueError:
                continue
            self.states[name] = changed[name] = state
        return changed

    def close(self) -> None:
        self.consumer.close()


def write_state(
    settings: Settings, destination: str, *, disabled: bool, reason: str = "",
    status: int | None = None, producer: Any = None,
) -> None:  # fmt: skip
    """Record that ``destination`` is disabled (or enabled again); waits for the broker."""
    from confluent_kafka import Producer

    own = producer is None
    if own:
        ensure_delivery_topics(settings, [])  # the state topic, before the first worker ran
    producer = producer or Producer({"bootstrap.servers": settings.bootstrap_servers})
    value = {"disabled": disabled, "reason": reason, "status": status,
             "at_ms": int(time.time() * 1000)}  # fmt: skip
    producer.produce(settings.topic(STATE), key=destination.encode(), value=json.dumps(value))
    if own and producer.flush(30):
        raise BrokerUnavailable(f"could not write {settings.topic(STATE)}")


def read_states(settings: Settings) -> dict[str, dict[str, Any]]:
    """Destination -> its latest state (none before the first ``pulse deliver``)."""
    if not partition_counts(settings, [settings.topic(STATE)]):
        return {}
    reader = StateReader(settings)
    try:
        return dict(reader.read_to_end())
    finally:
        reader.close()
