"""Prometheus metrics of the delivery worker, per destination (``pulse deliver``).

Served on ``PULSE_METRICS_PORT`` like the stream worker's
(:mod:`pipeline.worker.metrics`), by the process that runs ``pulse deliver``.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram, start_http_server

DELIVER_DELIVERED = Counter(
    "pulse_deliver_delivered", "Activations delivered (2xx)", ["destination"]
)
DELIVER_RETRIED = Counter(
    "pulse_deliver_retried", "Activations scheduled for another attempt", ["destination"]
)
DELIVER_DEAD_LETTERED = Counter(
    "pulse_deliver_dead_lettered",
    "Activations sent to pulse.activations.dlq",
    ["destination", "reason"],
)
DELIVER_REQUESTS = Counter(
    "pulse_deliver_requests",
    "HTTP requests by outcome (2xx, 3xx, 4xx, 5xx, or error for timeouts and connection errors)",
    ["destination", "outcome"],
)
DELIVER_DISABLED = Gauge(
    "pulse_deliver_disabled",
    "1 while the destination is disabled (it answered 410)",
    ["destination"],
)
DELIVER_IN_FLIGHT = Gauge(
    "pulse_deliver_in_flight", "Activations in requests not answered yet", ["destination"]
)
DELIVER_PENDING = Gauge(
    "pulse_deliver_pending",
    "Activations the worker holds: waiting, in flight or waiting for a retry",
    ["destination"],
)
DELIVER_LATENCY = Histogram(
    "pulse_deliver_latency_seconds",
    "From the activation's emission (pulse-emitted-at-ms) to its 2xx",
    ["destination"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800, 7200),
)


def serve(port: int) -> None:
    """Expose ``/metrics`` on 0.0.0.0:``port`` (0 disables it)."""
    if port:
        start_http_server(port)
