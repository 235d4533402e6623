"""``pulse deliver`` against a real HTTP server and the real broker: answers and their handling."""

from __future__ import annotations

import time

import pytest

from pipeline.config import Settings
from pipeline.deliver.config import load_destinations
from pipeline.deliver.state import read_states
from tests.integration.helpers import pulse
from tests.integration.test_deliver_support import (
    Answer,
    Receiver,
    activation,
    destinations,
    produce_activations,
    running,
    wait_for,
)

pytestmark = pytest.mark.integration

FAST_RETRY = "retry: {schedule: [0s, 300ms, 600ms], max_age: 1m}"


def test_delivers_signed_in_order_per_person(settings: Settings) -> None:
    with Receiver() as rx:
        dests = destinations(f"""
destinations:
  crm: {{type: webhook, url: "{rx.url("/crm")}", secret: {{env: SECRET}}, concurrency: 4}}
""")
        acts = [activation("crm", n) for n in range(40)]
        with running(settings, dests):
            produce_activations(settings, acts)
            wait_for(lambda: len(rx.got("/crm")) >= 40, what="40 requests")
    got = rx.got("/crm")
    assert all(r.verified for r in got), "every request carries a valid signature"
    assert sorted(rx.delivered_ids("/crm")) == sorted(a["activation_id"] for a in acts)
    for r in got:
        assert r.headers["webhook-id"] == r.json()["activation_id"]
        assert r.headers["Content-Type"] == "application/json"
    by_person: dict[str, list[int]] = {}
    for r in got:
        body = r.json()
        by_person.setdefault(body["person_id"], []).append(body["event_time_ms"])
    for person, times in by_person.items():
        assert times == sorted(times), f"{person}'s activations out of order"


def test_batches(settings: Settings) -> None:
    with Receiver() as rx:
        dests = destinations(f"""
destinations:
  email:
    type: webhook
    url: "{rx.url("/email")}"
    secret: {{env: SECRET}}
    format: segment
    batch: {{max: 25, wait: 300ms}}
""")
        acts = [activation("email", n) for n in range(100)]
        with running(settings, dests):
            produce_activations(settings, acts)
            wait_for(lambda: len(rx.delivered_ids("/email")) >= 100, what="100 activations")
    got = rx.got("/email")
    assert len(got) < 100, "activations share requests"
    assert max(len(r.json()["batch"]) for r in got) > 1
    assert all(len(r.json()["batch"]) <= 25 for r in got)
    assert all(r.verified for r in got)
    assert all(r.headers["webhook-id"].startswith("batch_") or len(r.json()["batch"]) == 1
               for r in got)  # fmt: skip
    assert sorted(rx.delivered_ids("/email")) == sorted(a["activation_id"] for a in acts)
    call = got[0].json()["batch"][0]
    assert call["type"] == "track"
    assert call["event"] == "Checkout Abandoned"


def test_500s_then_success_and_a_timeout(settings: Settings) -> None:
    with Receiver() as rx:
        rx.plan("/crm", Answer(500), Answer(502))
        rx.plan("/push", Answer(200, delay_s=3))  # longer than the timeout: retried
        dests = destinations(f"""
destinations:
  crm: {{type: webhook, url: "{rx.url("/crm")}", secret: {{env: SECRET}}, {FAST_RETRY}}}
  push:
    type: webhook
    url: "{rx.url("/push")}"
    timeout: 1s
    {FAST_RETRY}
""")
        with running(settings, dests):
            produce_activations(settings, [activation("crm", 1), activation("push", 2)])
            wait_for(lambda: rx.delivered_ids("/crm") == ["act-crm-1"], what="crm after 2 fails")
            wait_for(lambda: len(rx.got("/push")) >= 2, what="push retried after a timeout")
    assert [r.status for r in rx.got("/crm")] == [500, 502, 200]
    first, second = rx.got("/crm")[0], rx.got("/crm")[2]
    assert first.headers["webhook-id"] == second.headers["webhook-id"] == "act-crm-1"
    assert second.at - first.at >= 0.8, "waited for the schedule (300 ms, then 600 ms)"


