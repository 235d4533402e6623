"""The runtime's fast path for current-schema Avro events gives exactly what the
full validator gives: the same event, or the same refusal."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.contract.avro import encode_single_object, load_schema
from pipeline.contract.wire import decode_event, decode_for_processing, decode_trusted
from pipeline.errors import DecodeError

ids = st.one_of(st.none(), st.just(""), st.sampled_from(["a-1", "u-7", " null ", "0"]))
names = st.one_of(
    st.none(),
    st.just(""),
    st.sampled_from(["page_viewed", "Order Completed", "checkoutStarted", "x"]),
)
times = st.one_of(st.integers(1_700_000_000_000, 1_800_000_000_000), st.integers(0, 10**13))
scalars = st.one_of(st.none(), st.booleans(), st.integers(-(2**63), 2**63 - 1), st.text(max_size=4))


@st.composite
def records(draw: Any) -> dict[str, Any]:
    context = {f["name"]: None for f in load_schema("event").parsed["fields"][9]["type"]["fields"]}
    context["extra"] = draw(st.dictionaries(st.text(max_size=3), st.text(max_size=3), max_size=2))
    context["channel"] = draw(st.one_of(st.none(), st.just("web")))
    return {
        "message_id": draw(st.sampled_from(["", "m-1"])),
        "type": draw(st.sampled_from(["track", "page", "screen", "identify", "Track", "weird"])),
        "event": draw(names),
        "anonymous_id": draw(ids),
        "user_id": draw(ids),
        "timestamp_ms": draw(times),
        "sent_at_ms": draw(st.one_of(st.none(), times)),
        "received_at_ms": draw(st.one_of(st.none(), times)),
        "properties": draw(st.dictionaries(st.text(max_size=3), scalars, max_size=3)),
        "context": context,
        "previous_id": draw(ids),
        "group_id": draw(ids),
    }


def outcome(decode: Any, data: bytes) -> Any:
    try:
        return decode(data)
    except DecodeError as err:
        return ("refused", err.reason)


@settings(max_examples=400, deadline=None)
@given(records())
def test_fast_path_equals_the_full_validator(record: dict[str, Any]) -> None:
    data = encode_single_object(load_schema("event"), record)
    slow = outcome(lambda d: decode_event(d, None), data)
    fast = outcome(lambda d: decode_for_processing(d, None), data)
    if isinstance(slow, tuple):
        assert fast == slow
        return
    event, forward = fast
    assert event == slow
    if forward is not None:  # forwarded as is: the next hop reads the same event
        assert decode_trusted(forward) == event
