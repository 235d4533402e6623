"""The person-state codec: version 3 (orjson + deflate) written, versions 2 and 1 still read."""

from __future__ import annotations

import hashlib
import json

import pytest

from pipeline.core.engine import MemoryStore, Processor
from pipeline.core.events import Event
from pipeline.core.opensession import plain
from pipeline.topology.dsl import load
from pipeline.worker.records import (
    SMALL_STATE,
    STATE_DICTIONARY,
    decode_state,
    encode_state,
    encode_state_v2,
)

MIN = 60_000
T0 = 1_790_000_000_000
STATE = {
    "behavior": {"o": [], "q": [[T0, "m1", "page_viewed", None, 12.5, None, False, [], "/"]]},
    "rules": {"caps": {"sent": [[T0, "r", "email", "2026-09-21"]]}, "tz": "Europe/Paris"},
    "_next": T0 + 30 * MIN,
    "_src": {"0": 17},
    "x": [0.1 + 0.2, -(2**62), 2**62, None, True, "é"],
}


def test_version_3_round_trips_exactly() -> None:
    data = encode_state(STATE)
    assert data[:1] == b"\x03"
    assert decode_state(data) == STATE
    assert decode_state(data)["x"][0] == 0.1 + 0.2  # floats bit for bit
    assert len(data) < len(encode_state_v2(STATE))


def test_a_small_state_is_stored_without_deflate() -> None:
    """A per-person count: deflate's fixed cost (~16 us) would be most of the worker's time."""
    small = {"count": {"n": 12, "last": T0}, "_src": {"0": 17}}
    data = encode_state(small)
    assert data[:1] == b"\x02"
    assert len(data) < SMALL_STATE
    assert decode_state(data) == small


def test_version_2_states_still_load() -> None:
    data = encode_state_v2(STATE)
    assert data[:1] == b"\x02"
    assert decode_state(data) == STATE


def test_version_3_dictionary_is_frozen() -> None:
    """Stored version 3 states need exactly these bytes: a change needs a new version."""
    digest = hashlib.sha256(STATE_DICTIONARY).hexdigest()[:16]
    assert digest == "4a962c50e0bcfe31"


def test_truncated_version_3_is_refused() -> None:
    data = encode_state(STATE)
    with pytest.raises(ValueError, match="truncated"):
        decode_state(data[: len(data) // 2])
    with pytest.raises(ValueError, match="corrupt"):
        decode_state(data[:1] + b"\xff" * 8)


def test_version_1_states_still_load() -> None:
    old = b"\x01" + json.dumps(STATE, separators=(",", ":")).encode()
    assert decode_state(old) == STATE


def test_unknown_versions_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown person-state encoding"):
        decode_state(b"\x09{}")


def test_a_processor_on_a_version_1_store_gives_the_same_outputs() -> None:
    """States written by version 1 (JSON) and read back give what version 2 gives."""
    topo = load("topologies/commerce.yaml")
    events = [
        Event(message_id=f"m{i}", type="track", event=name, user_id="u1",
              timestamp_ms=T0 + i * 7 * MIN, properties={"product_id": "p1", "price": 250.0},
              context={"timezone": "Europe/Paris"})
        for i, name in enumerate(["product_viewed", "product_added", "checkout_started",
                                  "product_viewed", "order_completed"])
    ]  # fmt: skip

    def run(encode: object) -> list[str]:
        store = MemoryStore()
        proc = Processor(topo.operators, allowed_lateness_ms=0, store=store, stage=topo.stage)
        out = []
        for e in events:
            out.extend(proc.process(e))
            for person, state in list(store.data.items()):  # through the codec each time
                raw = encode(state) if callable(encode) else encode_state(state)
                store.data[person] = decode_state(raw)
        out.extend(proc.advance_to(T0 + 10**10))
        return sorted(json.dumps([o.topic, o.record], sort_keys=True) for o in out)

    def v1(state: dict) -> bytes:  # type: ignore[type-arg]
        return b"\x01" + json.dumps(plain(state), separators=(",", ":")).encode()

    assert run(v1) == run(None)
    assert run(encode_state_v2) == run(None)
