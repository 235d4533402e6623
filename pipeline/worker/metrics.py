"""Prometheus metrics of a Pulse worker (served on ``PULSE_METRICS_PORT``, default 9108).

The delivery worker's are in :mod:`pipeline.deliver.metrics`.
"""

from __future__ import annotations

import contextlib
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


# -- models (pipeline/worker/models.py) --------------------------------------------------
MODELS_LOADED = Gauge("pulse_models_loaded", "Models in use, one per task (pulse.models)")
MODEL_INFO = Gauge(
    "pulse_model_info", "1 per task's model in use, labelled with its version", ["task", "version"]
)
MODEL_LOADED_AT = Gauge(
    "pulse_model_loaded_timestamp_seconds",
    "When the model in use was loaded (wall clock)",
    ["task"],
)
MODEL_AGE = Gauge("pulse_model_age_seconds", "Seconds since the model in use was loaded", ["task"])
MODELS_REFUSED = Counter("pulse_models_refused", "Models on pulse.models that failed validation")


def refresh_models(models: Any, loaded_at: dict[str, float]) -> None:
    """Set the model gauges from a :class:`~pipeline.core.models.ModelSet` (cheap: a few tasks)."""
    import time

    tasks = models.tasks()
    MODELS_LOADED.set(len(tasks))
    MODEL_INFO.clear()
    now = time.time()
    for task in tasks:
        MODEL_INFO.labels(task, models.version(task) or "").set(1)
        at = loaded_at.get(task)
        if at is not None:
            MODEL_LOADED_AT.labels(task).set(at)
            MODEL_AGE.labels(task).set(now - at)
    for gone in _SHOWN - set(tasks):
        for gauge in (MODEL_LOADED_AT, MODEL_AGE):
            with contextlib.suppress(KeyError):
                gauge.remove(gone)
    _SHOWN.clear()
    _SHOWN.update(tasks)


_SHOWN: set[str] = set()  # the tasks the gauges show
