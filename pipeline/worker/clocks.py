"""Event time across the repartition: source watermarks for by-person partitions.

Ingest reads ``pulse.events`` (keyed by device) and re-keys each event onto
``pulse.events.by-person``, so every by-person partition receives the events of
*every* source partition, interleaved in whatever order ingest happened to read
them. Taking "the largest event time seen" on a by-person partition would then
make events of a source partition that ingest read later look late.

So stream time is tracked where order holds, per **source** partition, and sent
along: after forwarding events, ingest broadcasts a *watermark record*
(``pulse-control: wm``, ``{"src": p, "t": stream_time_ms | null}``) to every
by-person partition. Because it follows the data on each destination partition,
when behavior reads ``(p, t)`` it has every record of source ``p`` up to ``t``.
A by-person partition's stream time is the **minimum** over source partitions
of their reported times (like Flink's and Kafka Streams' input watermarks);
``t = null`` means "empty and caught up" and leaves that source out. *Caught
up* counts what ingest has **processed**, never the consumer's fetch position:
records fetched but still queued for the agent would otherwise be declared
absent, time would run ahead on the other sources, and they would arrive late.

On a quiet source partition (no record for ``PULSE_IDLE_ADVANCE_MS``), ingest
reports its last stream time plus the wall-clock time that has passed, so live
timers still fire; replay never does this.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field

from pipeline.core.clock import NEG_INF_MS

CONTROL_HEADER = "pulse-control"
WATERMARK = b"wm"


@dataclass
class SourceClock:
    """Ingest's view of one ``pulse.events`` partition."""

    stream_time_ms: int = NEG_INF_MS
    last_record_wall: float = field(default_factory=time.monotonic)
    reported_ms: int | None = None
    reported_wall: float = 0.0
    reported_empty: bool = False
    #: The offset after the last record ingest processed (forwarded, dropped as a
    #: duplicate or dead-lettered); None until it processed one since assignment.
    next_offset: int | None = None
    #: When to ask again whether the partition is empty (monotonic seconds).
    next_check: float = 0.0

    def observe(self, timestamp_ms: int) -> None:
        self.stream_time_ms = max(self.stream_time_ms, timestamp_ms)
        self.last_record_wall = time.monotonic()

    def due(self, now: float, min_interval_s: float) -> bool:
        """A new stream time that has not been reported for ``min_interval_s``."""
        return (
            self.stream_time_ms > NEG_INF_MS
            and self.stream_time_ms != self.reported_ms
            and now - self.reported_wall >= min_interval_s
        )

    def idle_target(self, now: float, idle_advance_ms: int) -> int | None:
        """Stream time advanced by the wall clock on an idle partition, or None."""
        if idle_advance_ms <= 0 or self.stream_time_ms <= NEG_INF_MS:
            return None
        idle_ms = int((now - self.last_record_wall) * 1000)
        if idle_ms < idle_advance_ms:
            return None
        return self.stream_time_ms + idle_ms


def processed_all(next_offset: int | None, start_offset: int, highwater: int) -> bool:
    """Whether ingest has processed every record of a source partition.

    ``next_offset`` is what ingest processed since its assignment; without one
    it has processed nothing since it started at ``start_offset`` (the group's
    committed offset, else the earliest).
    """
    return (next_offset if next_offset is not None else start_offset) >= highwater


def watermark_record(source: int, stream_time_ms: int | None) -> bytes:
    return json.dumps({"src": source, "t": stream_time_ms}).encode()


def parse_watermark(value: bytes) -> tuple[int, int | None]:
    obj = json.loads(value)
    return int(obj["src"]), None if obj["t"] is None else int(obj["t"])


@dataclass
class InputWatermarks:
    """Behavior's view: the latest report of each of ``sources`` source partitions."""

    sources: int
    reports: dict[int, int | None] = field(default_factory=dict)

    def update(self, source: int, stream_time_ms: int | None) -> None:
        previous = self.reports.get(source)
        if stream_time_ms is None:
            if source not in self.reports:
                self.reports[source] = None
            return
        self.reports[source] = stream_time_ms if previous is None else max(previous, stream_time_ms)

    def stream_time_ms(self) -> int:
        """Minimum over reporting sources; minus infinity until every source reported."""
        if len(self.reports) < self.sources:
            return NEG_INF_MS
        times = [t for t in self.reports.values() if t is not None]
        return min(times) if times else NEG_INF_MS
