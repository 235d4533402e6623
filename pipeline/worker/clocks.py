"""Event time across partitions: each person partition's watermark.

A person partition ``p`` receives events from every source partition of
``pulse.events``: its own directly (an event whose key already is its person
is processed where it lands) and the others' through ``pulse.events.by-person``.
Its stream time is the **minimum** over source partitions of how far each has
got (:class:`InputClocks`), like Flink's and Kafka Streams' input watermarks.
Since lateness is judged on the source partition (``source.py``), every event
that is not late there is at or above this watermark, so a timer at ``D``
fires only once every event before ``D`` has been applied.

How far a source got reaches ``p`` in order with the source's data: each
forwarded record names its source's stream time (header ``pulse-src``), and the
owner of a source sends a small *clock* record (``pulse-control: clock``) to a
person partition only when its time moved and no data record said so (every
``PULSE_CLOCK_INTERVAL_MS``). Under load, data carries time and control
records stay a few percent of the data.

**Idle sources.** A source partition counts as idle only when its owner has
processed everything the broker holds for it and has seen no new record for
``PULSE_IDLE_TIMEOUT_MS`` (wall clock); it stops being idle with its next
record. An idle source does not hold the watermark back while others are
active; if every source is idle, the watermark is the smallest stream time
among sources that have one. A source idle for ``PULSE_IDLE_ADVANCE_MS`` is
*quiet*: once every source is quiet, the watermark is the largest stream
time, and then moves on with the wall clock (a quiet system decides its
timers, as replay does at the end of its input; 0 turns this off). An event
older than the watermark that reaches a source after it went idle or quiet
is late there (live only: replay has no pauses). An idle report is trusted
only while the person partition has read everything the broker holds for it
(a newer report may wait there, behind a backlog), and whenever a source
wakes up, exclusions pause for one idle timeout so the other sources' owners
can see their own new records first (a producer that starts writing all
partitions at once must not make one partition's first records look old).
Replay has no wall clock and no idleness.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from pipeline.core.clock import NEG_INF_MS

CONTROL_HEADER = "pulse-control"
CLOCK = b"clock"
#: On a forwarded record: ``<source partition>:<offset>:<source stream time>``.
SOURCE_HEADER = "pulse-src"


def source_header(partition: int, offset: int, stream_time_ms: int) -> bytes:
    return b"%d:%d:%d" % (partition, offset, stream_time_ms)


def parse_source(value: bytes) -> tuple[int, int, int]:
    partition, offset, stream_time = value.split(b":")
    return int(partition), int(offset), int(stream_time)


#: A source's state in a clock report.
ACTIVE, IDLE, QUIET = 0, 1, 2


def clock_record(reports: dict[int, tuple[int, int]]) -> bytes:
    """``{source: [stream time, ACTIVE | IDLE | QUIET]}`` as the value of a clock record."""
    return json.dumps({str(s): [t, level] for s, (t, level) in sorted(reports.items())}).encode()


def parse_clock(value: bytes) -> dict[int, tuple[int, int]]:
    obj: dict[str, list[Any]] = json.loads(value)
    return {int(s): (int(t), int(level)) for s, (t, level) in obj.items()}


@dataclass
class InputClocks:
    """Person partition ``p``'s view of every source partition: time and idleness."""

    sources: int
    idle_timeout_s: float
    times: dict[int, int] = field(default_factory=dict)
    idle: set[int] = field(default_factory=set)
    quiet: set[int] = field(default_factory=set)
    paused_until: float = 0.0

    def observe(self, source: int, stream_time_ms: int, level: int, now: float) -> None:
        """A source reached ``stream_time_ms`` (never goes back) and is active, idle or quiet."""
        if stream_time_ms > self.times.get(source, NEG_INF_MS):
            self.times[source] = stream_time_ms
        else:
            self.times.setdefault(source, stream_time_ms)
        if level >= IDLE:
            self.idle.add(source)
            if level >= QUIET:
                self.quiet.add(source)
            else:
                self.quiet.discard(source)
        elif source in self.idle:
            self.idle.discard(source)
            self.quiet.discard(source)
            self.paused_until = now + self.idle_timeout_s

    def raise_time(self, source: int, stream_time_ms: int) -> None:
        """A source's time, told by its owner in this process; its level is left as it is."""
        if source not in self.times or stream_time_ms > self.times[source]:
            self.times[source] = stream_time_ms

    def stream_time_ms(self, now: float, caught_up: bool = True) -> int:
        """Minimum over sources that hold time back; minus infinity until all were heard of.

        ``caught_up``: everything the broker holds for this partition's input
        (``pulse.events.by-person[p]``) was read. Until then a newer report may
        be waiting there, so no source counts as idle.
        """
        if len(self.times) < self.sources:
            return NEG_INF_MS
        if now < self.paused_until or not caught_up:
            return min(self.times.values())
        active = [t for s, t in self.times.items() if s not in self.idle]
        if active:
            return min(active)
        if len(self.quiet) == len(self.times):
            return max(self.times.values())
        known = [t for t in self.times.values() if t > NEG_INF_MS]
        return min(known) if known else NEG_INF_MS

    def snapshot(self) -> dict[str, Any]:
        return {
            "t": {str(s): t for s, t in self.times.items()},
            "idle": sorted(self.idle),
            "quiet": sorted(self.quiet),
        }

    def restore(self, snapshot: dict[str, Any], now: float) -> None:
        """Back from a snapshot; exclusions pause for one idle timeout (owners re-check)."""
        self.times = {int(s): int(t) for s, t in snapshot.get("t", {}).items()}
        self.idle = {int(s) for s in snapshot.get("idle", [])}
        self.quiet = {int(s) for s in snapshot.get("quiet", [])}
        self.paused_until = now + self.idle_timeout_s


@dataclass
class SourceActivity:
    """The owner's view of one source partition: whether it is idle."""

    last_record: float
    idle: bool = False

    def saw_record(self, now: float) -> bool:
        """A record came; True if the partition was idle (it woke up)."""
        self.last_record = now
        woke, self.idle = self.idle, False
        return woke

    def check(
        self, now: float, caught_up: bool, quiet_since: float, timeout_s: float, quiet_s: float
    ) -> int:
        """The source's level: ACTIVE, IDLE or QUIET.

        IDLE: caught up, and nothing new since ``quiet_since`` for ``timeout_s``;
        QUIET: idle, and ``quiet_s`` since its last record (0: never).
        """
        self.idle = caught_up and now - max(self.last_record, quiet_since) >= timeout_s
        if not self.idle:
            return ACTIVE
        if quiet_s > 0 and now - self.last_record >= quiet_s:
            return QUIET
        return IDLE
