"""JSON events in Segment or schema field names normalize to the same Event."""

from __future__ import annotations

import pytest

from pipeline.contract.avro import decode_single_object, load_schema
from pipeline.contract.wire import decode_event, encode_event
from pipeline.core.events import canonical_event_name, event_from_json, parse_timestamp_ms
from pipeline.errors import DecodeError

SEGMENT = {
    "messageId": "m-1",
    "type": "track",
    "event": "Checkout Started",
    "anonymousId": "anon-1",
    "userId": "user-1",
    "timestamp": "2026-11-20T21:03:00.250Z",
    "properties": {"value": 89.5, "products": [{"product_id": "p1", "price": 89.5}]},
    "context": {
        "page": {"url": "https://shop.example/checkout", "path": "/checkout"},
        "campaign": {"source": "newsletter", "medium": "email"},
        "timezone": "Europe/Paris",
        "userAgent": "Mozilla/5.0",
        "library": {"name": "analytics.js", "version": "4.1"},
    },
}

SCHEMA_NAMES = {
    "message_id": "m-1",
    "type": "track",
    "event": "checkout_started",
    "anonymous_id": "anon-1",
    "user_id": "user-1",
    "timestamp_ms": 1_795_208_580_250,
    "properties": {"value": 89.5, "products": [{"product_id": "p1", "price": 89.5}]},
    "context": {
        "page_url": "https://shop.example/checkout",
        "page_path": "/checkout",
        "campaign_source": "newsletter",
        "campaign_medium": "email",
        "timezone": "Europe/Paris",
        "user_agent": "Mozilla/5.0",
        "extra": {"library.name": "analytics.js", "library.version": "4.1"},
    },
}


def test_segment_and_schema_names_give_the_same_event() -> None:
    assert event_from_json(SEGMENT) == event_from_json(SCHEMA_NAMES)


@pytest.mark.parametrize(
    ("name", "canonical"),
    [
        ("Checkout Started", "checkout_started"),
        ("checkout_started", "checkout_started"),
        ("checkout-started", "checkout_started"),
        ("CheckoutStarted", "checkout_started"),
        ("  Order  Completed ", "order_completed"),
        ("product.viewed", "product_viewed"),
    ],
)
def test_event_names_match_case_and_separator_insensitively(name: str, canonical: str) -> None:
    assert canonical_event_name(name) == canonical


@pytest.mark.parametrize(
    ("value", "ms"),
    [
        (1_795_208_580_250, 1_795_208_580_250),
        ("1795208580250", 1_795_208_580_250),
        ("2026-11-20T21:03:00.250Z", 1_795_208_580_250),
        ("2026-11-20T22:03:00.250+01:00", 1_795_208_580_250),
    ],
)
def test_timestamps(value: object, ms: int) -> None:
    assert parse_timestamp_ms(value) == ms


@pytest.mark.parametrize(
    ("patch", "reason"),
    [
        ({"anonymousId": None, "userId": None}, "missing_id"),
        ({"timestamp": None}, "missing_timestamp"),
        ({"timestamp": 1_795_208_580}, "absurd_timestamp"),  # seconds, not ms
        ({"timestamp": "2026-11-20T21:03:00"}, "bad_timestamp"),  # no zone
        ({"timestamp": True}, "bad_timestamp"),
        ({"type": "click"}, "bad_type"),
        ({"event": None}, "missing_event_name"),
        ({"event": 42}, "wrong_type"),
        ({"messageId": None}, "missing_message_id"),
        ({"properties": [1, 2]}, "wrong_type"),
        ({"properties": {"a": {"b": {"c": 1}}}}, "wrong_type"),
        ({"userId": {"id": 1}}, "wrong_type"),
    ],
)
def test_invalid_events_name_what_is_wrong(patch: dict[str, object], reason: str) -> None:
    obj = {**SEGMENT, **patch}
    obj = {k: v for k, v in obj.items() if v is not None}
    with pytest.raises(DecodeError) as info:
        event_from_json(obj)
    assert info.value.reason == reason
    assert str(info.value)


def test_avro_round_trip_is_lossless() -> None:
    event = event_from_json(SEGMENT)
    data = encode_event(event)
    assert data[:2] == b"\xc3\x01"
    assert data[2:10] == load_schema("event").fingerprint.to_bytes(8, "little")
    assert decode_event(data) == event
    assert decode_single_object(data, "event") == event.to_record()


def test_json_on_the_wire_is_accepted() -> None:
    import json

    assert decode_event(json.dumps(SEGMENT).encode()) == event_from_json(SEGMENT)
