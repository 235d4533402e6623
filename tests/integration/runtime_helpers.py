"""Helpers for the runtime's integration tests: read outputs committed, compare with replay."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from pipeline.config import Settings
from pipeline.contract.topics import decode_output, logical_name
from pipeline.core.events import Event
from pipeline.core.outputs import Output
from tests.integration.helpers import PULSE

#: The id field of each output topic's records.
ID_FIELD = {
    "triggers": "trigger_id",
    "triggers.suppressed": "trigger_id",
    "sessions": "session_id",
    "segments": "change_id",
    "profiles": "profile_id",
}
COMPARED = ["triggers", "triggers.suppressed", "sessions", "segments"]
#: When each compared output was decided (event time).
TIME_FIELD = {
    "triggers": "event_time_ms",
    "triggers.suppressed": "event_time_ms",
    "sessions": "closed_at_ms",
    "segments": "event_time_ms",
}
#: A quiet system decides its timers after this much quiet (then time goes on
#: with the wall clock: outputs decided after the oracle's end are left out).
QUIET_MS = "1000"


def decided_by(
    records: list[tuple[str, dict[str, Any]]], end_ms: int
) -> list[tuple[str, dict[str, Any]]]:
    """The records decided at or before ``end_ms``.

    Replay up to ``end`` decides up to its watermark there: ``end`` minus the
    allowed lateness. A quiet live system goes on with the wall clock.
    """
    return [(t, r) for t, r in records if t not in TIME_FIELD or r[TIME_FIELD[t]] <= end_ms]


def read_committed(
    settings: Settings,
    topics: list[str],
    *,
    until: Callable[[list[tuple[str, dict[str, Any]]]], bool],
    timeout_s: float,
    partitions: int = 4,
) -> list[tuple[str, dict[str, Any]]]:
    """(logical topic, record) as a ``read_committed`` consumer sees them, from the start."""
    consumer = Consumer(
        {
            "bootstrap.servers": settings.bootstrap_servers,
            "group.id": f"test-committed-{time.monotonic_ns()}",
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
        }
    )
    consumer.assign(
        [
            TopicPartition(settings.topic(t), p, OFFSET_BEGINNING)
            for t in topics
            for p in range(partitions)
        ]
    )
    got: list[tuple[str, dict[str, Any]]] = []
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline and not until(got):
            for msg in consumer.consume(500, timeout=0.2):
                if msg.error() is None:
                    logical = logical_name(settings, msg.topic())
                    got.append((logical, decode_output(logical, msg.value())))
    finally:
        consumer.close()
    return got


COMMERCE = Path(__file__).resolve().parents[2] / "topologies" / "commerce.yaml"


def commerce_oracle(
    events: list[Event], lateness_ms: int, end_ms: int | None = None
) -> list[Output]:
    """``pulse replay`` of ``events`` with the commerce topology, to their last event time."""
    from pipeline.tools.replay import replay_events
    from pipeline.topology.dsl import load_topology

    topo = load_topology(COMMERCE)
    end = max(e.timestamp_ms for e in events) if end_ms is None else end_ms
    return replay_events(events, topo.operators, allowed_lateness_ms=lateness_ms,
                         stage=topo.stage, identity=topo.identity, end_ms=end)  # fmt: skip


def ids(records: list[tuple[str, dict[str, Any]]], topic: str) -> Counter[str]:
    return Counter(r[ID_FIELD[topic]] for t, r in records if t == topic)


def expected_ids(outputs: list[Output], topic: str) -> Counter[str]:
    return Counter(o.record[ID_FIELD[topic]] for o in outputs if o.topic == topic)


def enough(expected: dict[str, Counter[str]]) -> Callable[[list[tuple[str, dict[str, Any]]]], bool]:
    """True once every expected id has been read."""

    def check(got: list[tuple[str, dict[str, Any]]]) -> bool:
        return all(set(ids(got, t)) >= set(want) for t, want in expected.items())

    return check


@contextmanager
def workers(
    env: dict[str, str], logs: list[Path], *args: str
) -> Iterator[list[subprocess.Popen[bytes]]]:
    """Several ``pulse worker`` processes; stopped (SIGTERM) at the end of the block."""
    procs: list[subprocess.Popen[bytes]] = []
    try:
        for log in logs:
            procs.append(start_worker(env, log, *args))
        yield procs
    finally:
        for proc in procs:
            stop_worker(proc)


def start_worker(env: dict[str, str], log: Path, *args: str) -> subprocess.Popen[bytes]:
    with log.open("ab") as handle:
        return subprocess.Popen(
            [*PULSE, "worker", *args], env=env, stdout=handle, stderr=subprocess.STDOUT
        )


def stop_worker(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def kill_9(proc: subprocess.Popen[bytes]) -> None:
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
