"""Stream time and watermarks, per partition.

Stream time is the largest event time seen on the partition; the watermark is
stream time minus the allowed lateness. An event whose time is below the
watermark is *late*: it can no longer change a decision that was already
made, so the core routes it to the late-events output instead of applying it.

    >>> clock = PartitionClock(allowed_lateness_ms=5_000)
    >>> clock.observe(100_000)
    >>> clock.watermark_ms
    95000
    >>> clock.is_late(94_999)
    True

Timers fire when the watermark reaches their deadline: "no purchase within
30 min" is decided once every event before ``start + 30 min`` has been seen.
"""

from __future__ import annotations

from dataclasses import dataclass

#: Before any event, stream time is "minus infinity" (and so is the watermark).
NEG_INF_MS = -(2**62)
#: Replay ends by moving the watermark here, which fires every pending timer.
POS_INF_MS = 2**62


@dataclass(slots=True)
class PartitionClock:
    """Event-time clock of one input partition."""

    allowed_lateness_ms: int
    stream_time_ms: int = NEG_INF_MS

    def __post_init__(self) -> None:
        if self.allowed_lateness_ms < 0:
            raise ValueError("allowed_lateness_ms must be >= 0")

    @property
    def watermark_ms(self) -> int:
        if self.stream_time_ms <= NEG_INF_MS:
            return NEG_INF_MS
        if self.stream_time_ms >= POS_INF_MS:
            return POS_INF_MS
        return self.stream_time_ms - self.allowed_lateness_ms

    def is_late(self, timestamp_ms: int) -> bool:
        return timestamp_ms < self.watermark_ms

    def observe(self, timestamp_ms: int) -> None:
        """Advance stream time to ``timestamp_ms`` if it is later (never backwards)."""
        self.stream_time_ms = max(self.stream_time_ms, timestamp_ms)
