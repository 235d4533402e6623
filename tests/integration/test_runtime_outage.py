"""A broker outage in the middle of a run: the worker logs a bounded number of
lines, resumes by itself, and loses and doubles nothing (exactly-once)."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from pipeline.config import Settings
from pipeline.contract.topics import ensure_topics
from pipeline.tools.localkafka import launcher as kafka_local
from pipeline.tools.localkafka.launcher import LocalKafka
from pipeline.tools.synthetic import SyntheticConfig, generate
from tests.integration.helpers import produce_events
from tests.integration.runtime_helpers import (
    COMPARED,
    commerce_oracle,
    enough,
    expected_ids,
    ids,
    read_committed,
    workers,
)
from tests.integration.test_kafka_local import SHARED_LIB, free_port

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
COMMERCE = ROOT / "topologies" / "commerce.yaml"
LATENESS = 20 * 60_000


@pytest.fixture
def own_broker(tmp_path: Path) -> Iterator[LocalKafka]:
    lib = Path(os.environ.get("PULSE_KAFKA_LIB_DIR") or SHARED_LIB)
    port = free_port()
    broker = LocalKafka(
        home=tmp_path / "kafka-home", port=port, controller_port=free_port(port), lib_dir=lib
    )
    kafka_local.start(broker, timeout_s=120, echo=lambda _: None)
    yield broker
    kafka_local.stop(broker, echo=lambda _: None)


def test_a_broker_outage_is_ridden_out(
    own_broker: LocalKafka, settings: Settings, pulse_env: dict[str, str], tmp_path: Path
) -> None:
    bootstrap = f"127.0.0.1:{own_broker.port}"
    settings = replace(settings, bootstrap_servers=bootstrap)
    env = {
        **pulse_env,
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "PULSE_ALLOWED_LATENESS_MS": str(LATENESS),
    }
    events = generate(SyntheticConfig(seed=31, people=30, days=60)).events
    half = len(events) // 2
    oracle = commerce_oracle(events, LATENESS)
    want = {t: expected_ids(oracle, t) for t in ("triggers", "sessions")}
    ensure_topics(settings)
    log = tmp_path / "worker.log"
    with workers(env, [log], "--topology", str(COMMERCE)) as procs:
        produce_events(settings, events[:half])
        read_committed(settings, ["sessions"], timeout_s=60, until=lambda g: len(g) > 50)
        before = len(log.read_text().splitlines())
        kafka_local.stop(own_broker, echo=lambda _: None)
        time.sleep(15)  # longer than the transaction timeout: the open one is aborted
        during = len(log.read_text().splitlines()) - before
        kafka_local.start(own_broker, timeout_s=120, echo=lambda _: None)
        produce_events(settings, events[half:])
        got = read_committed(settings, COMPARED, timeout_s=180, until=enough(want))
        assert procs[0].poll() is None, "the worker died in the outage"
    text = log.read_text()
    assert during <= 60, f"{during} log lines in a 15 s outage:\n{text[-3000:]}"
    union = set(ids(got, "triggers")) | set(ids(got, "triggers.suppressed"))
    assert union >= set(want["triggers"]), text[-3000:]
    sessions = ids(got, "sessions")
    assert set(sessions) == set(want["sessions"]), text[-3000:]
    assert max(sessions.values()) == 1, "a session was emitted twice (exactly-once)"
