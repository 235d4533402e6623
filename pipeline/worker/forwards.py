"""Records a worker sent to ``pulse.events.by-person`` that their partition has not read yet.

A source partition's clock reaches a person partition through the broker, in
order behind the records the source forwarded there (``clocks.py``). When the
worker owns both partitions it can tell the person partition directly, and
save the round trip (a clock interval plus, with exactly_once, a commit)
that immediate triggers otherwise wait for. Told directly, the clock must not
get ahead of what the broker route would say: a source's time, as its person
partition learns it, is capped at the time the source had when it sent the
oldest record that partition has not read yet. That is exactly what the
broker route gives (each forwarded record says its source's time, and a clock
record comes after it), so the watermark, and every output, is the same.

Each record's entry gets its offset from the record's own delivery report; a
record whose offset is not known yet is unread. After an aborted transaction
or a new assignment the worker's own history is not enough (records committed
earlier may be read again, or were sent by the partition's previous owner):
the loop then waits until the person partition has read up to the end it had
at that moment (``Runtime.barriers``).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pipeline.worker.partition import PartitionTask


@dataclass(slots=True)
class Sent:
    """A record sent to a person partition: by which source, at what time of it, where."""

    source: int  # -1: a record that carries no data (a clock)
    at_ms: int
    offset: int | None = None  # from its delivery report; -1: not written


class Forwards:
    """Per person partition, the records sent to it, oldest first (see the module docs)."""

    def __init__(self) -> None:
        #: only the worker's own person partitions (``keep``): others are read elsewhere
        self.sent_to: dict[int, deque[Sent]] = {}

    def sent(self, partition: int, source: int, source_time_ms: int) -> Sent | None:
        """A record for ``partition``; the caller sets its offset from its delivery report.

        None for a partition of another worker: nothing is kept for it.
        """
        entries = self.sent_to.get(partition)
        if entries is None:
            return None
        entry = Sent(source, source_time_ms)
        entries.append(entry)
        return entry

    def keep(self, partitions: set[int]) -> None:
        """Track the records sent to ``partitions`` (the worker's own) and no others."""
        self.sent_to = {p: self.sent_to.get(p, deque()) for p in partitions}

    def pending(self, partition: int, source: int) -> bool:
        """Whether a record ``source`` sent to ``partition`` may not be read yet."""
        entries = self.sent_to.get(partition)
        return entries is not None and any(e.source == source for e in entries)

    def unread(self, partition: int, position: int) -> dict[int, int]:
        """Per source, the time it had when it sent the oldest record ``partition`` has not read.

        ``position``: the offset of the next record the partition's reader will
        process. Entries it has passed (or that were never written) are dropped.
        """
        entries = self.sent_to.get(partition)
        if not entries:
            return {}
        while entries:
            offset = entries[0].offset
            if offset is None or offset >= position:
                break
            entries.popleft()  # read (or never written: offset -1)
        caps: dict[int, int] = {}
        for e in entries:
            if e.source >= 0 and e.at_ms < caps.get(e.source, e.at_ms + 1):
                caps[e.source] = e.at_ms
        return caps


def tell_local(
    tasks: Mapping[int, PartitionTask], positions: Mapping[int, int], forwards: Forwards
) -> None:
    """Every task's source time to the other tasks' person partitions, capped (module docs).

    ``positions``: the person partitions that may be told (their barrier is
    read), each with the offset of the next record it will process.
    """
    for p, position in positions.items():
        inputs = tasks[p].inputs
        caps = forwards.unread(p, position)
        for s, task in tasks.items():
            if s != p:
                at = task.source.stream_time_ms
                cap = caps.get(s, at)
                inputs.raise_time(s, min(cap, at))
