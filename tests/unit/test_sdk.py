"""The SDK's record building (no broker): validated, keyed, encoded like the ingest expects."""

from __future__ import annotations

import doctest

import pytest

from pipeline import sdk
from pipeline.contract.produce import partition_key
from pipeline.contract.wire import decode_event, encode_event
from pipeline.errors import DecodeError
from pipeline.sdk import build_event

T0 = 1_790_000_000_000


def test_doctests() -> None:
    assert doctest.testmod(sdk).failed == 0


def test_track_is_canonical_and_round_trips() -> None:
    event = build_event(
        "track",
        event="Checkout Started",
        anonymous_id="a1",
        user_id="u1",
        properties={"value": 89.5, "products": [{"product_id": "p"}]},
        context={"page": {"url": "https://x"}},
        timestamp_ms=T0,
        message_id="m1",
    )
    assert event.event == "checkout_started"
    assert event.context["page_url"] == "https://x"
    assert partition_key(event) == b"a1", "a device's events stay on one partition"
    assert decode_event(encode_event(event), registry=None) == event


def test_defaults_fill_id_and_time() -> None:
    a = build_event("identify", user_id="u1", anonymous_id="a1", properties={"email": "e"})
    b = build_event("identify", user_id="u1", anonymous_id="a1")
    assert a.message_id != b.message_id
    assert a.timestamp_ms > T0 - 10**11


def test_alias_and_page() -> None:
    alias = build_event("alias", user_id="u1", previous_id="a1", timestamp_ms=T0)
    assert alias.previous_id == "a1"
    assert decode_event(encode_event(alias), registry=None).previous_id == "a1"
    assert build_event("page", anonymous_id="a1", timestamp_ms=T0).event == "page_viewed"


@pytest.mark.parametrize(
    ("kwargs", "reason"),
    [
        ({"event": "x"}, "missing_id"),
        ({"user_id": "u"}, "missing_event_name"),
        ({"event": "x", "user_id": "u", "timestamp_ms": 1_700_000_000}, "absurd_timestamp"),
        ({"event": "x", "user_id": "u", "properties": {"a": {"b": {"c": 1}}}}, "wrong_type"),
    ],
)
def test_invalid_events_fail_at_the_call(kwargs: dict, reason: str) -> None:  # type: ignore[type-arg]
    with pytest.raises(DecodeError) as info:
        build_event("track", **kwargs)
    assert info.value.reason == reason
