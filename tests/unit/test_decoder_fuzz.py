"""Hypothesis throws random and mutated records at ``decode_event``.

Properties: nothing but :class:`DecodeError` escapes; every refusal carries a
reason from ``pipeline.contract.wire.REASONS``; every valid record (each framing) passes
and round-trips. The number of inputs and the per-reason tally are printed at
the end of the module (the lead reports them).
"""

from __future__ import annotations

import json
import random
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.contract.avro import encode_body, load_schema
from pipeline.contract.registry import RegistryDecoder, frame
from pipeline.contract.wire import REASONS, decode_event, encode_event
from pipeline.core.events import MAX_TIMESTAMP_MS, MIN_TIMESTAMP_MS, Event
from pipeline.errors import DecodeError

TALLY: Counter[str] = Counter()
FUZZ = settings(
    max_examples=1_500, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True
)
SCHEMA_ID = 7
REGISTRY = RegistryDecoder(
    fetch={SCHEMA_ID: json.dumps(json.loads(load_schema("event").canonical))}.__getitem__
)
T0 = 1_790_000_000_000

GOOD_JSON: list[dict[str, Any]] = [
    {
        "messageId": "m-1",
        "type": "track",
        "event": "Checkout Started",
        "anonymousId": "a-1",
        "timestamp": T0,
        "properties": {
            "value": 89.5,
            "currency": "EUR",
            "coupon": "SAVE10",
            "products": [{"product_id": "p1", "price": 89.5}],
        },
        "context": {"page": {"url": "https://shop.example/checkout"}, "timezone": "Europe/Paris"},
    },
    {
        "message_id": "m-2",
        "type": "identify",
        "anonymous_id": "a-1",
        "user_id": "u-1",
        "timestamp_ms": T0 + 1,
        "traits": {"email": "u@example.com", "vip": True},
    },
    {
        "messageId": "m-3",
        "type": "page",
        "userId": "u-2",
        "timestamp": "2026-11-20T21:03:00Z",
        "sentAt": T0 + 5,
        "context": {"campaign": {"source": "newsletter"}, "locale": "fr-FR"},
    },
    {
        "messageId": "m-4",
        "event": "order_completed",
        "userId": 42,
        "timestamp": str(T0),
        "properties": {"revenue": 10, "order_id": "o-1", "tags": ["a", None, 1.5]},
    },
]
GOOD_EVENTS = [decode_event(json.dumps(obj).encode(), registry=None) for obj in GOOD_JSON]
GOOD_AVRO = [encode_event(e) for e in GOOD_EVENTS]
GOOD_REGISTRY = [
    frame(SCHEMA_ID, encode_body(load_schema("event"), e.to_record())) for e in GOOD_EVENTS
]


def check(data: bytes) -> str:
    """Decode ``data``; return "ok" or the reason. Fails on anything but DecodeError."""
    try:
        event = decode_event(data, registry=REGISTRY)
    except DecodeError as err:
        assert err.reason in REASONS, f"undocumented reason {err.reason!r}: {err}"  # noqa: PT017
        assert str(err), "every refusal has a human message"  # noqa: PT017
        TALLY[err.reason] += 1
        return err.reason
    assert isinstance(event, Event)
    assert event.message_id
    assert event.user_id or event.anonymous_id
    assert MIN_TIMESTAMP_MS <= event.timestamp_ms < MAX_TIMESTAMP_MS
    encoded = encode_event(event)  # a good one re-encodes (compared as bytes: NaN != NaN)
    assert encode_event(decode_event(encoded, registry=None)) == encoded
    TALLY["ok"] += 1
    return "ok"


def mutate(data: bytes, rnd: random.Random, n: int) -> Iterator[bytes]:
    """Bit flips, truncations, insertions, deletions and byte overwrites."""
    for _ in range(n):
        buf = bytearray(data)
        op = rnd.randrange(5)
        pos = rnd.randrange(len(buf) + 1)
        if op == 0 and buf:
            i = min(pos, len(buf) - 1)
            buf[i] ^= 1 << rnd.randrange(8)
        elif op == 1:
            del buf[pos:]
        elif op == 2:
            buf[pos:pos] = rnd.randbytes(rnd.randrange(1, 9))
        elif op == 3:
            del buf[pos : pos + rnd.randrange(1, 9)]
        elif buf:
            i = min(pos, len(buf) - 1)
            buf[i] = rnd.choice((0x00, 0x01, 0x7F, 0x80, 0xFF, rnd.randrange(256)))
        yield bytes(buf)


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | st.text(max_size=12),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=8,
)
FIELDS = [
    "messageId",
    "message_id",
    "type",
    "event",
    "anonymousId",
    "userId",
    "user_id",
    "timestamp",
    "timestamp_ms",
    "sentAt",
    "properties",
    "traits",
    "context",
]