def test_429_honours_retry_after(settings: Settings) -> None:
    with Receiver() as rx:
        rx.plan("/crm", Answer(429, {"Retry-After": "2"}))
        dests = destinations(f"""
destinations:
  crm: {{type: webhook, url: "{rx.url("/crm")}", {FAST_RETRY}}}
""")
        with running(settings, dests):
            produce_activations(settings, [activation("crm", 1)])
            wait_for(lambda: rx.delivered_ids("/crm") == ["act-crm-1"], what="delivery")
    throttled, ok = rx.got("/crm")
    assert throttled.status == 429
    assert ok.at - throttled.at >= 1.9, "Retry-After: 2 was honoured, not the 300 ms schedule"


def test_4xx_dead_letters_at_once_with_the_response(settings: Settings) -> None:
    from pipeline.tools import dlq

    with Receiver() as rx:
        rx.plan("/crm", Answer(422))
        dests = destinations(f"""
destinations:
  crm: {{type: webhook, url: "{rx.url("/crm")}", {FAST_RETRY}}}
""")
        with running(settings, dests):
            produce_activations(settings, [activation("crm", 1, "p1"), activation("crm", 2, "p1")])
            wait_for(lambda: rx.delivered_ids("/crm") == ["act-crm-2"], what="the next one")
            wait_for(lambda: bool(list(dlq.read_dlq(settings, topic="activations.dlq"))),
                     what="the dead letter")  # fmt: skip
    assert len(rx.got("/crm")) == 2, "no retry of a 422"
    (letter,) = dlq.read_dlq(settings, topic="activations.dlq")
    assert letter.reason == "rejected"
    assert letter.header("pulse-dlq-destination") == "crm"
    assert letter.header("pulse-dlq-attempts") == "1"
    assert letter.header("pulse-dlq-status") == "422"
    assert letter.header("pulse-dlq-message") == "HTTP 422: ok"
    assert letter.header("pulse-emitted-at-ms") is not None, "the original headers are kept"


def test_410_disables_the_destination_and_parks_its_records(
    settings: Settings, pulse_env: dict[str, str]
) -> None:
    with Receiver() as rx:
        rx.default("/gone", Answer(410))
        dests = destinations(f"""
destinations:
  gone: {{type: webhook, url: "{rx.url("/gone")}", {FAST_RETRY}}}
  crm: {{type: webhook, url: "{rx.url("/crm")}", {FAST_RETRY}}}
""")
        with running(settings, dests, group_id="g410") as worker:
            produce_activations(settings, [activation("gone", n) for n in range(5)])
            produce_activations(settings, [activation("crm", 1)])
            wait_for(lambda: worker.dests["gone"].book.disabled, what="disabled")
            wait_for(lambda: rx.delivered_ids("/crm") == ["act-crm-1"], what="crm unaffected")
            wait_for(lambda: read_states(settings).get("gone", {}).get("disabled") is True,
                     what="the state topic")  # fmt: skip
            sent = len(rx.got("/gone"))
            assert sent <= worker.destinations["gone"].concurrency, "stopped at the first 410"
        # a restart keeps it disabled: nothing is sent
        with running(settings, dests, group_id="g410") as worker:
            assert worker.dests["gone"].book.disabled
            time.sleep(1)
            assert len(rx.got("/gone")) == sent
        # the endpoint comes back, an operator enables the destination, the parked records go
        rx.default("/gone", Answer(200))
        with running(settings, dests, group_id="g410"):
            pulse(pulse_env, "deliver", "enable", "gone")
            wait_for(lambda: len(rx.delivered_ids("/gone")) >= 5, what="parked records")
    assert sorted(set(rx.delivered_ids("/gone"))) == [f"act-gone-{n}" for n in range(5)]


