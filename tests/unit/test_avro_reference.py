"""Pulse's Avro against Apache's reference implementation (the ``avro`` package).

For every schema in ``schemas/`` and every older version in ``schemas/history/``:

* the reference implementation's fingerprint (CRC-64-AVRO of the Parsing
  Canonical Form) is Pulse's, so single-object headers name the same schema;
* records the reference implementation writes decode in Pulse (fastavro, and
  for the event envelope Pulse's own reader in ``pipeline/core/avrobody.py``)
  to what the reference implementation itself reads back, older versions
  resolved to the current schema the same way;
* records Pulse writes decode in the reference implementation to the record
  written, and an older version resolves to the current schema in both alike.

Records are generated from each schema (seeded), every optional field present
in some and absent in others.
"""

from __future__ import annotations

import io
import json
import random
from pathlib import Path
from typing import Any

import avro.io
import avro.schema
import pytest

from pipeline.contract.avro import (
    SCHEMA_DIR,
    decode_single_object,
    encode_body,
    encode_single_object,
    load_schema,
    parse_schema,
)
from pipeline.contract.wire import decode_event, encode_event
from pipeline.core.avrobody import FINGERPRINT, read_event_body
from pipeline.core.events import Event

RECORDS_PER_SCHEMA = 60
CURRENT = sorted(p.stem for p in SCHEMA_DIR.glob("*.avsc"))
HISTORY = sorted(SCHEMA_DIR.glob("history/*.avsc"))
#: (name, path of the version): every schema, every version.
VERSIONS = [(n, SCHEMA_DIR / f"{n}.avsc") for n in CURRENT] + [
    (p.name.split(".")[0], p) for p in HISTORY
]
EVENT_JSON = json.loads((SCHEMA_DIR / "event.avsc").read_text())


def raw_of(path: Path) -> Any:
    """The schema's JSON, the event envelope inlined where named (as Pulse loads it)."""
    raw = json.loads(path.read_text())
    return raw if path.stem.startswith("event") else _inline(raw)


def _inline(raw: Any) -> Any:
    if raw == "dev.pulse.Event":
        return EVENT_JSON
    if isinstance(raw, list):
        return [_inline(x) for x in raw]
    if isinstance(raw, dict):
        return {
            k: _inline(v) if k in ("type", "items", "values", "fields") else v
            for k, v in raw.items()
        }
    return raw


def reference(raw: Any) -> avro.schema.Schema:
    return avro.schema.parse(json.dumps(raw))


def ref_write(schema: avro.schema.Schema, record: Any) -> bytes:
    buf = io.BytesIO()
    avro.io.DatumWriter(schema).write(record, avro.io.BinaryEncoder(buf))
    return buf.getvalue()


def ref_read(body: bytes, writer: avro.schema.Schema, reader: avro.schema.Schema) -> Any:
    decoder = avro.io.BinaryDecoder(io.BytesIO(body))
    return avro.io.DatumReader(writer, reader).read(decoder)


def header(schema: avro.schema.Schema) -> bytes:
    return b"\xc3\x01" + schema.fingerprint("CRC-64-AVRO")


# -- records from a schema ------------------------------------------------------------


def value_of(t: Any, rng: random.Random, depth: int = 0) -> Any:
    if isinstance(t, list):  # a union: null in about a third of them
        branches = [b for b in t if b != "null"] if depth > 3 else t
        return value_of(rng.choice(branches), rng, depth + 1)
    if isinstance(t, dict):
        kind = t["type"]
        if kind == "record":
            return {f["name"]: value_of(f["type"], rng, depth + 1) for f in t["fields"]}
        if kind == "array":
            return [value_of(t["items"], rng, depth + 1) for _ in range(rng.randint(0, 3))]
        if kind == "map":
            n = rng.randint(0, 3)
            return {_text(rng): value_of(t["values"], rng, depth + 1) for _ in range(n)}
        return value_of(kind, rng, depth)
    return _primitive(t, rng)


