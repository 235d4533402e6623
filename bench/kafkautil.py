"""Broker-side measurements: topics, high watermarks, consumer-group lag, record times."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterable

from confluent_kafka import Consumer, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from pipeline.contract.topics import wait_for_topics


class Broker:
    def __init__(self, bootstrap: str) -> None:
        self.bootstrap = bootstrap
        self.reopen()

    def reopen(self) -> None:
        self._groups: dict[str, Consumer] = {}
        self.admin = AdminClient({"bootstrap.servers": self.bootstrap})
        self._consumer = Consumer(
            {
                "bootstrap.servers": self.bootstrap,
                "group.id": "bench-probe",
                "enable.auto.commit": False,
            }
        )

    def close(self) -> None:
        """Close the clients (a broker outage leaves them nothing to do)."""
        self._consumer.close()
        for consumer in self._groups.values():
            consumer.close()
        del self.admin

    def create_topic(self, name: str, partitions: int = 4) -> None:
        futures = self.admin.create_topics(
            [NewTopic(name, num_partitions=partitions, replication_factor=1)], operation_timeout=30
        )
        for fut in futures.values():
            try:
                fut.result()
            except KafkaException as exc:
                if "TOPIC_ALREADY_EXISTS" not in str(exc):
                    raise
        wait_for_topics(self.admin, [name])

    def delete_topics(self, names: Iterable[str]) -> None:
        names = list(names)
        if not names:
            return
        for fut in self.admin.delete_topics(names, operation_timeout=30).values():
            with contextlib.suppress(KafkaException):
                fut.result()

    def topics(self) -> set[str]:
        return set(self.admin.list_topics(timeout=10).topics)

    def partitions(self, topic: str) -> list[int]:
        md = self.admin.list_topics(topic, timeout=10).topics[topic]
        return sorted(md.partitions)

    def high_watermarks(self, topic: str) -> dict[int, int]:
        return {
            p: self._consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
            for p in self.partitions(topic)
        }

    def committed(self, group: str, topic: str) -> dict[int, int]:
        """The group's committed offsets, asked by a consumer of the group that never joins it.

        Not ``AdminClient.list_consumer_group_offsets``: librdkafka 2.12.1 dereferences
        a null consumer group in its error path (``rd_kafka_handle_OffsetFetch`` ->
        ``rd_kafka_cgrp_op``) and crashed the harness when the broker went down.
        """
        consumer = self._groups.get(group)
        if consumer is None:
            consumer = self._groups[group] = Consumer(
                {
                    "bootstrap.servers": self.bootstrap,
                    "group.id": group,
                    "enable.auto.commit": False,
                }
            )
        tps = [TopicPartition(topic, p) for p in self.partitions(topic)]
        return {tp.partition: max(tp.offset, 0) for tp in consumer.committed(tps, timeout=10)}

    def committed_total(self, group: str, topic: str) -> int:
        return sum(self.committed(group, topic).values())

    def end_offsets_total(self, prefix: str) -> int:
        """Sum of the high watermarks of every topic named ``prefix*`` (moves on any write)."""
        names = [t for t in self.topics() if t.startswith(prefix)]
        return sum(sum(self.high_watermarks(t).values()) for t in names)

    def lag(self, group: str, topic: str) -> int:
        high = self.high_watermarks(topic)
        done = self.committed(group, topic)
        return sum(max(0, h - done.get(p, 0)) for p, h in high.items())

    def wait_lag_zero(
        self,
        group: str,
        topics: list[str],
        *,
        timeout_s: float,
        alive: object = None,
        interval_s: float = 0.25,
    ) -> float:
        """Wait until ``group`` committed every record of ``topics``; returns when (monotonic)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                if all(self.lag(group, t) == 0 for t in topics):
                    return time.monotonic()
            except KafkaException:
                pass
            if callable(alive) and not alive():
                raise RuntimeError(f"worker of {group} exited before its lag reached 0")
            time.sleep(interval_s)
        lags = {t: self.lag(group, t) for t in topics}
        raise TimeoutError(f"group {group} still has lag {lags} after {timeout_s:.0f} s")

    def record_times(self, topic: str) -> tuple[float, float, int]:
        """(first, last) record timestamps (s) over all partitions, and the record count."""
        firsts, lasts, count = [], [], 0
        c = self._consumer
        for p in self.partitions(topic):
            low, high = c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
            if high <= low:
                continue
            count += high - low
            for off, sink in ((low, firsts), (high - 1, lasts)):
                c.assign([TopicPartition(topic, p, off)])
                deadline = time.monotonic() + 10
                while time.monotonic() < deadline:
                    msg = c.poll(0.5)
                    if msg is not None and msg.error() is None:
                        sink.append(msg.timestamp()[1] / 1000)
                        break
        c.unassign()
        if not firsts:
            return 0.0, 0.0, 0
        return min(firsts), max(lasts), count
