"""What an HTTP answer means, the retry schedule, and the request bodies."""

from __future__ import annotations

import json

import pytest

from pipeline.deliver.config import Retry
from pipeline.deliver.formats import message_id, render, segment_track
from pipeline.deliver.policy import Answer, Verdict, judge, next_step, retry_after_ms

NOW = 1_700_000_000_000


@pytest.mark.parametrize(
    ("status", "verdict"),
    [(200, Verdict.DELIVERED), (204, Verdict.DELIVERED), (299, Verdict.DELIVERED),
     (301, Verdict.REJECTED), (400, Verdict.REJECTED), (401, Verdict.REJECTED),
     (404, Verdict.REJECTED), (422, Verdict.REJECTED), (408, Verdict.RETRY),
     (410, Verdict.GONE), (429, Verdict.RETRY), (500, Verdict.RETRY), (502, Verdict.RETRY),
     (503, Verdict.RETRY), (None, Verdict.RETRY)],
)  # fmt: skip
def test_verdicts(status, verdict):
    assert judge(Answer(status, error=None if status else "timed out"), NOW).verdict is verdict


def test_retry_after_in_seconds_and_as_a_date():
    assert judge(Answer(429, retry_after="7"), NOW).after_ms == 7000
    assert judge(Answer(503, retry_after="Tue, 14 Nov 2023 22:13:40 GMT"), NOW).after_ms == 20_000
    assert judge(Answer(500, retry_after="7"), NOW).after_ms is None  # only 429/503
    assert retry_after_ms("soon", NOW) is None
    assert retry_after_ms(None, NOW) is None
    assert retry_after_ms("99999999", NOW) == 86_400_000


def test_schedule_then_attempts_exhausted():
    retry = Retry((0, 5_000, 300_000), max_age_ms=10**9)
    assert next_step(retry, 1, NOW, NOW).due_ms == NOW + 5_000
    assert next_step(retry, 2, NOW, NOW + 5_000).due_ms == NOW + 305_000
    step = next_step(retry, 3, NOW, NOW + 305_000)
    assert (step.due_ms, step.reason) == (None, "attempts_exhausted")
    assert next_step(retry, 1, NOW, NOW, after_ms=60_000).due_ms == NOW + 60_000


def test_max_age_ends_retries():
    retry = Retry((0, 5_000, 300_000), max_age_ms=60_000)
    assert next_step(retry, 1, NOW, NOW).due_ms == NOW + 5_000
    assert next_step(retry, 2, NOW, NOW + 5_000).reason == "expired"


ACT = {
    "activation_id": "a1", "destination": "crm", "kind": "trigger", "name": "checkout_abandoned",
    "person_id": "u1", "channel": "email", "event_time_ms": NOW, "source_id": "t1",
    "payload": {"cart_value": 120.5, "products": ["p1"]},
}  # fmt: skip


def test_pulse_body_is_the_record_or_an_array():
    assert json.loads(render("pulse", [ACT], batched=False)) == ACT
    assert json.loads(render("pulse", [ACT, ACT], batched=True)) == [ACT, ACT]
    assert render("pulse", [ACT], batched=False) == render("pulse", [dict(ACT)], batched=False)


def test_segment_track_call():
    call = segment_track(ACT)
    assert call["type"] == "track"
    assert call["userId"] == "u1"
    assert call["event"] == "Checkout Abandoned"
    assert call["messageId"] == "a1"
    assert call["timestamp"] == "2023-11-14T22:13:20.000Z"
    assert call["properties"]["cart_value"] == 120.5
    assert call["properties"]["channel"] == "email"
    seg = segment_track({**ACT, "kind": "segment_entered", "name": "night_shopper"})
    assert seg["event"] == "Segment Entered"
    assert seg["properties"]["segment"] == "night_shopper"
    batch = json.loads(render("segment", [ACT, ACT], batched=True))
    assert [c["messageId"] for c in batch["batch"]] == ["a1", "a1"]


def test_slack_message():
    text = json.loads(render("slack", [ACT], batched=False))["text"]
    assert text.startswith("*checkout_abandoned* for `u1` at 2023-11-14T22:13:20.000Z")
    assert "cart_value: 120.5" in text
    assert "products" not in text
    two = json.loads(render("slack", [ACT, {**ACT, "person_id": "u2"}], batched=True))["text"]
    assert len(two.splitlines()) == 2


def test_message_id_of_one_and_of_a_batch():
    assert message_id(["a1"]) == "a1"
    assert message_id(["a1", "a2"]).startswith("batch_")
    assert message_id(["a1", "a2"]) == message_id(["a1", "a2"]) != message_id(["a2", "a1"])
