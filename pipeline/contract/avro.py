"""Avro on the wire: the schemas in ``schemas/`` and the single-object encoding.

Pulse's registry-free default framing is the Avro specification's *single
object encoding*::

    C3 01 | 8-byte little-endian CRC-64-AVRO fingerprint of the writer schema's
          | Parsing Canonical Form | Avro binary body

A reader looks the fingerprint up among the schemas it knows (every version in
``schemas/``) and resolves the writer schema against its own reader schema, so
additive schema changes work in both directions.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import fastavro
from fastavro.read import SchemaResolutionError
from fastavro.schema import to_parsing_canonical_form

from pipeline.errors import DecodeError

SCHEMA_DIR = Path(__file__).resolve().parents[2] / "schemas"
SINGLE_OBJECT_MAGIC = b"\xc3\x01"

_EMPTY = 0xC15D213AA4D7A795
_HINTED: dict[tuple[str, int], Any] = {}  # the spec's fingerprint "empty" constant


@cache
def _crc_table() -> tuple[int, ...]:
    table = []
    for i in range(256):
        fp = i
        for _ in range(8):
            fp = (fp >> 1) ^ (_EMPTY & -(fp & 1))
        table.append(fp)
    return tuple(table)


def crc64_avro(data: bytes) -> int:
    """The Rabin CRC-64 fingerprint the Avro specification defines (``CRC-64-AVRO``)."""
    table = _crc_table()
    fp = _EMPTY
    for byte in data:
        fp = (fp >> 8) ^ table[(fp ^ byte) & 0xFF]
    return fp


@dataclass(frozen=True)
class Schema:
    """A parsed Avro schema with its canonical form and fingerprint."""

    name: str
    parsed: Any
    canonical: str
    fingerprint: int

    @property
    def header(self) -> bytes:
        """The 10-byte single-object header for this schema."""
        return SINGLE_OBJECT_MAGIC + self.fingerprint.to_bytes(8, "little")


def parse_schema(raw: dict[str, Any], name: str) -> Schema:
    parsed = fastavro.parse_schema(raw, _write_hint=False)
    canonical = to_parsing_canonical_form(raw)
    return Schema(name, parsed, canonical, crc64_avro(canonical.encode()))


def _inline(raw: Any, named: dict[str, Any]) -> Any:
    """Replace references to other files' named types by their definitions."""
    if isinstance(raw, str):
        return named.get(raw, raw)
    if isinstance(raw, list):
        return [_inline(item, named) for item in raw]
    if isinstance(raw, dict):
        return {
            k: _inline(v, named) if k in ("type", "items", "values", "fields") else v
            for k, v in raw.items()
        }
    return raw


@cache
def load_schema(name: str) -> Schema:
    """``load_schema("event")`` reads ``schemas/event.avsc``.

    A schema may refer to the event envelope by its full name
    (``"dev.pulse.Event"``); the reference is inlined so each file's canonical
    form and fingerprint stand alone.
    """
    raw = json.loads((SCHEMA_DIR / f"{name}.avsc").read_text())
    if name != "event":
        raw = _inline(raw, {"dev.pulse.Event": json.loads((SCHEMA_DIR / "event.avsc").read_text())})
    return parse_schema(raw, name)


@cache
def known_writer_schemas(name: str) -> dict[int, Schema]:
    """Fingerprint -> schema, for every known version of ``schemas/<name>.avsc``.

    Older versions are kept as ``schemas/history/<name>.v<N>.avsc``.
    """
    schemas = [load_schema(name)]
    for path in sorted((SCHEMA_DIR / "history").glob(f"{name}.v*.avsc")):
        schemas.append(parse_schema(json.loads(path.read_text()), path.stem))
    return {s.fingerprint: s for s in schemas}


def encode_body(schema: Schema, record: dict[str, Any]) -> bytes:
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, schema.parsed, record)
    return buf.getvalue()


def encode_single_object(schema: Schema, record: dict[str, Any]) -> bytes:
    """Avro single-object encoding of ``record`` written with ``schema``."""
    return schema.header + encode_body(schema, record)


def hinted(schema: Schema) -> Any:
    """``schema`` parsed by fastavro *with* its parsed-marker, once per schema.

    fastavro re-parses a schema on every ``schemaless_reader`` call unless it
    carries that marker: reusing a marked one makes decoding 2-3x faster.
    """
    # Keyed by name too: the canonical form (and so the fingerprint) ignores
    # defaults, which a reader schema needs.
    key = (schema.name, schema.fingerprint)
    parsed = _HINTED.get(key)
    if parsed is None:
        parsed = _HINTED[key] = fastavro.parse_schema(schema.parsed)
    return parsed


def read_avro_body(data: bytes, offset: int, writer: Schema, reader: Schema) -> Any:
    """Decode the Avro body at ``data[offset:]`` written with ``writer``, as ``reader``."""
    buf = io.BytesIO(data)
    buf.seek(offset)
    same = writer.fingerprint == reader.fingerprint
    try:
        record = fastavro.schemaless_reader(buf, hinted(writer), None if same else hinted(reader))
    except SchemaResolutionError as exc:
        raise DecodeError(
            "incompatible_schema",
            f"writer schema {writer.name} cannot be read as {reader.name}: {exc}",
        ) from exc
    except (EOFError, StopIteration) as exc:
        raise DecodeError("truncated_avro", f"Avro body ended early ({exc!r})") from exc
    except Exception as exc:  # fastavro raises many types on corrupt input
        raise DecodeError("corrupt_avro", f"Avro body does not decode ({exc!r})") from exc
    if buf.tell() != len(data):
        raise DecodeError(
            "corrupt_avro", f"{len(data) - buf.tell()} bytes left over after the Avro record"
        )
    return record


def decode_body(data: bytes, writer: Schema, reader: Schema) -> Any:
    """Decode a whole Avro body written with ``writer``, as ``reader``."""
    return read_avro_body(data, 0, writer, reader)


def decode_single_object(data: bytes, name: str) -> Any:
    """Decode a single-object-encoded record of ``schemas/<name>.avsc`` (any known version)."""
    if len(data) < 10 or not data.startswith(SINGLE_OBJECT_MAGIC):
        raise DecodeError("bad_framing", "not Avro single-object encoding (expected C3 01 header)")
    fingerprint = int.from_bytes(data[2:10], "little")
    writer = known_writer_schemas(name).get(fingerprint)
    if writer is None:
        raise DecodeError(
            "unknown_fingerprint",
            f"schema fingerprint {fingerprint:016x} is not a known version of {name}.avsc",
        )
    return decode_body(data[10:], writer, load_schema(name))
