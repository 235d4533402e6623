"""Decoding records from ``pulse.events``: three wire formats, detected per record.

=====================  ===============================  ===========================
first bytes            format                           resolved by
=====================  ===============================  ===========================
``C3 01``              Avro single-object encoding      fingerprint -> ``schemas/``
``00`` + 4-byte id     Confluent Schema Registry        the configured registry
``{`` (after spaces)   JSON (Segment or schema names)   validated like Avro input
=====================  ===============================  ===========================

Every failure is a :class:`~pipeline.errors.DecodeError` whose ``reason`` is a
stable code for the dead-letter topic.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from pipeline.avro import (
    SINGLE_OBJECT_MAGIC,
    decode_single_object,
    encode_single_object,
    load_schema,
)
from pipeline.core.events import Event, event_from_json
from pipeline.errors import DecodeError

#: Records larger than this go to the DLQ unread (reason ``oversized``).
MAX_EVENT_BYTES = 512 * 1024

#: A Schema Registry decoder: ``(framed bytes) -> record dict``.
RegistryDecoder = Callable[[bytes], dict[str, Any]]


def encode_event(event: Event) -> bytes:
    """Pulse's default framing for an event: Avro single-object encoding."""
    return encode_single_object(load_schema("event"), event.to_record())


def decode_event(data: bytes | None, registry: RegistryDecoder | None = None) -> Event:
    """Detect the wire format of ``data`` and return the validated event."""
    if data is None or len(data) == 0:
        raise DecodeError("empty", "the record has no value")
    if len(data) > MAX_EVENT_BYTES:
        raise DecodeError("oversized", f"{len(data)} bytes is over the {MAX_EVENT_BYTES}-byte limit")
    if data.startswith(SINGLE_OBJECT_MAGIC):
        return _validated(decode_single_object(data, "event"))
    if data[0] == 0:
        if registry is None:
            raise DecodeError(
                "registry_not_configured",
                "Schema Registry framing (magic byte 0) but no registry URL is configured",
            )
        return _validated(registry(data))
    stripped = data.lstrip()
    if stripped.startswith(b"{"):
        try:
            text = stripped.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise DecodeError("invalid_utf8", f"JSON is not valid UTF-8 ({exc.reason})") from exc
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as exc:
            raise DecodeError("invalid_json", f"invalid JSON: {exc.msg} at {exc.pos}") from exc
        return event_from_json(obj)
    raise DecodeError(
        "bad_framing",
        f"unknown wire format (first byte 0x{data[0]:02x}; expected C3 01, 00 or a JSON object)",
    )


def _validated(record: dict[str, Any]) -> Event:
    """Checks the schema cannot express (an id present, a sane time)."""
    event = Event.from_record(record)
    return event_from_json(event.to_record())
