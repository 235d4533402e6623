"""Decoding records from ``pulse.events``: three wire formats, detected per record.

=====================  ===============================  ===========================
first bytes            format                           resolved by
=====================  ===============================  ===========================
``C3 01``              Avro single-object encoding      fingerprint -> ``schemas/``
``00`` + 4-byte id     Confluent Schema Registry        the configured registry
``{`` (after spaces)   JSON (Segment or schema names)   validated like Avro input
=====================  ===============================  ===========================

Every failure is a :class:`~pipeline.errors.DecodeError` whose ``reason`` is a
stable code for the dead-letter topic, one of :data:`REASONS`.

Registry framing is decoded through ``registry`` when given, else through the
registry at ``PULSE_SCHEMA_REGISTRY_URL`` when that is set (built once, its
schemas cached by id; see :mod:`pipeline.contract.registry`).
"""

from __future__ import annotations

import io
import json
import os
import re
from collections.abc import Callable
from functools import cache
from typing import Any, Final

import fastavro

from pipeline.contract.avro import (
    SINGLE_OBJECT_MAGIC,
    hinted,
    known_writer_schemas,
    load_schema,
    read_avro_body,
)
from pipeline.core.avrobody import FINGERPRINT, BodyError, read_event_body
from pipeline.core.events import (
    EVENT_TYPES,
    MAX_TIMESTAMP_MS,
    MIN_TIMESTAMP_MS,
    Event,
    canonical_event_name,
    event_from_json,
)
from pipeline.errors import DecodeError

#: Records larger than this go to the DLQ unread (reason ``oversized``).
MAX_EVENT_BYTES = 512 * 1024

#: A Schema Registry decoder: ``(framed bytes) -> record dict``; raises DecodeError.
RegistryDecoder = Callable[[bytes], dict[str, Any]]

#: Every reason a record can be refused with, and what it means. The DLQ's
#: ``pulse-dlq-reason`` header is one of these (or ``processing_error``, when
#: the worker itself failed on a record).
REASONS: Final[dict[str, str]] = {
    "empty": "the record has no value (null or zero bytes)",
    "oversized": f"the value is larger than {MAX_EVENT_BYTES} bytes",
    "bad_framing": "not C3 01 (single-object), 00 (registry) or a JSON object",
    "unknown_fingerprint": "single-object record whose schema fingerprint is not in schemas/",
    "registry_not_configured": "registry framing (00) but no PULSE_SCHEMA_REGISTRY_URL",
    "unknown_schema_id": "registry framing with a schema id the registry does not know",
    "registry_unavailable": "the Schema Registry could not be reached (replay after a fix)",
    "incompatible_schema": "the writer schema cannot be read as an event (schemas/event.avsc)",
    "truncated_avro": "the Avro body ends before the record does",
    "corrupt_avro": "the Avro body does not decode with its writer schema, or has bytes left",
    "invalid_utf8": "JSON that is not valid UTF-8 (or escapes a lone surrogate)",
    "invalid_json": "not parseable JSON (or nested absurdly deep)",
    "wrong_type": "a field of the wrong type (an event that is not an object, a numeric name...)",
    "bad_type": "type is not one of track, identify, page, screen, alias, group",
    "missing_message_id": "no messageId / message_id",
    "missing_id": "neither userId nor anonymousId",
    "missing_event_name": "a track event without an event name",
    "missing_timestamp": "no timestamp / timestamp_ms",
    "bad_timestamp": "a timestamp that is neither epoch ms nor ISO-8601 with a zone",
    "absurd_timestamp": "a timestamp outside 2000-2100 (seconds sent as ms, or the reverse)",
}

# A JSON escape of a UTF-16 surrogate: legal JSON, but only valid text in pairs.
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")

_FROM_ENV: Final = object()


def encode_event(event: Event) -> bytes:
    """Pulse's default framing for an event: Avro single-object encoding."""
    schema = load_schema("event")
    buf = io.BytesIO()
    buf.write(schema.header)
    fastavro.schemaless_writer(buf, hinted(schema), event.to_record())
    return buf.getvalue()


@cache
def registry_from_env() -> RegistryDecoder | None:
    """The decoder for ``PULSE_SCHEMA_REGISTRY_URL`` (read once), or None when unset."""
    url = os.environ.get("PULSE_SCHEMA_REGISTRY_URL", "").strip()
    if not url:
        return None
    from pipeline.contract.registry import RegistryDecoder as Decoder

    return Decoder(url)


def decode_event(
    data: bytes | None, registry: RegistryDecoder | object | None = _FROM_ENV
) -> Event:
    """Detect the wire format of ``data`` and return the validated event.

    ``registry`` decodes registry-framed records; by default the one configured
    by ``PULSE_SCHEMA_REGISTRY_URL``; ``None`` means no registry. Raises only
    :class:`DecodeError`, whose reason is one of :data:`REASONS`.
    """
    if registry is _FROM_ENV:
        registry = registry_from_env()
    if data is None or len(data) == 0:
        raise DecodeError("empty", "the record has no value")
    if len(data) > MAX_EVENT_BYTES:
        raise DecodeError(
            "oversized", f"{len(data)} bytes is over the {MAX_EVENT_BYTES}-byte limit"
        )
    if data.startswith(SINGLE_OBJECT_MAGIC):
        return _validated(_decode_single_object(data))
    if data[0] == 0:
        if registry is None:
            raise DecodeError(
                "registry_not_configured",
                "Schema Registry framing (magic byte 0) but no registry URL is configured",
            )
        assert callable(registry)
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
        except (ValueError, RecursionError) as exc:  # 5000-digit numbers, [[[[...]]]]
            raise DecodeError("invalid_json", f"invalid JSON: {exc}"[:200]) from exc
        if _SURROGATE_ESCAPE.search(stripped):
            try:
                json.dumps(obj, ensure_ascii=False).encode("utf-8")
            except UnicodeEncodeError as exc:
                raise DecodeError("invalid_utf8", "JSON escapes a lone UTF-16 surrogate") from exc
        return event_from_json(obj)
    raise DecodeError(
        "bad_framing",
        f"unknown wire format (first byte 0x{data[0]:02x}; expected C3 01, 00 or a JSON object)",
    )


