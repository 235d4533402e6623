"""Garbage-collector settings for a process that keeps many persons in memory.

The core allocates small containers for every event (buffered entries, count
buckets, session dicts) and keeps thousands of persons' states alive. CPython's
cyclic collector scans the young objects every 700 net allocations and, now and
then, every tracked object: with many persons in memory that grows with their
number, about a tenth of the replay time for 2,000 persons (issue 12). Person
states are trees of dicts and lists without reference cycles (reference counting
frees them), so collecting less often keeps the same memory.

:func:`tune` runs once per process (the first :class:`~pipeline.core.engine.Processor`
calls it): it moves what exists then (modules, the compiled topology) out of the
collector's sight with :func:`gc.freeze`, and raises the young generation's
threshold to 50,000 allocations (the older generations' to at least 20 and 100).
"""

from __future__ import annotations

import gc
from functools import cache

YOUNG_THRESHOLD = 50_000


@cache
def tune() -> None:
    """Freeze what exists and collect less often (once per process; see the module doc)."""
    gc.collect()
    gc.freeze()
    young, middle, old = gc.get_threshold()
    if young:  # 0 means the collector was switched off: leave it so
        gc.set_threshold(max(young, YOUNG_THRESHOLD), max(middle, 20), max(old, 100))