def test_dlq_inspect_and_replay_and_status_from_the_cli(
    settings: Settings, pulse_env: dict[str, str], tmp_path
) -> None:
    import json

    with Receiver() as rx:
        rx.plan("/crm", Answer(400), Answer(400))
        config = tmp_path / "d.yaml"
        config.write_text(f"""
destinations:
  crm: {{type: webhook, url: "{rx.url("/crm")}", {FAST_RETRY}}}
""")
        dests = destinations(config.read_text())
        with running(settings, dests, group_id=f"{settings.app_id}-deliver"):
            produce_activations(settings, [activation("crm", n) for n in range(3)])
            wait_for(lambda: len(rx.got("/crm")) >= 3, what="three answers")
            time.sleep(0.5)  # the dead letters are acknowledged
        inspected = json.loads(pulse(pulse_env, "dlq", "inspect", "--activations", "--json").stdout)
        assert inspected["crm: rejected"]["count"] == 2
        example = inspected["crm: rejected"]["example"]
        assert example["destination"] == "crm"
        assert example["status"] == "400"
        status = json.loads(pulse(pulse_env, "deliver", "status", "--destinations", str(config),
                                  "--json").stdout)  # fmt: skip
        assert status["crm"]["disabled"] is False
        assert status["crm"]["backlog"] == 0
        # the receiver is fixed: re-drive the dead letters, a worker delivers them
        out = pulse(pulse_env, "dlq", "replay", "--activations", "--reason", "rejected")
        assert "re-drove 2 record(s)" in out.stderr
        with running(settings, dests, group_id=f"{settings.app_id}-deliver"):
            wait_for(lambda: len(set(rx.delivered_ids("/crm"))) == 3, what="all three")


def test_rate_limit_and_custom_headers(settings: Settings) -> None:
    with Receiver() as rx:
        dests = load_destinations("d.yaml", f"""
destinations:
  crm:
    type: webhook
    url: "{rx.url('/crm')}"
    rate_limit: 4
    concurrency: 8
    headers: {{X-Team: growth, Authorization: {{env: TOKEN}}}}
""", env={"TOKEN": "Bearer t0k"})  # fmt: skip
        with running(settings, dests):
            produce_activations(settings, [activation("crm", n) for n in range(12)])
            wait_for(lambda: len(rx.got("/crm")) >= 12, what="twelve requests")
    got = rx.got("/crm")
    assert got[-1].at - got[0].at >= 1.8, "4/s with a burst of 4: 12 requests take 2 s"
    assert got[0].headers["X-Team"] == "growth"
    assert got[0].headers["Authorization"] == "Bearer t0k"
    assert got[0].headers["User-Agent"].startswith("pulse-deliver/")


def test_after_the_last_attempt_the_dead_letter_says_why(settings: Settings) -> None:
    from pipeline.tools import dlq

    with Receiver() as rx:
        rx.default("/crm", Answer(500))
        dests = destinations(f"""
destinations:
  crm: {{type: webhook, url: "{rx.url('/crm')}", retry: {{schedule: [0s, 200ms, 200ms]}}}}
""")
        with running(settings, dests):
            produce_activations(settings, [activation("crm", 1)])
            wait_for(lambda: bool(list(dlq.read_dlq(settings, topic="activations.dlq"))),
                     what="the dead letter")  # fmt: skip
    assert len(rx.got("/crm")) == 3
    (letter,) = dlq.read_dlq(settings, topic="activations.dlq")
    assert letter.reason == "attempts_exhausted"
    assert letter.header("pulse-dlq-attempts") == "3"
    assert letter.header("pulse-dlq-status") == "500"
    assert letter.header("pulse-dlq-message") == "HTTP 500: ok"
    assert letter.header("pulse-dlq-source-topic") == settings.topic("activations.crm")


def test_a_retry_waits_alone_with_its_persons_later_activations(settings: Settings) -> None:
    with Receiver() as rx:
        rx.plan("/crm", Answer(500))
        dests = destinations(f"""
destinations:
  crm: {{type: webhook, url: "{rx.url('/crm')}", retry: {{schedule: [0s, 2s, 2s]}}}}
""")
        with running(settings, dests):
            produce_activations(settings, [activation("crm", 1, "p1")])
            wait_for(lambda: len(rx.got("/crm")) == 1, what="the first attempt")
            produce_activations(settings, [activation("crm", 2, "p1"), activation("crm", 3, "p2")])
            wait_for(lambda: len(rx.delivered_ids("/crm")) == 3, what="all three")
    order = rx.delivered_ids("/crm")
    assert order.index("act-crm-3") < order.index("act-crm-1"), "p2 did not wait for p1's retry"
    assert order.index("act-crm-1") < order.index("act-crm-2"), "p1's activations in order"
    first, retried = rx.got("/crm")[0], rx.got("/crm", 200)[order.index("act-crm-1")]
    assert retried.at - first.at >= 1.9
