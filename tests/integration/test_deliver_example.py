"""The README's flow: examples/webhook_receiver.py receives from ``pulse deliver`` and verifies."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pipeline.config import Settings
from tests.integration.test_deliver_support import (
    SECRET,
    activation,
    destinations,
    produce_activations,
    running,
    wait_for,
)

pytestmark = pytest.mark.integration

RECEIVER = Path(__file__).resolve().parents[2] / "examples" / "webhook_receiver.py"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_example_receiver_gets_verified_deliveries(settings: Settings, tmp_path: Path) -> None:
    port = free_port()
    out = tmp_path / "receiver.out"
    with out.open("wb") as handle:
        proc = subprocess.Popen(
            [sys.executable, str(RECEIVER), "--host", "127.0.0.1", "--port", str(port)],
            env={"PULSE_WEBHOOK_SECRET": SECRET, "PATH": "/usr/bin:/bin"},
            stdout=handle, stderr=subprocess.DEVNULL,
        )  # fmt: skip
    try:
        dests = destinations(f"""
destinations:
  crm: {{type: webhook, url: "http://127.0.0.1:{port}/hooks/crm", secret: {{env: SECRET}}}}
  email:
    type: webhook
    url: "http://127.0.0.1:{port}/hooks/email"
    secret: {{env: SECRET}}
    format: segment
""")
        with running(settings, dests):
            time.sleep(0.5)  # the receiver is listening
            produce_activations(settings, [activation("crm", n) for n in range(3)])
            produce_activations(settings, [activation("email", 7)])
            wait_for(lambda: len(out.read_text().splitlines()) >= 4, 30, "four deliveries")
    finally:
        proc.terminate()
        proc.wait(10)
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert sorted(x["webhook-id"] for x in lines) == [
        "act-crm-0", "act-crm-1", "act-crm-2", "act-email-7"]  # fmt: skip
    (email,) = [x for x in lines if x["path"] == "/hooks/email"]
    assert email["body"]["type"] == "track"
