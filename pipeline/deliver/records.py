"""Topic names and the headers of the records the delivery worker writes.

==========================================  =========================================
topic                                       what
==========================================  =========================================
``pulse.activations.<destination>``         input: activations (``schemas/activation.avsc``)
``pulse.deliver.<destination>.retry``       entries waiting for a retry, parked
                                            followers, and done-markers
``pulse.activations.dlq``                   activations given up on, one topic for
                                            every destination
``pulse.deliver.state``                     compacted: which destinations are disabled
==========================================  =========================================

A retry record is the activation as read (key, value, headers) plus
``pulse-deliver-*`` headers; a dead letter the same plus ``pulse-dlq-*``
headers (the convention of ``pulse.events.dlq``, see ``pipeline.tools.dlq``) with the
destination, the attempts, the last HTTP status and the last error.
"""

from __future__ import annotations

from typing import Any

from pipeline.config import Settings
from pipeline.contract.topics import ACTIVATIONS
from pipeline.deliver.entries import Entry, Headers

DLQ = "activations.dlq"
STATE = "deliver.state"
RETRY_PREFIX = "pulse-deliver-"
EMITTED_HEADER = "pulse-emitted-at-ms"
_META_INT = ("origin", "gen", "attempts", "due-ms", "first-ms", "status", "marker")


def input_topic(settings: Settings, destination: str) -> str:
    return settings.topic(ACTIVATIONS + destination)


def retry_topic(settings: Settings, destination: str) -> str:
    return settings.topic(f"deliver.{destination}.retry")


def header(headers: Headers, name: str) -> bytes | None:
    for key, value in headers:
        if key == name:
            return value
    return None


def emitted_ms(headers: Headers, kafka_timestamp_ms: int) -> int:
    """When the worker emitted the activation (its header), else the record's timestamp."""
    raw = header(headers, EMITTED_HEADER)
    if raw is not None and raw.isdigit():
        return int(raw)
    return max(kafka_timestamp_ms, 0)


def original(headers: Headers) -> Headers:
    """Headers without what the delivery worker and the DLQ added."""
    return [(k, v) for k, v in headers if not k.startswith((RETRY_PREFIX, "pulse-dlq-"))]


def retry_meta(headers: Headers) -> dict[str, int]:
    """``origin``, ``gen``, ``attempts``, ``due_ms``, ``first_ms``, ``status``, ``marker``."""
    meta: dict[str, int] = {}
    for key, value in headers:
        if key.startswith(RETRY_PREFIX):
            name = key[len(RETRY_PREFIX) :]
            if name in _META_INT and value.lstrip(b"-").isdigit():
                meta[name.replace("-", "_")] = int(value)
    return meta


def retry_headers(entry: Entry, gen: int) -> Headers:
    meta = {
        "origin": entry.origin,
        "gen": gen,
        "attempts": entry.attempts,
        "due-ms": entry.due_ms,
        "first-ms": entry.first_ms,
        "status": entry.last_status or 0,
    }
    out = original(entry.headers)
    out.extend((RETRY_PREFIX + k, str(v).encode()) for k, v in meta.items())
    if entry.last_error:
        out.append((RETRY_PREFIX + "error", entry.last_error[:500].encode()))
    return out


def marker_headers(entry: Entry, gen: int) -> Headers:
    return [
        (RETRY_PREFIX + "origin", str(entry.origin).encode()),
        (RETRY_PREFIX + "gen", str(gen).encode()),
        (RETRY_PREFIX + "marker", b"1"),
    ]


def dlq_headers(entry: Entry, reason: str, source_topic: str, destination: str) -> Headers:
    fields: dict[str, Any] = {
        "reason": reason,
        "message": entry.last_error or reason,
        "source-topic": source_topic,
        "source-partition": entry.partition,
        "source-offset": entry.origin,
        "destination": destination,
        "attempts": entry.attempts,
        "status": entry.last_status or "",
    }
    out = original(entry.headers)
    out.extend((f"pulse-dlq-{k}", str(v).encode()) for k, v in fields.items())
    return out