@pytest.fixture(scope="module", autouse=True)
def _report(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    total = sum(TALLY.values())
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    lines = [
        f"decoder fuzz: {total} inputs, {TALLY['ok']} accepted, "
        f"{total - TALLY['ok']} refused (would go to the DLQ) by reason:"
    ]
    lines += [f"  {reason:<24} {n}" for reason, n in TALLY.most_common() if reason != "ok"]
    with capture.global_and_fixture_disabled():
        print("\n" + "\n".join(lines))


@pytest.mark.parametrize(
    "data", GOOD_AVRO + GOOD_REGISTRY + [json.dumps(o).encode() for o in GOOD_JSON]
)
def test_every_good_record_passes(data: bytes) -> None:
    assert check(data) == "ok"


@FUZZ
@given(st.binary(max_size=400))
def test_random_bytes(data: bytes) -> None:
    check(data)
    check(b"\xc3\x01" + data)
    check(b"\x00" + data)
    check(b"{" + data)


@FUZZ
@given(st.sampled_from(GOOD_AVRO + GOOD_REGISTRY), st.integers(0, 2**32))
def test_mutated_avro(data: bytes, seed: int) -> None:
    for mutated in mutate(data, random.Random(seed), 12):
        check(mutated)


@FUZZ
@given(st.sampled_from(GOOD_JSON), st.integers(0, 2**32))
def test_mutated_json_text(obj: dict[str, Any], seed: int) -> None:
    for mutated in mutate(json.dumps(obj).encode(), random.Random(seed), 12):
        check(mutated)


@FUZZ
@given(st.sampled_from(GOOD_JSON), st.sampled_from(FIELDS), JSON_VALUES, st.booleans())
def test_json_type_swaps(obj: dict[str, Any], name: str, value: Any, drop: bool) -> None:
    swapped = dict(obj)
    if drop:
        swapped.pop(name, None)
    else:
        swapped[name] = value
    check(json.dumps(swapped).encode())
    # the same swap inside properties and context
    nested = dict(obj, properties={**obj.get("properties", {}), name: value})
    check(json.dumps(nested).encode())
    check(json.dumps(dict(obj, context={name: value})).encode())


def test_known_bad_records_have_their_reasons() -> None:
    cases = {
        b"": "empty",
        b"\xc3\x01" + b"\x00" * 8 + b"\x02": "unknown_fingerprint",
        GOOD_AVRO[0][:-3]: "truncated_avro",
        GOOD_AVRO[0] + b"\x00": "corrupt_avro",
        frame(999, b"\x00"): "unknown_schema_id",
        b"\x00\x00": "bad_framing",
        b"<xml/>": "bad_framing",
        b'{"a": "\xff"}': "invalid_utf8",
        b'{"messageId": "m", "userId": "u", "event": "x", "timestamp": 1, "p": "\\ud800"}': (
            "invalid_utf8"
        ),
        b"{" * 100_000: "invalid_json",
        b'{"messageId":"m","event":"x","timestamp":1790000000000}': "missing_id",
        b'{"messageId":"m","userId":"u","event":"x"}': "missing_timestamp",
        b'{"messageId":"m","userId":"u","event":"x","timestamp":1790000000}': "absurd_timestamp",
        b'{"messageId":"m","userId":"u","event":"x","timestamp":1e999}': "absurd_timestamp",
        b'{"messageId":"m","userId":"u","event":"x","timestamp":"\xc2\xb2"}': "bad_timestamp",
        b'{"messageId":"m","userId":"u","event":7,"timestamp":1790000000000}': "wrong_type",
        b'{"userId":"u","event":"x","timestamp":1790000000000}': "missing_message_id",
        b"{" + b" " * 600_000 + b"}": "oversized",
    }
    for data, reason in cases.items():
        assert check(data) == reason, data[:80]
    assert decode_event_no_registry(b"\x00\x00\x00\x00\x07\x00") == "registry_not_configured"


def decode_event_no_registry(data: bytes) -> str:
    try:
        decode_event(data, registry=None)
    except DecodeError as err:
        return err.reason
    return "ok"
