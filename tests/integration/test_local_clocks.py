"""A worker's own partitions learn each other's time without the broker route.

With the clock records' interval far beyond the test's timeout, a person
partition can only learn the other source partitions' times from this
worker's own sources, in process (``pipeline/worker/forwards.py``): an
abandoned checkout must still be decided as soon as every partition has
moved past its deadline, and nothing may be judged late.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from pipeline.config import Settings
from pipeline.core.events import Event
from tests.integration.helpers import clock_events, person_on_partition, produce_events
from tests.integration.runtime_helpers import read_committed, workers
from tests.integration.test_runtime import HOUR, T0, wait_ready

pytestmark = pytest.mark.integration


def test_local_sources_move_the_watermark_without_clock_records(
    settings: Settings, pulse_env: dict[str, str], tmp_path: Path
) -> None:
    abandoner = person_on_partition(1, 4, "abandoner")
    checkout = Event(
        message_id="c1",
        type="track",
        event="checkout_started",
        user_id=abandoner,
        timestamp_ms=T0,
        properties={"checkout_id": "c1"},
    )
    # every partition's events are keyed by their person: nothing is forwarded,
    # so no data record carries another source's time either
    later = clock_events(settings, T0 + 2 * HOUR)
    env = {**pulse_env, "PULSE_CLOCK_INTERVAL_MS": "600000", "PULSE_IDLE_ADVANCE_MS": "0"}
    log = tmp_path / "worker.log"
    with workers(env, [log]):
        wait_ready(log)
        produce_events(settings, [checkout])
        time.sleep(1)
        produce_events(settings, later)
        got = read_committed(
            settings,
            ["triggers", "events.late"],
            timeout_s=60,
            until=lambda g: any(t == "triggers" for t, _ in g),
        )
    assert [(t, r["rule"], r["person_id"]) for t, r in got] == [
        ("triggers", "checkout_abandoned", abandoner)
    ], log.read_text()[-3000:]
