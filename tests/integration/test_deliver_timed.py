"""Timed delivery on the real broker: an activation with ``send_at_ms`` waits, across a restart."""

from __future__ import annotations

import time

import pytest

from pipeline.config import Settings
from tests.integration.test_deliver_support import (
    Receiver,
    activation,
    destinations,
    produce_activations,
    running,
    wait_for,
)

pytestmark = pytest.mark.integration


def test_held_until_send_at_even_across_a_restart(settings: Settings) -> None:
    with Receiver() as rx:
        dests = destinations(f"""
destinations:
  email: {{type: webhook, url: "{rx.url("/email")}", secret: {{env: SECRET}}, order: unordered}}
""")
        send_at = int(time.time() * 1000) + 6_000
        timed = {**activation("email", 1, "p-timed"), "send_at_ms": send_at}
        now = activation("email", 2, "p-now")
        group = "deliver-timed"
        with running(settings, dests, group_id=group):
            produce_activations(settings, [timed, now])
            wait_for(lambda: len(rx.delivered_ids("/email")) >= 1, what="the immediate one")
            time.sleep(1.0)  # commits: the held one sits parked on the retry topic
        assert rx.delivered_ids("/email") == [now["activation_id"]]
        with running(settings, dests, group_id=group):  # a restart: it must still wait
            wait_for(lambda: len(rx.delivered_ids("/email")) >= 2, what="the held one")
            time.sleep(1.0)
    got = {r.json()["activation_id"]: r for r in rx.got("/email")}
    assert set(got) == {timed["activation_id"], now["activation_id"]}
    assert len(rx.got("/email")) == 2  # each once
    assert got[timed["activation_id"]].at * 1000 >= send_at
    assert got[timed["activation_id"]].json()["send_at_ms"] == send_at
