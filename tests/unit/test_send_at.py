"""Timed delivery: deliver_at best_hour -> send_at_ms, quiet hours, caps, and the book's hold."""

from __future__ import annotations

from typing import Any

import pytest

from pipeline.core.caps import Cap, CapPolicy
from pipeline.core.delivery import (
    SUPPRESSED,
    TRIGGERS,
    SendTiming,
    activation,
    deliver,
    timing_of,
)
from pipeline.core.localtime import HOUR_MS
from pipeline.core.outputs import Output
from pipeline.core.rules import TriggerSpec
from pipeline.core.sendtime import load_send_time_model
from pipeline.core.triggers import DeliverAt, ImmediateRule
from pipeline.deliver.book import Book
from pipeline.deliver.config import Batch, Destination, Retry
from pipeline.deliver.entries import Read
from pipeline.deliver.records import retry_headers, retry_meta

MONDAY = 1_767_571_200_000  # 2026-01-05 00:00 UTC
DAY = 24 * HOUR_MS


def Spec(deliver_at: DeliverAt | None, channel: str | None = "email") -> TriggerSpec:
    """Rule ``r`` on ``channel`` to the crm destination, timed by ``deliver_at``."""
    rule = ImmediateRule("r", "product_added")
    return TriggerSpec(rule, channel=channel, destinations=("crm",), deliver_at=deliver_at)


def record(at: int, n: int = 0) -> dict[str, Any]:
    return {"trigger_id": f"t{n}", "rule": "r", "person_id": "p", "event_ids": [f"m{n}"],
            "event_time_ms": at, "context": {}}  # fmt: skip


def run(
    caps: CapPolicy, fired: list[tuple[Any, dict[str, Any]]], timing: SendTiming
) -> list[Output]:
    out: list[Output] = []
    st: dict[str, Any] = {}
    deliver(caps, st, [(spec, rec, None) for spec, rec in fired], out, timing)
    return out


EVENING = SendTiming({"email": {"20": 10, "44": 10}}, None, 5)  # Monday and Tuesday 20:00


def test_deliver_at_is_validated() -> None:
    with pytest.raises(ValueError, match="deliver_at"):
        DeliverAt("whenever", HOUR_MS)
    with pytest.raises(ValueError, match="max_delay"):
        DeliverAt("best_hour", 8 * DAY)


def test_without_deliver_at_nothing_changes() -> None:
    out = run(CapPolicy(), [(Spec(None), record(MONDAY + 9 * HOUR_MS))], EVENING)
    assert [o.topic for o in out] == [TRIGGERS, "activations.crm"]
    assert "send_at_ms" not in out[1].record
    assert out[1].record == activation("crm", record(MONDAY + 9 * HOUR_MS), "r", "email")


def test_best_hour_within_the_delay() -> None:
    spec = Spec(DeliverAt("best_hour", 24 * HOUR_MS))
    out = run(CapPolicy(), [(spec, record(MONDAY + 9 * HOUR_MS))], EVENING)
    assert out[1].record["send_at_ms"] == MONDAY + 20 * HOUR_MS
    short = Spec(DeliverAt("best_hour", 2 * HOUR_MS))
    out = run(CapPolicy(), [(short, record(MONDAY + 9 * HOUR_MS + 5))], EVENING)
    assert out[1].record["send_at_ms"] == MONDAY + 9 * HOUR_MS + 5  # nothing better: now


def test_no_model_few_events_sends_at_the_first_allowed_hour() -> None:
    spec = Spec(DeliverAt("best_hour", 12 * HOUR_MS))
    caps = CapPolicy(quiet_start_hour=22, quiet_end_hour=8)
    out = run(caps, [(spec, record(MONDAY + 23 * HOUR_MS))], SendTiming())
    assert out[1].record["send_at_ms"] == MONDAY + DAY + 8 * HOUR_MS  # quiet until 08:00
    # without deliver_at the same trigger is suppressed by quiet hours
    out = run(caps, [(Spec(None), record(MONDAY + 23 * HOUR_MS))], SendTiming())
    assert [o.topic for o in out] == [SUPPRESSED]
    # nothing allowed within the delay: suppressed, as before
    tight = Spec(DeliverAt("best_hour", HOUR_MS))
    out = run(caps, [(tight, record(MONDAY + 23 * HOUR_MS))], SendTiming())
    assert [(o.topic, o.record["reason"]) for o in out] == [(SUPPRESSED, "quiet_hours")]


