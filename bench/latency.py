"""Produce -> trigger latency at a steady rate (the harness's part (d), latency).

Every record's event time follows the wall clock, sped up ``SPEED`` times, so
stream time (and the watermark) of each by-person partition moves smoothly.
A share of records are ``checkout_started`` of a fresh person (a *probe*); with
no ``order_completed`` its absence trigger is due at start + 30 min, i.e. once the
partition's watermark (stream time - allowed lateness) passes that deadline. The
record that causes the trigger is the first one produced onto the same by-person
partition whose event time is at least deadline + lateness: latency is from that
record's produce call to the trigger's arrival on ``<prefix>triggers``.
"""

from __future__ import annotations

import bisect
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from aiokafka.partitioner import DefaultPartitioner
from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition

SPEED = 600  # event-time ms per wall ms: 30 min of event time pass in 3 s
PROBE_EVERY = 10


@dataclass
class LatencyResult:
    rate: float
    produced: int
    probes: int
    triggers: int
    latencies_ms: list[float] = field(default_factory=list)

    def pct(self, q: float) -> float:
        if not self.latencies_ms:
            return float("nan")
        xs = sorted(self.latencies_ms)
        return xs[min(len(xs) - 1, int(q * len(xs)))]


def run(
    bootstrap: str,
    prefix: str,
    *,
    rate: float,
    seconds: float,
    lateness_ms: int,
    within_ms: int = 30 * 60_000,
    partitions: int = 4,
) -> LatencyResult:
    from pipeline.config import Settings
    from pipeline.core.events import event_from_json
    from pipeline.produce import kafka_producer_config
    from pipeline.topics import decode_output
    from pipeline.wire import encode_event

    part = DefaultPartitioner()
    every = list(range(partitions))
    received: dict[str, float] = {}
    stop = threading.Event()

    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"bench-lat-{uuid.uuid4().hex[:6]}",
            "enable.auto.commit": False,
            "fetch.wait.max.ms": 5,
        }
    )
    consumer.assign([TopicPartition(f"{prefix}triggers", p, OFFSET_BEGINNING) for p in every])

    def consume() -> None:
        while not stop.is_set():
            msg = consumer.poll(0.05)
            if msg is None or msg.error() is not None:
                continue
            now = time.time()
            record = decode_output("triggers", msg.value())
            received.setdefault(record["event_ids"][0], now)

    thread = threading.Thread(target=consume, daemon=True)
    thread.start()
    producer = Producer(kafka_producer_config(Settings(bootstrap_servers=bootstrap)))
    # Per by-person partition: event times and produce wall times, in produce order.
    times: dict[int, list[int]] = {p: [] for p in every}
    sent_at: dict[int, list[float]] = {p: [] for p in every}
    probes: dict[str, tuple[int, int]] = {}  # message id -> (partition, event time)
    fillers = [f"lat-{i}" for i in range(1000)]
    t0_wall = time.time()
    t0_event = 1_780_000_000_000
    n = 0
    while True:
        now = time.time()
        if now - t0_wall >= seconds:
            break
        due = t0_wall + n / rate
        if due > now:
            producer.poll(0)
            time.sleep(min(due - now, 0.01))
            continue
        ts = t0_event + int((now - t0_wall) * 1000 * SPEED)
        mid = f"lat-{n}"
        if n % PROBE_EVERY == 0:
            person, name = f"probe-{uuid.uuid4().hex[:12]}", "Checkout Started"
        else:
            person, name = fillers[n % len(fillers)], "Page Viewed"
        event = event_from_json(
            {
                "messageId": mid,
                "type": "track",
                "event": name,
                "anonymousId": person,
                "timestamp": ts,
                "properties": {"checkout_id": mid, "value": 10.0},
            }
        )
        p = part(person.encode(), every, every)
        producer.produce(f"{prefix}events", key=person.encode(), value=encode_event(event))
        sent = time.time()
        times[p].append(ts)
        sent_at[p].append(sent)
        if n % PROBE_EVERY == 0:
            probes[mid] = (p, ts)
        n += 1
        producer.poll(0)
    producer.flush(30)
    time.sleep(3.0)
    stop.set()
    thread.join()
    consumer.close()
    result = LatencyResult(rate=rate, produced=n, probes=len(probes), triggers=len(received))
    for mid, got in received.items():
        if mid not in probes:
            continue
        p, ts = probes[mid]
        need = ts + within_ms + lateness_ms
        i = bisect.bisect_left(times[p], need)
        if i < len(times[p]):
            result.latencies_ms.append((got - sent_at[p][i]) * 1000)
    return result


def summary(res: LatencyResult) -> dict[str, Any]:
    return {
        "rate": round(res.rate),
        "produced": res.produced,
        "probes": res.probes,
        "triggers": res.triggers,
        "measured": len(res.latencies_ms),
        "p50_ms": round(res.pct(0.5), 1),
        "p99_ms": round(res.pct(0.99), 1),
    }
