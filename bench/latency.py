"""Produce -> trigger latency at a steady rate, against one running ``pulse worker``.

Every record's event time follows the wall clock, sped up ``SPEED`` times, so
stream time (and the watermark) of each by-person partition moves smoothly.
Every ``PROBE_EVERY``-th record is a probe of a fresh person, alternately:

* **immediate**: a ``logged_in`` of a new user; the ``first_login`` milestone
  (``topologies/commerce.yaml``) fires while that record is processed. Latency is
  from its produce call to the trigger's arrival on ``<prefix>triggers``.
* **absence**: a ``checkout_started``; with no ``order_completed`` its trigger is
  due at start + 30 min, i.e. once its partition's watermark passes that
  deadline. That watermark is the minimum over source partitions of their
  stream time, minus the allowed lateness, so the record that causes the trigger
  is the last of these: on each source partition, the first record produced
  whose event time is at least deadline + lateness. Latency is from that
  record's produce call to the trigger's arrival.
"""

from __future__ import annotations

import bisect
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, Producer, TopicPartition

from bench.common import pct

SPEED = 600  # event-time ms per wall ms: 30 min of event time pass in 3 s
PROBE_EVERY = 10
#: Triggers of records produced in the first second are not in the percentiles (the
#: steady state is): a worker's first outputs wait on one-time work (topic metadata,
#: first imports). Their worst is reported on its own.
WARMUP_S = 1.0