def _primitive(t: str, rng: random.Random) -> Any:
    if t == "null":
        return None
    if t == "boolean":
        return rng.random() < 0.5
    if t == "long":
        return rng.choice([0, -1, 1, 2**31, -(2**63), 2**63 - 1, rng.randint(-(10**13), 10**13)])
    if t == "int":
        return rng.choice([0, -1, 99, 2**31 - 1, -(2**31), rng.randint(-1000, 1000)])
    if t == "double":
        return rng.choice([0.0, -0.5, 1e-300, 1.5e300, rng.uniform(-1e6, 1e6)])
    if t == "string":
        return _text(rng)
    raise AssertionError(f"no generator for Avro type {t!r} (add one)")


def _text(rng: random.Random) -> str:
    alphabet = "abcXYZ09 _-é€😀\u0000"
    return "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 12)))


def records(raw: Any, seed: str) -> list[Any]:
    rng = random.Random(seed)
    return [value_of(raw, rng) for _ in range(RECORDS_PER_SCHEMA)]


# -- the tests ----------------------------------------------------------------------------


def test_every_schema_and_version_is_covered() -> None:
    assert {"event", "trigger", "late_event"} <= set(CURRENT)
    assert {p.name for p in HISTORY} >= {"event.v1.avsc", "late_event.v1.avsc"}
    assert len(VERSIONS) == len(CURRENT) + len(HISTORY)


@pytest.mark.parametrize(("name", "path"), VERSIONS, ids=lambda v: getattr(v, "name", v))
def test_same_fingerprint(name: str, path: Path) -> None:
    ours = parse_schema(raw_of(path), path.stem)
    theirs = reference(raw_of(path))
    assert ours.header == header(theirs)


@pytest.mark.parametrize(("name", "path"), VERSIONS, ids=lambda v: getattr(v, "name", v))
def test_reference_records_decode_in_pulse(name: str, path: Path) -> None:
    writer = reference(raw_of(path))
    current = reference(raw_of(SCHEMA_DIR / f"{name}.avsc"))
    for record in records(raw_of(path), path.name):
        body = ref_write(writer, record)
        expected = ref_read(body, writer, current)
        data = header(writer) + body
        assert decode_single_object(data, name) == expected
        if name == "event" and path.parent == SCHEMA_DIR:
            assert load_schema("event").fingerprint == FINGERPRINT
            assert read_event_body(data, 10) == expected  # the core's own reader


@pytest.mark.parametrize(("name", "path"), VERSIONS, ids=lambda v: getattr(v, "name", v))
def test_pulse_records_decode_in_the_reference(name: str, path: Path) -> None:
    ours = parse_schema(raw_of(path), path.stem)
    writer = reference(raw_of(path))
    current = reference(raw_of(SCHEMA_DIR / f"{name}.avsc"))
    for record in records(raw_of(path), "pulse-" + path.name):
        data = encode_single_object(ours, record)
        assert data[:10] == header(writer)
        assert data[10:] == encode_body(ours, record)
        assert ref_read(data[10:], writer, writer) == record
        # an older version resolved to the current schema: the same in both
        assert ref_read(data[10:], writer, current) == decode_single_object(data, name)


def test_an_event_round_trips_through_the_wire_format() -> None:
    event = Event(
        message_id="m-1",
        type="track",
        event="order_completed",
        anonymous_id="a-1",
        user_id="u-1",
        timestamp_ms=1_790_000_000_000,
        properties={"revenue": 12.5, "items": ["x", "y"]},
        context={"channel": "web", "timezone": "Europe/Paris"},
    )
    data = encode_event(event)
    writer = reference(EVENT_JSON)
    written = ref_read(data[10:], writer, writer)
    assert written["message_id"] == "m-1"
    assert decode_event(header(writer) + ref_write(writer, written)) == decode_event(data)
