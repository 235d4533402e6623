"""The runtime on the real broker: event time, exactly-once across crashes, bad input.

Each test compares what ``read_committed`` consumers see with ``pulse replay``
of the same events (``replay_events``, which models the workers' partitions).
"""

from __future__ import annotations

import random
import time
from pathlib import Path

import pytest
from confluent_kafka import Producer

from pipeline.config import Settings
from pipeline.contract.produce import kafka_producer_config, partition_key
from pipeline.contract.topics import ensure_topics
from pipeline.contract.wire import encode_event
from pipeline.core.events import Event
from pipeline.tools.replay import replay_events
from pipeline.tools.synthetic import SyntheticConfig, generate
from pipeline.topology.dsl import load_topology
from tests.integration.helpers import event_line, produce_events, pulse
from tests.integration.runtime_helpers import (
    COMPARED,
    QUIET_MS,
    commerce_oracle,
    decided_by,
    enough,
    expected_ids,
    ids,
    kill_9,
    read_committed,
    start_worker,
    stop_worker,
    workers,
)

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
COMMERCE = ROOT / "topologies" / "commerce.yaml"
MIN, HOUR, DAY = 60_000, 3_600_000, 86_400_000
T0 = 1_790_000_000_000
LATENESS = 20 * MIN  # the generator delays late events by at most 10 min


