"""``pulse deliver`` killed with SIGKILL loses nothing; a slow endpoint slows only itself."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import pytest

from pipeline.config import Settings
from tests.integration.helpers import PULSE
from tests.integration.test_deliver_support import (
    SECRET,
    Answer,
    Receiver,
    activation,
    destinations,
    produce_activations,
    running,
    wait_for,
)

pytestmark = pytest.mark.integration


def start_deliver(pulse_env: dict[str, str], config: Path, log: Path) -> subprocess.Popen[bytes]:
    env = {**pulse_env, "SECRET": SECRET, "PULSE_DELIVER_METRICS_PORT": "0"}
    with log.open("ab") as out:
        return subprocess.Popen([*PULSE, "deliver", "--destinations", str(config)], env=env,
                                stdout=out, stderr=subprocess.STDOUT)  # fmt: skip


def test_kill_9_in_the_middle_loses_nothing(
    settings: Settings, pulse_env: dict[str, str], tmp_path: Path
) -> None:
    n_crm, n_email = 400, 300
    with Receiver() as rx:
        # crm fails now and then (retries are pending when the worker dies); email is batched
        rx.plan("/crm", *[Answer(500 if i % 5 == 0 else 200, delay_s=0.01) for i in range(300)])
        rx.default("/crm", Answer(200, delay_s=0.01))
        config = tmp_path / "destinations.yaml"
        config.write_text(f"""
destinations:
  crm:
    type: webhook
    url: "{rx.url("/crm")}"
    secret: {{env: SECRET}}
    concurrency: 4
    retry: {{schedule: [0s, 500ms, 1s, 1s, 1s, 1s, 1s, 1s], max_age: 5m}}
  email:
    type: webhook
    url: "{rx.url("/email")}"
    secret: {{env: SECRET}}
    batch: {{max: 20, wait: 50ms}}
""")
        log = tmp_path / "deliver.log"
        proc = start_deliver(pulse_env, config, log)
        try:
            produce_activations(settings, [activation("crm", n) for n in range(n_crm)])
            produce_activations(settings, [activation("email", n) for n in range(n_email)])
            wait_for(lambda: len(rx.delivered_ids("/crm")) >= n_crm // 3, 60, "a third of crm")
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)
            killed_at = len(rx.delivered_ids("/crm")) + len(rx.delivered_ids("/email"))
            proc = start_deliver(pulse_env, config, log)
            wait_for(lambda: set(rx.delivered_ids("/crm")) >= {f"act-crm-{n}" for n in range(n_crm)}
                     and len(set(rx.delivered_ids("/email"))) >= n_email, 120,
                     "every activation after the restart")  # fmt: skip
        finally:
            proc.terminate()
            proc.wait(30)
    assert killed_at < n_crm + n_email, "the kill came before the end"
    assert set(rx.delivered_ids("/crm")) == {f"act-crm-{n}" for n in range(n_crm)}
    assert set(rx.delivered_ids("/email")) == {f"act-email-{n}" for n in range(n_email)}
    for r in rx.got("/crm"):
        assert r.verified
        assert r.headers["webhook-id"] == r.json()["activation_id"], "a duplicate keeps its id"
    assert any(r.status == 500 for r in rx.got("/crm")), "retries were part of the run"
    assert b"Traceback" not in log.read_bytes(), log.read_text()


def test_a_slow_endpoint_does_not_hold_back_a_fast_one(settings: Settings) -> None:
    with Receiver() as rx:
        rx.default("/slow", Answer(200, delay_s=1.5))
        dests = destinations(f"""
destinations:
  slow: {{type: webhook, url: "{rx.url("/slow")}", concurrency: 1, timeout: 10s}}
  fast: {{type: webhook, url: "{rx.url("/fast")}", concurrency: 4}}
""")
        with running(settings, dests, max_pending=50):
            started = time.monotonic()
            produce_activations(settings, [activation("slow", n) for n in range(200)])
            produce_activations(settings, [activation("fast", n) for n in range(200)])
            wait_for(lambda: len(rx.delivered_ids("/fast")) >= 200, 30, "every fast activation")
            took = time.monotonic() - started
            slow_done = len(rx.delivered_ids("/slow"))
    assert slow_done < 20, "the slow endpoint is still busy"
    assert took < 15, f"fast took {took:.1f} s beside a slow endpoint"


def test_slack_format_end_to_end(settings: Settings) -> None:
    with Receiver(secret=None) as rx:
        dests = destinations(f"""
destinations:
  team: {{type: webhook, url: "{rx.url("/slack")}", format: slack, batch: {{max: 10, wait: 200ms}}}}
""")
        with running(settings, dests):
            produce_activations(settings, [activation("team", n) for n in range(3)])
            wait_for(lambda: sum(len(r.json()["text"].splitlines()) for r in rx.got("/slack"))
                     >= 3, 30, "three lines")  # fmt: skip
    lines = [line for r in rx.got("/slack") for line in r.json()["text"].splitlines()]
    assert all(line.startswith("*checkout_abandoned* for `person-") for line in lines)
    assert "webhook-signature" not in rx.got("/slack")[0].headers, "no secret, no signature"
