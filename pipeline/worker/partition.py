"""Faust table access for one partition outside per-event stream iteration.

A Faust table reads and writes the RocksDB database and changelog partition of
the stream's "current event". Inside ``stream.take_events`` the agent's task
has no current event (the events are gathered by a background task), so a
batch's table access is made under one of its own events of that partition.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from faust.streams import _current_event


@contextmanager
def in_partition_of(event: Any) -> Iterator[None]:
    """Table reads and writes in the block go to ``event``'s partition."""
    token = _current_event.set(weakref.ref(event))
    try:
        yield
    finally:
        _current_event.reset(token)
