"""Prometheus metrics of a Pulse worker (served on ``PULSE_METRICS_PORT``, default 9108).

The delivery worker's are in :mod:`pipeline.deliver.metrics`.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from prometheus_client import Counter, Gauge, Histogram, start_http_server

EVENTS_IN = Counter("pulse_events_in", "Records consumed", ["topic"])


@cache
def events_in(topic: str) -> Any:
    """``EVENTS_IN`` of ``topic`` (``labels()`` costs ~1.4 us a record on the hot path)."""
    return EVENTS_IN.labels(topic)


EVENTS_DLQ = Counter("pulse_events_dlq", "Records sent to the dead-letter topic", ["reason"])
EVENTS_DUPLICATE = Counter(
    "pulse_events_duplicate", "Duplicate message ids dropped by ingest (not reprocessed)"
)
HANDED_OVER = Counter(
    "pulse_records_handed_over",
    "Records for a person partition of the same worker, handed over without the broker",
)
EVENTS_REDELIVERED = Counter(
    "pulse_events_redelivered",
    "Events read again after an at_least_once crash, recognised by their source offset and skipped",
)
EVENTS_LATE = Counter("pulse_events_late", "Events beyond the allowed lateness")
TRIGGERS = Counter("pulse_triggers", "Triggers emitted", ["rule"])
WATERMARK_LAG = Gauge(
    "pulse_watermark_lag_seconds", "Wall clock minus the partition's watermark", ["partition"]
)
PROCESS_SECONDS = Histogram("pulse_process_seconds", "Time to process one batch of records")
COMMIT_SECONDS = Histogram("pulse_commit_seconds", "Time to commit a transaction (or offsets)")
TIMERS_PENDING = Gauge("pulse_timers_pending", "Pending event-time timers in this worker")


def serve(port: int) -> None:
    """Expose ``/metrics`` on 0.0.0.0:``port`` (0 disables it)."""
    if port:
        start_http_server(port)