def wait_ready(log: Path, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if log.exists() and "assigned partitions" in log.read_text():
            return
        time.sleep(0.2)
    raise AssertionError(f"worker not ready: {log.read_text()[-2000:]}")


def wait_for_line(log: Path, text: str, count: int, timeout_s: float = 60) -> float:
    """Seconds until ``log`` holds ``count`` lines with ``text``."""
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        if log.exists() and log.read_text().count(text) >= count:
            return time.monotonic() - started
        time.sleep(0.1)
    raise AssertionError(f"no {count}th {text!r} in {timeout_s} s: {log.read_text()[-2000:]}")


def months_of_shoppers(seed: int, people: int = 40, days: int = 90) -> list[Event]:
    """Shoppers over months, identity stitching and late arrivals included, in arrival order."""
    return generate(SyntheticConfig(seed=seed, people=people, days=days)).events


def test_four_events_produced_together_on_a_fresh_topic(
    settings: Settings, pulse_env: dict[str, str], tmp_path: Path
) -> None:
    # The worker waits on empty topics; one `pulse produce` writes a checkout, a
    # buyer's checkout and order, and another person's page view two hours later.
    # Two partitions never get a record: they must not hold time back forever,
    # and the earlier events must not be judged late.
    events = tmp_path / "four.jsonl"
    events.write_text(
        "\n".join(
            [
                event_line("m1", "checkout_started", T0, userId="abandoner"),
                event_line("m2", "checkout_started", T0 + MIN, userId="buyer"),
                event_line("m3", "order_completed", T0 + 2 * MIN, userId="buyer"),
                event_line("m4", "page_viewed", T0 + 2 * HOUR, userId="later"),
            ]
        )
        + "\n"
    )
    ensure_topics(settings)
    log = tmp_path / "worker.log"
    # a quiet system decides its timers once every partition has been quiet this long
    env = {**pulse_env, "PULSE_IDLE_ADVANCE_MS": "1000"}
    with workers(env, [log]):
        wait_ready(log)
        pulse(env, "produce", "--file", str(events))
        got = read_committed(
            settings,
            ["triggers", "events.late"],
            timeout_s=60,
            until=lambda g: any(t == "triggers" for t, _ in g),
        )
        time.sleep(1)  # anything else would be there by now
        got = read_committed(
            settings, ["triggers", "events.late"], timeout_s=5, until=lambda _g: False
        )
    assert [(t, r["rule"], r["person_id"]) for t, r in got] == [
        ("triggers", "checkout_abandoned", "abandoner")
    ], log.read_text()[-3000:]


@pytest.mark.parametrize("n_workers", [1, 2])
def test_live_equals_replay_on_months_of_data_produced_at_full_speed(
    settings: Settings, pulse_env: dict[str, str], tmp_path: Path, n_workers: int
) -> None:
    # Workers start on empty topics; then months of events arrive as fast as one
    # producer writes them. Every trigger, session and segment change that
    # replay gives appears live, once, and nothing else does.
    events = months_of_shoppers(seed=3 + n_workers)
    oracle = commerce_oracle(events, LATENESS)
    want = {t: expected_ids(oracle, t) for t in [*COMPARED, "events.late"] if t != "events.late"}
    late = sum(1 for o in oracle if o.topic == "events.late")
    end = max(e.timestamp_ms for e in events)
    env = {
        **pulse_env,
        "PULSE_ALLOWED_LATENESS_MS": str(LATENESS),
        "PULSE_IDLE_ADVANCE_MS": QUIET_MS,
    }
    ensure_topics(settings)
    logs = [tmp_path / f"worker-{i}.log" for i in range(n_workers)]
    with workers(env, logs, "--topology", str(COMMERCE)):
        for log in logs:
            wait_ready(log)
        produce_events(settings, events)
        got = read_committed(
            settings, [*COMPARED, "events.late"], timeout_s=240, until=enough(want)
        )
        time.sleep(2)
        got = read_committed(settings, [*COMPARED, "events.late"], timeout_s=60, until=enough(want))
    got = decided_by(got, end - LATENESS)  # replay to `end` decides up to its watermark
    tail = "\n".join(log.read_text()[-1500:] for log in logs)
    for topic in COMPARED:
        live = ids(got, topic)
        assert set(live) == set(want[topic]), (topic, len(live), len(want[topic]), tail)
        assert max(live.values(), default=1) == 1, f"{topic}: an output was emitted twice"
    assert sum(1 for t, _ in got if t == "events.late") == late
    # control traffic stays small beside the data on the internal topic
    control, data = by_person_traffic(settings)
    assert control <= 0.05 * max(data, 1) or control <= 40, (control, data)


def by_person_traffic(settings: Settings) -> tuple[int, int]:
    from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

    consumer = Consumer(
        {
            "bootstrap.servers": settings.bootstrap_servers,
            "group.id": f"count-{time.monotonic_ns()}",
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
            "enable.partition.eof": True,
        }
    )
    consumer.assign([TopicPartition(settings.topic("events.by-person"), p, OFFSET_BEGINNING)
                     for p in range(4)])  # fmt: skip
    control = data = eof = 0
    deadline = time.monotonic() + 30
    while eof < 4 and time.monotonic() < deadline:
        for msg in consumer.consume(1000, timeout=0.5):
            if msg.error() is not None:
                eof += 1
                continue
            headers = dict(msg.headers() or [])
            if headers.get("pulse-control") == b"clock":
                control += 1
            else:
                data += 1
    consumer.close()
    return control, data


@pytest.mark.parametrize("guarantee", ["exactly_once", "at_least_once"])
def test_kill_9_loses_nothing_and_exactly_once_doubles_nothing(
    settings: Settings, pulse_env: dict[str, str], tmp_path: Path, guarantee: str
) -> None:
    events = months_of_shoppers(seed=9, people=60, days=120)
    oracle = commerce_oracle(events, LATENESS)
    want = {t: expected_ids(oracle, t) for t in COMPARED}
    end = max(e.timestamp_ms for e in events)
    env = {**pulse_env, "PULSE_ALLOWED_LATENESS_MS": str(LATENESS),
           "PULSE_IDLE_ADVANCE_MS": QUIET_MS, "PULSE_PROCESSING_GUARANTEE": guarantee,
           "PULSE_BATCH_MAX": "200"}  # fmt: skip
    produce_events(settings, events)
    log = tmp_path / "worker.log"
    rnd = random.Random(guarantee)
    back_in: list[float] = []  # seconds from a restart to its first commit
    for _ in range(3):
        proc = start_worker(env, log, "--topology", str(COMMERCE))
        back_in.append(wait_for_line(log, "first commit", len(back_in) + 1))
        time.sleep(rnd.uniform(0.5, 3.0))
        kill_9(proc)
    proc = start_worker(env, log, "--topology", str(COMMERCE))
    try:
        back_in.append(wait_for_line(log, "first commit", len(back_in) + 1))
        got = read_committed(settings, COMPARED, timeout_s=240, until=enough(want))
    finally:
        stop_worker(proc)
    text = log.read_text()
    assert max(back_in) < 15, (back_in, text[-3000:])
    got = decided_by(got, end - LATENESS)  # replay to `end` decides up to its watermark
    for topic in COMPARED:
        live = ids(got, topic)
        assert set(live) == set(want[topic]), (topic, len(live), len(want[topic]), text[-2000:])
        if guarantee == "exactly_once":
            doubled = {k: n for k, n in live.items() if n > 1}
            assert not doubled, (topic, list(doubled)[:5])


def test_bad_input_interleaved_with_good_goes_to_the_dlq_and_changes_nothing_else(
    settings: Settings, pulse_env: dict[str, str], tmp_path: Path
) -> None:
    events = months_of_shoppers(seed=21, people=20, days=30)
    oracle = commerce_oracle(events, LATENESS)
    want = {t: expected_ids(oracle, t) for t in COMPARED}
    ensure_topics(settings)
    producer = Producer(kafka_producer_config(settings))
    bad = [b"{not json", b"\x00\x00\x00\x00\x07garbage", b"", b'{"type": "track"}']
    rnd = random.Random(4)
    sent_bad = []
    for i, event in enumerate(events):
        key = partition_key(event)
        if i % 97 == 0:
            value = bad[len(sent_bad) % len(bad)]
            producer.produce(settings.topic("events"), key=key, value=value)
            sent_bad.append(value)
        producer.produce(settings.topic("events"), key=key, value=encode_event(event))
        if rnd.random() < 0.01:
            producer.poll(0)
    assert producer.flush(60) == 0
    env = {
        **pulse_env,
        "PULSE_ALLOWED_LATENESS_MS": str(LATENESS),
        "PULSE_IDLE_ADVANCE_MS": QUIET_MS,
    }
    log = tmp_path / "worker.log"
    with workers(env, [log], "--topology", str(COMMERCE)) as procs:
        got = read_committed(settings, COMPARED, timeout_s=180, until=enough(want))
        dlq = read_dlq(settings, len(sent_bad))
        assert procs[0].poll() is None, "the worker died"
    got = decided_by(got, max(e.timestamp_ms for e in events) - LATENESS)
    for topic in COMPARED:
        assert set(ids(got, topic)) == set(want[topic]), topic
    assert sorted(v for v, _ in dlq) == sorted(sent_bad)
    assert all(reason for _, reason in dlq)


def read_dlq(settings: Settings, n: int) -> list[tuple[bytes, str]]:
    from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

    consumer = Consumer({"bootstrap.servers": settings.bootstrap_servers,
                         "group.id": f"dlq-{time.monotonic_ns()}", "enable.auto.commit": False,
                         "isolation.level": "read_committed"})  # fmt: skip
    consumer.assign([TopicPartition(settings.topic("events.dlq"), p, OFFSET_BEGINNING)
                     for p in range(4)])  # fmt: skip
    got: list[tuple[bytes, str]] = []
    deadline = time.monotonic() + 30
    while len(got) < n and time.monotonic() < deadline:
        for msg in consumer.consume(100, timeout=0.5):
            if msg.error() is None:
                headers = dict(msg.headers() or [])
                got.append((msg.value() or b"", headers.get("pulse-dlq-reason", b"").decode()))
    consumer.close()
    return got


def test_a_duplicate_across_a_restart_is_dropped_as_replay_drops_it(
    settings: Settings, pulse_env: dict[str, str], tmp_path: Path
) -> None:
    # The duplicate window is refilled from the source partition on assignment:
    # a message id seen before the restart is still recognised after it.
    first = Event(message_id="dup-1", type="track", event="product_viewed",
                  user_id="shopper", timestamp_ms=T0)  # fmt: skip
    rest = [
        Event(
            message_id=f"m-{i}",
            type="track",
            event="product_viewed",
            user_id="shopper",
            timestamp_ms=T0 + i * MIN,
        )
        for i in range(1, 4)
    ]
    closer = Event(message_id="later", type="track", event="page_viewed", user_id="shopper",
                   timestamp_ms=T0 + 5 * HOUR)  # fmt: skip
    events = [first, *rest, first, closer]
    topo = load_topology(COMMERCE)
    oracle = replay_events(events, topo.operators, allowed_lateness_ms=HOUR, stage=topo.stage,
                           identity=topo.identity, end_ms=T0 + 5 * HOUR)  # fmt: skip
    sessions = [o.record for o in oracle if o.topic == "sessions"]
    assert [s["event_count"] for s in sessions] == [4]  # the copy does not count
    env = {**pulse_env, "PULSE_ALLOWED_LATENESS_MS": str(HOUR)}  # the copy is not late
    produce_events(settings, [first, *rest])
    log = tmp_path / "worker.log"
    with workers(env, [log], "--topology", str(COMMERCE)):
        read_committed(settings, ["segments"], timeout_s=30, until=lambda g: len(g) > 0)
        time.sleep(1)
    produce_events(settings, [first, closer])
    with workers(env, [log], "--topology", str(COMMERCE)):
        got = read_committed(settings, ["sessions"], timeout_s=60, until=lambda g: len(g) > 0)
    assert [r["event_count"] for _t, r in got] == [4], log.read_text()[-2000:]


def test_an_idle_worker_writes_next_to_nothing(
    settings: Settings, pulse_env: dict[str, str], tmp_path: Path
) -> None:
    # The Faust worker wrote ~300 watermark records a second while idle. Now a
    # source's clock is told only when it changes: a few records when the
    # worker starts and its partitions turn idle, then none.
    ensure_topics(settings)
    log = tmp_path / "worker.log"
    with workers({**pulse_env, "PULSE_IDLE_ADVANCE_MS": QUIET_MS}, [log]):
        wait_ready(log)
        time.sleep(8)
        control, data = by_person_traffic(settings)
    assert data == 0
    print(f"idle worker: {control} clock records in 8 s")
    assert control <= 4 * 3, control  # per person partition: start, idle, quiet at most
