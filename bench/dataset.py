"""The reliability data set: months of synthetic shoppers, in the order they are produced.

A :class:`DataSet` is a list of records exactly as the harness produces them
(key, value bytes, the partition the key lands on) and, for the good ones, the
event the worker will decode from those bytes: the oracle replays those events
in the same order, so the per-partition order the workers see is the one replay
models. Bad records (``None`` event) are skipped by the oracle.
"""

from __future__ import annotations

import random
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Protocol

from confluent_kafka import Producer

from pipeline.core.events import Event

PARTITIONS = 4
EVENTS_PER_PERSON_DAY = 2.5  # what pipeline.tools.synthetic generates, roughly


@dataclass
class DataSet:
    keys: list[bytes]
    values: list[bytes]
    events: list[Event | None]  # None: a bad record (its expected DLQ reason in bad_reasons)
    partitions: list[int]
    days: int = 0
    people: int = 0
    late: int = 0  # records the generator held back (arrive after later events)
    bad_reasons: dict[int, str] = field(default_factory=dict)  # index -> expected reason
    order: str = "as generated"
    flushed: int = 0  # partitions given an event at the last event time (_flush_ends)

    def __len__(self) -> int:
        return len(self.values)

    @property
    def good(self) -> list[Event]:
        return [e for e in self.events if e is not None]

    def end_ms(self) -> int:
        """Where a live system's stream time ends once every source is idle.

        The runtime's idle rule (``pipeline/worker/clocks.py``): with every source
        idle and none *quiet* (``PULSE_IDLE_ADVANCE_MS=0``), a person partition's
        stream time is the smallest of the sources' stream times, each the largest
        event time of its partition.
        """
        last: dict[int, int] = {}
        for e, p in zip(self.events, self.partitions, strict=True):
            if e is not None and e.timestamp_ms > last.get(p, -(2**63)):
                last[p] = e.timestamp_ms
        return min(last.values())

    def span_days(self) -> float:
        times = [e.timestamp_ms for e in self.good]
        return (max(times) - min(times)) / 86_400_000

    def describe(self) -> str:
        good = self.good
        linked = sum(1 for e in good if e.user_id and e.anonymous_id)
        return (
            f"{len(self):,} records ({len(self.bad_reasons):,} bad), {self.people:,} people, "
            f"{self.span_days():.0f} days of event time, {self.late:,} held back by the "
            f"generator (late arrivals), {linked:,} events carrying both an anonymous and a "
            f"user id (identity links), {self.flushed} partition(s) ended at the last event "
            f"time by one page view, order: {self.order}"
        )


def synthetic(n: int, *, days: int = 90, seed: int = 11, late_rate: float = 0.01) -> DataSet:
    """About ``n`` events over ``days`` days (the number of people follows from ``n``)."""
    from pipeline.contract.produce import partition_key
    from pipeline.contract.wire import decode_event, encode_event
    from pipeline.tools.synthetic import SyntheticConfig, generate
    from pipeline.worker.partitioner import partition_for

    people = max(10, round(n / (days * EVENTS_PER_PERSON_DAY)))
    while True:
        data = generate(SyntheticConfig(seed=seed, people=people, days=days, late_rate=late_rate))
        if len(data.events) >= n * 0.98 or people > n:
            break
        people = int(people * n / max(len(data.events), 1)) + 1
    ends = _flush_ends(data.events)
    events = data.events + ends
    keys = [partition_key(e) for e in events]
    values = [encode_event(e) for e in events]
    # what the worker will see: the event decoded from the very bytes produced
    decoded: list[Event | None] = [decode_event(v) for v in values]
    parts = [partition_for(k, PARTITIONS) for k in keys]
    late = int(data.labels.get("late", {}).get("count", 0))
    return DataSet(
        keys, values, decoded, parts, days=days, people=people, late=late, flushed=len(ends)
    )


def _flush_ends(events: list[Event]) -> list[Event]:
    """One event per partition at the largest event time, for partitions that end earlier.

    Live, a source partition whose data is all processed goes idle after
    ``PULSE_IDLE_TIMEOUT_MS`` and stops holding the watermark back while the
    others still work off a backlog (after a restart, say); replay has no
    idleness. Ending every partition at the same event time makes the two agree
    whatever the timing: the watermark cannot pass an idle source that has
    nothing more to say.
    """
    from pipeline.contract.produce import partition_key
    from pipeline.core.events import event_from_json
    from pipeline.worker.partitioner import partition_for

    end = max(e.timestamp_ms for e in events)
    last: dict[int, int] = {}
    for e in events:
        p = partition_for(partition_key(e), PARTITIONS)
        last[p] = max(last.get(p, e.timestamp_ms), e.timestamp_ms)
    out = []
    for p in range(PARTITIONS):
        if last.get(p) == end:
            continue
        key = next(
            f"end-{p}-{i}"
            for i in range(10_000)
            if partition_for(f"end-{p}-{i}".encode(), PARTITIONS) == p
        )
        raw = {"messageId": key, "type": "track", "event": "Page Viewed", "anonymousId": key}
        out.append(event_from_json({**raw, "timestamp": end}))
    return out


