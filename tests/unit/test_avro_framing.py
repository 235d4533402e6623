"""Both Avro framings, byte for byte against their specifications.

* Avro single-object encoding: ``C3 01`` + the 8-byte little-endian CRC-64-AVRO
  fingerprint of the schema's Parsing Canonical Form + the binary body.
* Confluent Schema Registry framing: ``00`` + 4-byte big-endian schema id + body.
"""

from __future__ import annotations

import io

import fastavro
import pytest
from fastavro.schema import fingerprint, to_parsing_canonical_form

from pipeline.contract.avro import crc64_avro, encode_single_object, load_schema, parse_schema
from pipeline.contract.registry import RegistryDecoder, frame
from pipeline.contract.wire import decode_event, encode_event
from pipeline.core.events import Event

# From apache/avro share/test/data/schema-tests.txt (cases 000, 004): the
# spec's CRC-64-AVRO test vectors for primitive schemas.
SPEC_VECTORS = {'"null"': 7195948357588979594, '"int"': 8247732601305521295}


@pytest.mark.parametrize(("canonical", "expected"), SPEC_VECTORS.items())
def test_crc64_avro_matches_the_spec_vectors(canonical: str, expected: int) -> None:
    assert crc64_avro(canonical.encode()) == expected
    # fastavro prints the fingerprint as the little-endian bytes in hex
    assert fingerprint(canonical, "CRC-64-AVRO") == expected.to_bytes(8, "little").hex()


def test_single_object_int_byte_for_byte() -> None:
    schema = parse_schema("int", "int")  # type: ignore[arg-type]
    # 42 zig-zag encoded is 84 = 0x54
    assert encode_single_object(schema, 42) == bytes.fromhex("c3018f5c393f1ad5757254")  # type: ignore[arg-type]


def test_single_object_event_header() -> None:
    schema = load_schema("event")
    canonical = to_parsing_canonical_form(schema.parsed)
    assert canonical == schema.canonical
    assert fingerprint(canonical, "CRC-64-AVRO") == schema.header[2:].hex()
    event = Event(
        message_id="m", type="track", event="x", user_id="u", timestamp_ms=1_790_000_000_000
    )
    data = encode_event(event)
    assert data[:2] == b"\xc3\x01"
    assert data[2:10] == schema.fingerprint.to_bytes(8, "little")
    body = io.BytesIO()
    fastavro.schemaless_writer(body, schema.parsed, event.to_record())
    assert data[10:] == body.getvalue()


def test_registry_framing_byte_for_byte() -> None:
    schema = load_schema("event")
    event = Event(
        message_id="m", type="track", event="x", user_id="u", timestamp_ms=1_790_000_000_000
    )
    body = encode_event(event)[10:]
    framed = frame(258, body)
    assert framed[:5] == b"\x00\x00\x00\x01\x02"
    assert framed[5:] == body
    asked: list[int] = []

    def fetch(schema_id: int) -> str:
        asked.append(schema_id)
        return schema.canonical

    decoder = RegistryDecoder(fetch=fetch)
    assert decode_event(framed, registry=decoder) == event
    assert decode_event(framed, registry=decoder) == event
    assert asked == [258], "the writer schema is fetched once per id, then cached"
