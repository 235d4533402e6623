"""Which worker answers for which partition: advertised on a compacted topic.

Each worker writes one record to ``<prefix>workers`` (compacted, one
partition), keyed by its instance id, whenever its ready partitions change::

    {"url": "http://host:9110", "partitions": [0, 1], "at_ms": ...}

(``partitions`` empty when a rebalance starts or the worker stops), and every
worker reads the topic from the start in a background thread. The owner of
partition ``p`` is the worker whose latest record claims ``p`` with the
highest offset: a worker killed with ``kill -9`` leaves its last claim behind,
but the next owner claims the partition after it restored it. A forwarded
request that reaches a worker that does not hold the partition (any more) is
answered ``503`` there, never forwarded again.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition

from pipeline.config import Settings

log = logging.getLogger(__name__)
WORKERS = "workers"


def workers_topic(settings: Settings) -> str:
    return settings.topic(WORKERS)


def ensure_workers_topic(settings: Settings) -> None:
    from pipeline.contract.topics import ensure_compacted_topic

    ensure_compacted_topic(settings, workers_topic(settings), 1)


class Directory:
    """Advertises this worker's partitions, and reads every worker's from the topic."""

    def __init__(self, settings: Settings, instance_id: str) -> None:
        self.settings = settings
        self.instance_id = instance_id
        self.topic = workers_topic(settings)
        self.url = ""
        self.claims: dict[str, tuple[int, str, frozenset[int]]] = {}  # id -> (offset, url, parts)
        self.owners: dict[int, tuple[str, str]] = {}  # partition -> (instance id, url)
        self.stopping = threading.Event()
        self.thread: threading.Thread | None = None
        self.producer = Producer(
            {"bootstrap.servers": settings.bootstrap_servers, "linger.ms": 0, "acks": "all"}
        )

    def start(self, url: str) -> None:
        self.url = url
        self.thread = threading.Thread(target=self._read, name="pulse-api-directory", daemon=True)
        self.thread.start()

    def advertise(self, partitions: frozenset[int]) -> None:
        """Called on the worker loop's thread at each assignment / revocation; never blocks.

        The producer's own thread delivers it (a broker outage must not hold up
        a rebalance callback); :meth:`close` waits for what is left.
        """
        value = {
            "url": self.url,
            "partitions": sorted(partitions),
            "at_ms": int(time.time() * 1000),
        }
        try:
            self.producer.produce(self.topic, json.dumps(value).encode(), self.instance_id.encode())
        except BufferError:
            log.warning("the profile API's advertisement was not queued (producer queue full)")
        self.producer.poll(0)

    def owner(self, partition: int) -> tuple[str, str] | None:
        """(instance id, url) of the worker that last claimed ``partition``."""
        return self.owners.get(partition)

    def _read(self) -> None:
        consumer = Consumer(
            {
                "bootstrap.servers": self.settings.bootstrap_servers,
                "group.id": f"{self.settings.app_id}-api-directory",  # never commits
                "enable.auto.commit": False,
                "fetch.wait.max.ms": 50,
            }
        )
        consumer.assign([TopicPartition(self.topic, 0, OFFSET_BEGINNING)])
        try:
            while not self.stopping.is_set():
                for msg in consumer.consume(100, timeout=0.2):
                    if msg.error() is None and msg.key():
                        self._apply(msg.key().decode(), msg.offset(), msg.value())
        except Exception:
            log.exception("the profile API's directory reader stopped")
        finally:
            consumer.close()

    def _apply(self, instance: str, offset: int, raw: Any) -> None:
        try:
            value = json.loads(raw) if raw else {}
            claim = (offset, str(value.get("url", "")), frozenset(value.get("partitions", ())))
        except (ValueError, TypeError, AttributeError):
            return
        claims = dict(self.claims)
        claims[instance] = claim
        owners: dict[int, tuple[int, str, str]] = {}
        for who, (at, url, parts) in claims.items():
            for p in parts:
                if p not in owners or owners[p][0] < at:
                    owners[p] = (at, who, url)
        self.claims = claims
        self.owners = {p: (who, url) for p, (_, who, url) in owners.items()}  # swapped whole

    def close(self) -> None:
        self.stopping.set()
        if self.thread is not None:
            self.thread.join(5)
        self.producer.flush(5)