def _read_current(data: bytes) -> dict[str, Any]:
    """The body of a record of the current event schema (its 10-byte header checked).

    Read by Pulse's own reader (``pipeline/core/avrobody.py``, ~4x faster than
    fastavro when the core is compiled) while the schema is the one it was
    written for; else by fastavro.
    """
    current = load_schema("event")
    if current.fingerprint != FINGERPRINT:
        record: dict[str, Any] = read_avro_body(data, 10, current, current)
        return record
    try:
        return read_event_body(data, 10)
    except BodyError as exc:
        if exc.truncated:
            raise DecodeError("truncated_avro", f"Avro body ended early ({exc})") from exc
        raise DecodeError("corrupt_avro", f"Avro body does not decode ({exc})") from exc
    except UnicodeDecodeError as exc:
        raise DecodeError("corrupt_avro", f"Avro body does not decode ({exc!r})") from exc


def _decode_single_object(data: bytes) -> Any:
    if len(data) < 10:
        raise DecodeError("bad_framing", "not Avro single-object encoding (header cut short)")
    fingerprint = int.from_bytes(data[2:10], "little")
    writer = known_writer_schemas("event").get(fingerprint)
    if writer is None:
        raise DecodeError(
            "unknown_fingerprint",
            f"schema fingerprint {fingerprint:016x} is not a known version of event.avsc",
        )
    if writer.fingerprint == load_schema("event").fingerprint:
        return _read_current(data)
    return read_avro_body(data, 10, writer, load_schema("event"))


def decode_for_forwarding(
    data: bytes | None, registry: RegistryDecoder | object | None = _FROM_ENV
) -> tuple[Event, bytes]:
    """Validate like :func:`decode_event` and return the bytes to forward downstream.

    When ``data`` already is a single-object record of the current event schema
    whose content validation left unchanged (canonical name, ...), those very
    bytes are returned, which saves an Avro encode per event on ingest.
    """
    current = load_schema("event")
    if data is not None and data.startswith(current.header) and len(data) <= MAX_EVENT_BYTES:
        record = _read_current(data)
        event = _validated(record)
        if event.to_record() == record:
            return event, data
        return event, encode_event(event)
    event = decode_event(data, registry)
    return event, encode_event(event)


def decode_for_processing(
    data: bytes | None, registry: RegistryDecoder | object | None = _FROM_ENV
) -> tuple[Event, bytes | None]:
    """Validate like :func:`decode_event`; also ``data`` itself if it can be forwarded as is.

    The second item is ``data`` when it already is a single-object record of
    the current event schema that validation left unchanged, else None: the
    caller encodes the event (:func:`encode_event`) only if it forwards it.
    Most events are processed where they land and are never encoded again.
    """
    current = load_schema("event")
    if data is not None and data.startswith(current.header) and len(data) <= MAX_EVENT_BYTES:
        record = _read_current(data)
        event = _already_valid(record)
        if event is not None:
            return event, data
        event = _validated(record)
        return event, (data if event.to_record() == record else None)
    return decode_event(data, registry), None


_CANONICAL: dict[str, bool] = {}


def _canonical(name: str) -> bool:
    known = _CANONICAL.get(name)
    if known is None:
        known = canonical_event_name(name) == name
        if len(_CANONICAL) < 100_000:
            _CANONICAL[name] = known
    return known


def _in_range(ms: int | None) -> bool:
    return ms is None or MIN_TIMESTAMP_MS <= ms < MAX_TIMESTAMP_MS


def _already_valid(record: dict[str, Any]) -> Event | None:
    """The event of a current-schema record that needs no fixing, else None.

    The schema already guarantees the types (ids are strings, times are longs,
    properties hold scalars, flat maps and lists of those); what is left is what
    :func:`event_from_json` checks beyond types. Anything it would change or
    refuse (an empty id, a name to canonicalize, a missing name, a time out of
    range) returns None, and the caller takes the full validator, which says
    what is wrong. Equivalence with it is a unit test.
    """
    name = record["event"]
    ids = (record["anonymous_id"], record["user_id"], record["previous_id"], record["group_id"])
    if (
        not record["message_id"]
        or "" in ids
        or (ids[0] is None and ids[1] is None)
        or record["type"] not in EVENT_TYPES
        or (name is None and record["type"] in _NAMED_TYPES)
        or (name is not None and (not name or not _canonical(name)))
        or not MIN_TIMESTAMP_MS <= record["timestamp_ms"] < MAX_TIMESTAMP_MS
        or not _in_range(record["sent_at_ms"])
        or not _in_range(record["received_at_ms"])
    ):
        return None
    return Event.from_record(record)


#: Types whose events always have a name (track needs one; page/screen get a default).
_NAMED_TYPES = frozenset({"track", "page", "screen"})


def decode_trusted(data: bytes) -> Event:
    """Decode a record Pulse itself wrote with the current event schema (no validation).

    For ``pulse.events.by-person``, whose records ingest validated already.
    """
    current = load_schema("event")
    if not data.startswith(current.header):
        return decode_event(data)
    return Event.from_record(_read_current(data))


def _validated(record: dict[str, Any]) -> Event:
    """Checks the schema cannot express (an id present, a sane time, a canonical name).

    An Avro record uses the schema's field names, which the JSON validator
    accepts as they are.
    """
    return event_from_json(record)
