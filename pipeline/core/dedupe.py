"""Duplicate message ids within a horizon: dropped and counted, not reprocessed.

Producers retry, collectors replay, and ``pulse dlq replay`` re-drives records:
the same ``message_id`` may arrive more than once. :class:`Dedupe` remembers
the ids it has seen, bounded two ways:

* ``horizon_ms`` (event time): an id is remembered while its event time is
  within ``horizon_ms`` of the largest event time seen (never the wall clock);
* ``max_ids`` (count): at most this many ids, the oldest-seen forgotten first.

A duplicate that arrives after its id was forgotten is processed again, so
size the horizon above the producers' retry window (the default: 1 hour,
1 million ids, about 100 MB at most)::

    >>> seen = DedupeWindow(horizon_ms=60_000, max_ids=1_000).build()
    >>> seen.offer("m-1", 1_000), seen.offer("m-1", 2_000), seen.duplicates
    (True, False, 1)

The state round-trips through :meth:`Dedupe.snapshot` (plain JSON-able data)
so an adapter may persist it; the pure logic never reads a clock.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from mypy_extensions import mypyc_attr


@dataclass(frozen=True, slots=True)
class DedupeWindow:
    """How long and how many message ids are remembered; validated when built."""

    horizon_ms: int = 3_600_000
    max_ids: int = 1_000_000

    def __post_init__(self) -> None:
        if self.horizon_ms <= 0 or self.max_ids <= 0:
            raise ValueError("horizon_ms and max_ids must be positive")

    def build(self, snapshot: dict[str, Any] | None = None) -> Dedupe:
        """The logic object, empty or restored from :meth:`Dedupe.snapshot`."""
        dedupe = Dedupe(self)
        if snapshot is not None:
            dedupe.restore(snapshot)
        return dedupe


@mypyc_attr(allow_interpreted_subclasses=True)  # the worker journals it (worker/seen.py)
class Dedupe:
    """Seen message ids in first-seen order, with their event times."""

    def __init__(self, window: DedupeWindow) -> None:
        self.window = window
        self._seen: OrderedDict[str, int] = OrderedDict()
        self.max_time_ms: int | None = None
        self.duplicates = 0

    def __len__(self) -> int:
        return len(self._seen)

    def __contains__(self, message_id: object) -> bool:
        return message_id in self._seen

    def offer(self, message_id: str, timestamp_ms: int) -> bool:
        """True the first time ``message_id`` is offered; False (and counted) for a repeat."""
        if message_id in self._seen:
            self.duplicates += 1
            return False
        self._seen[message_id] = timestamp_ms
        if self.max_time_ms is None or timestamp_ms > self.max_time_ms:
            self.max_time_ms = timestamp_ms
        self._evict()
        return True

    def _evict(self) -> None:
        seen = self._seen
        while len(seen) > self.window.max_ids:
            seen.popitem(last=False)
        if self.max_time_ms is None:
            return
        cutoff = self.max_time_ms - self.window.horizon_ms
        # First-seen order is close to event-time order: evicting from the
        # front until a recent id is met is O(1) amortized. An old id behind a
        # recent one stays a little longer, never shorter, than the horizon.
        while seen:
            first_id, first_ts = next(iter(seen.items()))
            if first_ts >= cutoff:
                break
            del seen[first_id]

    def snapshot(self) -> dict[str, Any]:
        """Plain data: ``{"ids": [[id, ts], ...], "max": ts, "dup": n}``."""
        return {"ids": [[k, v] for k, v in self._seen.items()], "max": self.max_time_ms,
                "dup": self.duplicates}  # fmt: skip

    def restore(self, snapshot: dict[str, Any]) -> None:
        self._seen = OrderedDict((str(k), int(v)) for k, v in snapshot.get("ids", []))
        self.max_time_ms = snapshot.get("max")
        self.duplicates = int(snapshot.get("dup", 0))
        self._evict()
