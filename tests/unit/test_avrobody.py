"""Pulse's reader of the event schema's Avro body gives what fastavro gives.

Random records of ``schemas/event.avsc`` written by fastavro read back the
same through :func:`read_event_body` (values and types); blocks with negative
counts too; every record cut short is refused as truncated; and random byte
flips are either read as fastavro reads them or refused.
"""

from __future__ import annotations

import io
import math
from typing import Any

import fastavro
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.contract.avro import hinted, load_schema
from pipeline.core.avrobody import FINGERPRINT, BodyError, read_event_body

SCHEMA = load_schema("event")
PARSED = hinted(SCHEMA)
CHECK = settings(
    max_examples=400, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True
)

text = st.text(max_size=12)
scalar = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=False),
    text,
)
flat = st.dictionaries(text, scalar, max_size=4)
value = st.one_of(scalar, st.lists(st.one_of(scalar, flat), max_size=4), flat)
opt_text = st.one_of(st.none(), text)
opt_long = st.one_of(st.none(), st.integers(min_value=-(2**63), max_value=2**63 - 1))


@st.composite
def records(draw: Any) -> dict[str, Any]:
    context: dict[str, Any] = {
        f["name"]: draw(opt_text) for f in SCHEMA.parsed["fields"][9]["type"]["fields"][:-1]
    }
    context["extra"] = draw(st.dictionaries(text, text, max_size=3))
    return {
        "message_id": draw(text),
        "type": draw(text),
        "event": draw(opt_text),
        "anonymous_id": draw(opt_text),
        "user_id": draw(opt_text),
        "timestamp_ms": draw(st.integers(min_value=-(2**63), max_value=2**63 - 1)),
        "sent_at_ms": draw(opt_long),
        "received_at_ms": draw(opt_long),
        "properties": draw(st.dictionaries(text, value, max_size=5)),
        "context": context,
        "previous_id": draw(opt_text),
        "group_id": draw(opt_text),
    }


def body(record: dict[str, Any]) -> bytes:
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, PARSED, record)
    return buf.getvalue()


def fastavro_read(data: bytes) -> Any:
    return fastavro.schemaless_reader(io.BytesIO(data), PARSED, None)


def same(a: Any, b: Any) -> bool:
    """Equal, with the same types all the way down (True is not 1, 1.0 is not 1)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float) and math.isnan(a):
        return math.isnan(b)
    return bool(a == b)


def test_the_reader_is_for_the_current_schema() -> None:
    # a change to schemas/event.avsc must come with a change to the reader
    assert SCHEMA.fingerprint == FINGERPRINT


@CHECK
@given(records())
def test_records_read_as_fastavro_reads_them(record: dict[str, Any]) -> None:
    data = b"HEADER" + body(record)
    assert same(read_event_body(data, 6), fastavro_read(data[6:]))


def test_blocks_with_negative_counts_and_their_sizes() -> None:
    # fastavro never writes them; other writers may: count -n, then the size in bytes
    record = {
        "message_id": "m",
        "type": "track",
        "timestamp_ms": 1,
        "properties": {"a": 1, "b": [1, "x"]},
        "context": {"extra": {"k": "v"}},
    }
    plain = body(record)

    def zigzag(n: int) -> bytes:
        z = (n << 1) ^ (n >> 63)
        out = bytearray()
        while z >= 0x80:
            out.append((z & 0x7F) | 0x80)
            z >>= 7
        out.append(z)
        return bytes(out)

    # the properties map starts after "m" (1 + 1 bytes), "track" (1 + 5), three
    # null unions (3), timestamp 1 (1) and two null unions (2): at byte 14, as
    # one block of 2 entries (count 2, one byte) ending with a 0 count
    props_at = 14
    empty = body({**record, "properties": {}})
    after = len(empty) - props_at - 1  # context, previous_id, group_id
    assert plain[props_at] == zigzag(2)[0]
    entries = plain[props_at + 1 : len(plain) - after - 1]
    blocked = plain[:props_at] + zigzag(-2) + zigzag(len(entries)) + entries + b"\x00"
    blocked += plain[len(plain) - after :]
    assert read_event_body(blocked, 0) == fastavro_read(blocked) == read_event_body(plain, 0)


@CHECK
@given(records())
def test_a_record_cut_short_is_refused_as_truncated(record: dict[str, Any]) -> None:
    data = body(record)
    for cut in range(len(data)):
        with pytest.raises(BodyError) as refused:
            read_event_body(data[:cut], 0)
        assert refused.value.truncated, (cut, refused.value)


@CHECK
@given(records(), st.integers(min_value=0), st.integers(min_value=0, max_value=255))
def test_a_flipped_byte_is_read_as_fastavro_reads_it_or_refused(
    record: dict[str, Any], at: int, byte: int
) -> None:
    data = bytearray(body(record))
    data[at % len(data)] = byte
    try:
        ours = read_event_body(bytes(data), 0)
    except (BodyError, UnicodeDecodeError):
        return  # refused, with a reason the caller reports
    theirs = fastavro_read(bytes(data))
    assert same(ours, theirs)


@pytest.mark.parametrize(
    ("varint", "words"),
    [
        (b"\xff" * 9 + b"\x02", "beyond 64 bits"),  # bit 64 set
        (b"\xff" * 9 + b"\x81\x00", "beyond 64 bits"),  # an 11th byte
    ],
)
def test_a_long_beyond_64_bits_is_refused(varint: bytes, words: str) -> None:
    # a flipped byte once made the message id's length read as -230584300921369395199 here,
    # where fastavro reads 64 bits: refuse rather than differ
    with pytest.raises(BodyError, match=words):
        read_event_body(varint, 0)


def test_the_largest_longs_still_read() -> None:
    fields = SCHEMA.parsed["fields"][9]["type"]["fields"]
    context: dict[str, Any] = {f["name"]: None for f in fields}
    context["extra"] = {}
    record = {
        "message_id": "m", "type": "track", "event": None, "anonymous_id": None,
        "user_id": None, "timestamp_ms": -(2**63), "sent_at_ms": 2**63 - 1,
        "received_at_ms": None, "properties": {"n": -(2**63)}, "context": context,
        "previous_id": None, "group_id": None,
    }  # fmt: skip
    data = body(record)
    assert same(read_event_body(data, 0), fastavro_read(data))