def test_caps_count_scheduled_sends_on_both_sides() -> None:
    caps = CapPolicy(caps=(Cap("one_a_day", 1, window_ms=DAY),))
    timed = Spec(DeliverAt("best_hour", 24 * HOUR_MS))
    # first: decided at 09:00, sent at 20:00; second: immediate at 10:00, 10 h before it
    out = run(caps, [(timed, record(MONDAY + 9 * HOUR_MS, 1)),
                     (Spec(None), record(MONDAY + 10 * HOUR_MS, 2))], EVENING)  # fmt: skip
    assert [o.topic for o in out] == [TRIGGERS, "activations.crm", SUPPRESSED]
    assert out[2].record["reason"] == "cap:one_a_day"


def test_timing_of_reads_the_state_and_the_model() -> None:
    doc = {"format": "pulse-model", "version": 1, "task": "send_time", "kind": "send_time",
           "send_time": {"strength": 5.0, "hours": {"*": [1.0] * 168}}}  # fmt: skip

    from pipeline.core.models import ModelSet

    models = ModelSet()
    models.put(doc)
    person = {"behavior": {"t": {"eh": {"email": {"3": 1}}}}}
    timing = timing_of(person, models, 5)
    assert timing.hours == {"email": {"3": 1}}
    assert timing.prior == load_send_time_model(doc)
    assert timing_of({}, None, 5) == SendTiming(None, None, 5)


def book_rec(offset: int, send_at: int | None) -> Read:
    act: dict[str, Any] = {"activation_id": f"a{offset}", "person_id": "p"}
    if send_at is not None:
        act["send_at_ms"] = send_at
    return Read(0, offset, b"p", b"v%d" % offset, [], act, MONDAY)


def test_book_holds_until_send_at_and_parks_it() -> None:
    dest = Destination("crm", "http://x", order="unordered", batch=Batch(10, 0),
                       retry=Retry((0, 5_000), 10**9))  # fmt: skip
    book = Book(dest)
    book.set_caught_up(0, MONDAY)
    book.add_main(book_rec(0, MONDAY + HOUR_MS), MONDAY)
    book.add_main(book_rec(1, None), MONDAY)
    book.add_main(book_rec(2, MONDAY - 1), MONDAY)  # past: at once
    assert [e.origin for e in book.take(MONDAY, 10)] == [1, 2]
    assert book.next_due_ms() == MONDAY + HOUR_MS
    (parked,) = book.outbox
    assert parked.kind == "retry"
    assert parked.entry.origin == 0
    book.written(parked, None, MONDAY)
    meta = retry_meta(retry_headers(parked.entry, parked.gen))
    assert meta["due_ms"] == MONDAY + HOUR_MS
    assert meta["attempts"] == 0
    assert book.take(MONDAY + HOUR_MS - 1, 10) == []
    assert [e.origin for e in book.take(MONDAY + HOUR_MS, 10)] == [0]


def test_activation_schema_carries_send_at_and_reads_the_old_version() -> None:
    import json

    from pipeline.contract.avro import (
        SCHEMA_DIR,
        decode_single_object,
        encode_single_object,
        parse_schema,
    )
    from pipeline.contract.topics import decode_output, encode_output

    timed = activation("email", record(MONDAY), "r", "email", MONDAY + HOUR_MS)
    assert decode_output("activations.email", encode_output("activations.email", timed)) == timed
    plain = activation("email", record(MONDAY), "r", "email")
    assert decode_output("activations.email", encode_output("activations.email", plain)) == {
        **plain, "send_at_ms": None,
    }  # fmt: skip
    v1 = parse_schema(json.loads((SCHEMA_DIR / "history" / "activation.v1.avsc").read_text()), "v1")
    old = encode_single_object(v1, plain)
    assert decode_single_object(old, "activation") == {**plain, "send_at_ms": None}