def interleaved(ds: DataSet, seed: int, mean_run: int = 500) -> DataSet:
    """The same records, partitions interleaved at random; each partition keeps its order.

    Runs of 1..2*``mean_run`` records of one partition at a time, so partitions
    drift apart in event time (hours to days), unlike a fine-grained shuffle.
    """
    rng = random.Random(seed)
    queues: dict[int, list[int]] = {}
    for i, p in enumerate(ds.partitions):
        queues.setdefault(p, []).append(i)
    heads = dict.fromkeys(queues, 0)
    order: list[int] = []
    while heads:
        p = rng.choice(sorted(heads))
        run = rng.randint(1, 2 * mean_run)
        q, h = queues[p], heads[p]
        order.extend(q[h : h + run])
        if h + run >= len(q):
            del heads[p]
        else:
            heads[p] = h + run
    return DataSet(
        [ds.keys[i] for i in order],
        [ds.values[i] for i in order],
        [ds.events[i] for i in order],
        [ds.partitions[i] for i in order],
        days=ds.days,
        people=ds.people,
        late=ds.late,
        order=f"partitions interleaved at random (seed {seed}, runs of 1-{2 * mean_run})",
        flushed=ds.flushed,
    )


def with_bad_records(ds: DataSet, every: int, seed: int) -> DataSet:
    """``ds`` with a bad record after every ``every`` good ones, one of each kind in turn."""
    from bench.badrecords import bad_records

    rng = random.Random(seed)
    kinds = bad_records(ds.values[0])
    keys, values, events, parts = [], [], [], []
    reasons: dict[int, str] = {}
    for i in range(len(ds)):
        keys.append(ds.keys[i])
        values.append(ds.values[i])
        events.append(ds.events[i])
        parts.append(ds.partitions[i])
        if i % every == every - 1:
            reason, key, value = kinds[(i // every) % len(kinds)]
            key = key if key is not None else f"bad-{rng.randrange(10**9)}".encode()
            reasons[len(values)] = reason
            keys.append(key)
            values.append(value)
            events.append(None)
            parts.append(-1)
    return DataSet(
        keys,
        values,
        events,
        parts,
        ds.days,
        ds.people,
        ds.late,
        reasons,
        order=ds.order,
        flushed=ds.flushed,
    )


class Records(Protocol):
    """Keys and values to produce, in order (a :class:`DataSet` or a speed workload)."""

    keys: list[bytes]
    values: list[bytes]

    def __len__(self) -> int: ...


@dataclass
class Production:
    """A background producer of a data set, at full speed, one producer (in order)."""

    bootstrap: str
    topic: str
    ds: Records
    started: float = 0.0
    finished: float = 0.0
    sent: int = 0
    errors: list[str] = field(default_factory=list)
    thread: threading.Thread | None = None

    def start(self) -> Production:
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()
        return self

    def join(self, timeout: float = 1800) -> None:
        assert self.thread is not None
        self.thread.join(timeout)
        if self.thread.is_alive():
            raise TimeoutError(f"producing to {self.topic} took over {timeout:.0f} s")
        if self.errors:
            raise RuntimeError(f"{len(self.errors)} records not delivered: {self.errors[:2]}")

    def run(self) -> None:
        self.started = time.monotonic()
        produce(self.bootstrap, self.topic, self.ds.keys, self.ds.values, self)
        self.finished = time.monotonic()


def produce(
    bootstrap: str,
    topic: str,
    keys: list[bytes],
    values: list[bytes],
    progress: Production | None = None,
) -> float:
    """Produce in order with Pulse's producer settings (murmur2 keys); returns seconds."""
    from pipeline.config import Settings
    from pipeline.contract.produce import kafka_producer_config

    conf = kafka_producer_config(Settings(bootstrap_servers=bootstrap))
    conf.update(
        {"linger.ms": 20, "batch.size": 256 * 1024, "queue.buffering.max.messages": 500_000}
    )
    producer = Producer(conf)
    errors: list[str] = progress.errors if progress is not None else []

    def on_delivery(err: Any, _msg: Any) -> None:
        if err is not None:
            errors.append(str(err))

    started = time.monotonic()
    for i, (key, value) in enumerate(zip(keys, values, strict=True)):
        while True:
            try:
                producer.produce(topic, key=key, value=value, on_delivery=on_delivery)
                break
            except BufferError:
                producer.poll(0.05)
        producer.poll(0)
        if progress is not None:
            progress.sent = i + 1
    left = producer.flush(600)
    if left:
        errors.append(f"{left} records still queued after 600 s")
    if progress is None and errors:
        raise RuntimeError(f"{len(errors)} record(s) not delivered to {topic}: {errors[:1]}")
    return time.monotonic() - started
