"""The worker's Kafka clients: how they are configured, and the changelog's name.

The consumer reads the worker's inputs (``loop.py``); the producer writes
outputs, forwarded records and, with exactly_once, the changelog in one
transaction; with at_least_once a second, state-only producer writes the
changelog (``commit.py``).
"""

from __future__ import annotations

import logging
from typing import Any

from pipeline.config import Settings
from pipeline.worker.kafkalog import RateLimitedLog


def changelog_topic(settings: Settings) -> str:
    return f"{settings.app_id}-state-changelog"


def consumer_config(settings: Settings, instance_id: str) -> dict[str, Any]:
    return {
        "bootstrap.servers": settings.bootstrap_servers,
        "group.id": settings.app_id,
        "partition.assignment.strategy": "range",
        "isolation.level": "read_committed",
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "auto.offset.reset": "earliest",
        "session.timeout.ms": settings.session_timeout_ms,
        "heartbeat.interval.ms": max(500, settings.session_timeout_ms // 5),
        "fetch.wait.max.ms": 100,
        # Small fetches and a small prefetch: through a backlog, partitions are read
        # in turns of ~64 KB, so every source's clock moves and the watermark (their
        # minimum) with it; by-person records (and the source clocks they carry)
        # never wait behind a long run of pulse.events in the local queue.
        "max.partition.fetch.bytes": 65_536,
        "queued.max.messages.kbytes": 1024,
        # librdkafka waits fetch.queue.backoff.ms (default 1 s) before fetching again
        # once that small queue is full: through a backlog that capped a worker at
        # about 1 MB/s (~3,000 events/s, the main thread idle 80% of the time)
        "fetch.queue.backoff.ms": 5,
        "group.instance.id": instance_id,
        "logger": RateLimitedLog(logging.getLogger("pipeline.worker.kafka")),
    }


#: A dead worker's open transaction blocks ``read_committed`` readers of the
#: partitions it wrote until it times out (a restarted instance aborts it at once).
TRANSACTION_TIMEOUT_MS = 10_000


def producer_config(settings: Settings, instance_id: str) -> dict[str, Any]:
    config: dict[str, Any] = {
        "bootstrap.servers": settings.bootstrap_servers,
        "enable.idempotence": True,
        "acks": "all",
        "linger.ms": settings.linger_ms,
        "partitioner": "murmur2_random",
        "compression.type": "lz4",
    }
    if settings.processing_guarantee == "exactly_once":
        config["transactional.id"] = f"{settings.app_id}-{instance_id}"
        config["transaction.timeout.ms"] = TRANSACTION_TIMEOUT_MS
    return config


def state_producer_config(settings: Settings, instance_id: str) -> dict[str, Any]:
    """at_least_once: the producer of the changelog, one transaction per commit."""
    config = producer_config(settings, instance_id)
    config["transactional.id"] = f"{settings.app_id}-{instance_id}-state"
    config["transaction.timeout.ms"] = TRANSACTION_TIMEOUT_MS
    return config