@dataclass
class LatencyResult:
    rate: float
    produced: int
    probes: int
    triggers: int
    latencies_ms: list[float] = field(default_factory=list)  # absence
    immediate_ms: list[float] = field(default_factory=list)
    immediate_probes: int = 0
    # (seconds into the run the probe was produced, ms): to see when the slow ones were
    immediate_at: list[tuple[float, float]] = field(default_factory=list)
    immediate_missing_at: list[float] = field(default_factory=list)  # no trigger arrived
    warmup_max_ms: float = 0.0  # the slowest immediate trigger of the first WARMUP_S


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
    from pipeline.contract.produce import kafka_producer_config
    from pipeline.contract.topics import decode_output
    from pipeline.contract.wire import encode_event
    from pipeline.core.events import event_from_json
    from pipeline.worker.partitioner import partition_for

    every = list(range(partitions))
    received: dict[str, float] = {}
    stop = threading.Event()

    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"bench-lat-{uuid.uuid4().hex[:6]}",
            "enable.auto.commit": False,
            "fetch.wait.max.ms": 5,
            "enable.partition.eof": True,
        }
    )
    consumer.assign([TopicPartition(f"{prefix}triggers", p, OFFSET_BEGINNING) for p in every])
    # Probes wait until this consumer has read to the end of every partition: its
    # first fetch takes a while, and triggers it received late would look slow.
    at_end: set[int] = set()
    fetching = threading.Event()

    def consume() -> None:
        while not stop.is_set():
            msg = consumer.poll(0.05)
            if msg is None:
                continue
            if msg.error() is not None:
                if msg.error().code() == KafkaError._PARTITION_EOF:
                    at_end.add(msg.partition())
                    if len(at_end) == len(every):
                        fetching.set()
                continue
            now = time.time()
            record = decode_output("triggers", msg.value())
            received.setdefault(record["event_ids"][0], now)

    thread = threading.Thread(target=consume, daemon=True)
    thread.start()
    if not fetching.wait(30):
        raise TimeoutError(f"{prefix}triggers: the latency consumer did not start fetching")
    producer = Producer(kafka_producer_config(Settings(bootstrap_servers=bootstrap)))
    # connected, with the topic's metadata, before the clock starts: a new producer
    # holds its first records back until then
    warm = {"messageId": "lat-warm", "type": "track", "event": "Page Viewed"}
    warm |= {"anonymousId": "lat-warm", "timestamp": 1_780_041_600_000}
    producer.produce(f"{prefix}events", key=b"lat-warm", value=encode_event(event_from_json(warm)))
    if producer.flush(30) != 0:
        raise TimeoutError(f"{prefix}events: the latency producer could not produce")
    # Per by-person partition: event times and produce wall times, in produce order.
    times: dict[int, list[int]] = {p: [] for p in every}
    sent_at: dict[int, list[float]] = {p: [] for p in every}
    probes: dict[str, tuple[int, int]] = {}  # message id -> (partition, event time)
    logins: dict[str, float] = {}  # message id -> produce wall time
    fillers = [f"lat-{i}" for i in range(1000)]
    t0_wall = time.time()
    # 08:00 UTC: event time stays out of the commerce topology's quiet hours
    # (23:00-07:00, which hold triggers back) for the first 90 s of a run
    t0_event = 1_780_041_600_000
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
        probe = n % PROBE_EVERY == 0
        login = probe and n % (2 * PROBE_EVERY) == 0
        person, name = fillers[n % len(fillers)], "Page Viewed"
        if probe:
            person = f"probe-{uuid.uuid4().hex[:12]}"
            name = "Logged In" if login else "Checkout Started"
        raw: dict[str, Any] = {
            "messageId": mid,
            "type": "track",
            "event": name,
            "anonymousId": person,
            "timestamp": ts,
            "properties": {"checkout_id": mid, "value": 10.0},
        }
        if login:
            raw["userId"] = person
        p = partition_for(person.encode(), partitions)
        value = encode_event(event_from_json(raw))
        producer.produce(f"{prefix}events", key=person.encode(), value=value)
        sent = time.time()
        times[p].append(ts)
        sent_at[p].append(sent)
        if login:
            logins[mid] = sent
        elif probe:
            probes[mid] = (p, ts)
        n += 1
        producer.poll(0)
    producer.flush(30)
    time.sleep(3.0)
    stop.set()
    thread.join()
    consumer.close()
    result = LatencyResult(rate=rate, produced=n, probes=len(probes), triggers=len(received))
    result.immediate_probes = len(logins)
    result.immediate_missing_at = sorted(
        t - t0_wall for m, t in logins.items() if m not in received
    )
    steady = t0_wall + WARMUP_S
    for mid, got in received.items():
        if mid in logins:
            ms = (got - logins[mid]) * 1000
            if logins[mid] < steady:
                result.warmup_max_ms = max(result.warmup_max_ms, ms)
                continue
            result.immediate_ms.append(ms)
            result.immediate_at.append((logins[mid] - t0_wall, ms))
        if mid not in probes:
            continue
        _p, ts = probes[mid]
        need = ts + within_ms + lateness_ms
        firsts = [bisect.bisect_left(times[q], need) for q in every]
        if any(i >= len(times[q]) for q, i in zip(every, firsts, strict=True)):
            continue  # some partition never got that far: not measurable
        cause = max(sent_at[q][i] for q, i in zip(every, firsts, strict=True))
        if cause >= steady:
            result.latencies_ms.append((got - cause) * 1000)
    return result


def summary(res: LatencyResult) -> dict[str, Any]:
    return {
        "rate": round(res.rate),
        "produced": res.produced,
        "probes": res.probes,
        "triggers": res.triggers,
        "measured": len(res.latencies_ms),
        "p50_ms": round(pct(res.latencies_ms, 0.5), 1),
        "p99_ms": round(pct(res.latencies_ms, 0.99), 1),
        "immediate_probes": res.immediate_probes,
        "immediate_measured": len(res.immediate_ms),
        "immediate_p50_ms": round(pct(res.immediate_ms, 0.5), 1),
        "immediate_p99_ms": round(pct(res.immediate_ms, 0.99), 1),
        "immediate_missing_at": [round(t, 2) for t in res.immediate_missing_at],
        "warmup_max_ms": round(res.warmup_max_ms, 1),
        "immediate_slowest": [
            (round(at, 2), round(ms, 1))
            for at, ms in sorted(res.immediate_at, key=lambda x: -x[1])[:10]
        ],
    }
