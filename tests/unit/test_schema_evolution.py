"""Schema evolution: additive changes only, readable in both directions.

Rules (docs/events.md): a new version may only add fields that are optional
(a union with null first) and carry a default; nothing is removed, renamed or
retyped. The previous versions stay in ``schemas/history/<name>.vN.avsc`` so a
worker recognizes their fingerprints.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipeline.contract.avro import (
    SCHEMA_DIR,
    decode_body,
    decode_single_object,
    encode_body,
    encode_single_object,
    known_writer_schemas,
    load_schema,
    parse_schema,
)
from pipeline.contract.wire import decode_event, encode_event
from pipeline.core.events import Event

T0 = 1_790_000_000_000
HISTORY = sorted((SCHEMA_DIR / "history").glob("event.v*.avsc"))
EVENT = Event(
    message_id="m-1",
    type="alias",
    event=None,
    anonymous_id="a-1",
    user_id="u-1",
    timestamp_ms=T0,
    properties={"value": 1.5, "tags": ["x"]},
    context={"channel": "web", "timezone": "Europe/Paris"},
    previous_id="a-1",
)


def fields(raw: dict) -> dict[str, dict]:  # type: ignore[type-arg]
    return {f["name"]: f for f in raw["fields"]}


@pytest.mark.parametrize("old_path", HISTORY, ids=lambda p: p.name)
def test_each_change_is_additive(old_path: Path) -> None:
    old = fields(json.loads(old_path.read_text()))
    new = fields(json.loads((SCHEMA_DIR / "event.avsc").read_text()))
    for name, field in old.items():
        assert name in new, f"{name} was removed"
        assert new[name]["type"] == field["type"], f"{name} changed type"
    for name in set(new) - set(old):
        assert "default" in new[name], f"new field {name} needs a default"
        assert new[name]["type"][0] == "null", f"new field {name} must be optional"


@pytest.mark.parametrize("old_path", HISTORY, ids=lambda p: p.name)
def test_new_reader_accepts_old_writer(old_path: Path) -> None:
    old = parse_schema(json.loads(old_path.read_text()), old_path.stem)
    assert old.fingerprint in known_writer_schemas("event")
    old_fields = fields(json.loads(old_path.read_text()))
    record = {k: v for k, v in EVENT.to_record().items() if k in old_fields}
    data = encode_single_object(old, record)
    assert data[:2] == b"\xc3\x01"
    assert data[2:10] == old.fingerprint.to_bytes(8, "little")
    decoded = decode_event(data, registry=None)
    assert decoded.message_id == "m-1"
    assert decoded.previous_id is None  # the new field's default
    assert decoded.properties == EVENT.properties


@pytest.mark.parametrize("old_path", HISTORY, ids=lambda p: p.name)
def test_old_reader_accepts_new_writer(old_path: Path) -> None:
    old = parse_schema(json.loads(old_path.read_text()), old_path.stem)
    new_bytes = encode_event(EVENT)
    body = new_bytes[10:]
    record = decode_body(body, load_schema("event"), old)  # an old worker reads a new record
    assert record["user_id"] == "u-1"
    assert "previous_id" not in record
    assert record["context"]["timezone"] == "Europe/Paris"


def test_a_future_additive_version_reads_both_ways() -> None:
    raw = json.loads((SCHEMA_DIR / "event.avsc").read_text())
    raw["fields"].append({"name": "consent", "type": ["null", "string"], "default": None})
    future = parse_schema(raw, "event.future")
    current = load_schema("event")
    body = encode_body(future, {**EVENT.to_record(), "consent": "granted"})
    assert decode_body(body, future, current)["previous_id"] == "a-1"
    back = decode_body(encode_body(current, EVENT.to_record()), current, future)
    assert back["consent"] is None


def test_round_trip_of_current_schema() -> None:
    assert decode_single_object(encode_event(EVENT), "event")["previous_id"] == "a-1"
    assert decode_event(encode_event(EVENT), registry=None) == EVENT
