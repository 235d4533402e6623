"""Every record of a partition, in offset order, once: a guard in front of each agent.

Faust (faust-streaming 0.11) can hand an agent a partition's records with a hole
in them: when a rebalance or the recovery that follows it suspends flow or
changes the consumer generation while a fetched batch is being delivered, the
rest of that batch is dropped, and the fetch position has already moved past
it. The consumer records the hole as a "gap" and commits over it, so the
records are never read again. The integration tests saw this under load:
``pulse.events`` records 33-37 of a partition never reached ingest, and one
person's checkout vanished.

:class:`OffsetGuard` notices, per partition, a record whose offset is beyond
the next one expected. The agent then seeks the partition back to the missing
offset and drops what arrives until that offset comes again, so records are
processed in order with nothing skipped. Records below the expected offset
(Faust's own seek back to the committed offset re-delivers them) were processed
already and are dropped too.

Faust has a filter of its own that gets in the way: it drops a delivered record
whose offset is below the last one it delivered of that partition. After a seek
(Faust's or ours) the rest of the batch fetched before it is still delivered
and raises that mark again, so the records the seek fetched anew are dropped,
and the consumer records a gap and commits over them. :class:`StreamReadOffsets`
turns that filter off for the agents' own topics (the guard drops repeats
itself) and leaves it on for the changelogs, whose recovery relies on it.

A hole can also be real: compaction, or a transactional producer's commit
markers, leave offsets with no record. After a seek the records after the
hole are delivered a second time; seeing one again while the missing offset
has not come proves the hole, and processing goes on from there. If no record
repeats within ``give_up_after`` drops, the guard accepts the hole (and the
caller logs it).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any


class Verdict(Enum):
    PROCESS = "process"  #: the next record: process it
    SEEN = "seen"  #: already processed (delivered again): drop it
    SEEK = "seek"  #: a hole before it: seek back to ``OffsetGuard.expected[p]``, drop it
    WAIT = "wait"  #: the seek is under way: drop it, it will come again
    HOLE = "hole"  #: the missing offsets do not exist: process it, the hole stays


@dataclass
class _Seeking:
    missing: int
    dropped: set[int] = field(default_factory=set)


@dataclass
class OffsetGuard:
    """Per partition, the offset the agent must process next."""

    give_up_after: int = 10_000
    expected: dict[int, int] = field(default_factory=dict)
    seeking: dict[int, _Seeking] = field(default_factory=dict)

    def check(self, partition: int, offset: int) -> Verdict:
        expected = self.expected.get(partition)
        if expected is None or offset == expected:
            self._advance(partition, offset)
            return Verdict.PROCESS
        if offset < expected:
            return Verdict.SEEN
        seeking = self.seeking.get(partition)
        if seeking is None:
            self.seeking[partition] = _Seeking(expected, {offset})
            return Verdict.SEEK
        if offset in seeking.dropped or len(seeking.dropped) >= self.give_up_after:
            self._advance(partition, offset)
            return Verdict.HOLE
        seeking.dropped.add(offset)
        return Verdict.WAIT

    def _advance(self, partition: int, offset: int) -> None:
        self.expected[partition] = offset + 1
        self.seeking.pop(partition, None)

    def forget(self, partition: int) -> None:
        """After the partition was revoked: its next owner starts where Faust seeks."""
        self.expected.pop(partition, None)
        self.seeking.pop(partition, None)


class StreamReadOffsets(defaultdict[Any, Any]):
    """Faust's per-partition "last delivered offset", off for ``topics``.

    Installed as the consumer's ``_read_offset`` (faust-streaming keeps no public
    hook for it; the version is pinned in constraints.txt).
    """

    def __init__(self, topics: Iterable[str], existing: Mapping[Any, Any] | None = None) -> None:
        super().__init__(lambda: None)
        self.topics = frozenset(topics)
        self.update(existing or {})

    def __getitem__(self, tp: Any) -> Any:
        return None if tp.topic in self.topics else super().__getitem__(tp)

    def __setitem__(self, tp: Any, offset: Any) -> None:
        if tp.topic not in self.topics:
            super().__setitem__(tp, offset)

    def update(self, *args: Any, **kwargs: Any) -> None:
        for tp, offset in dict(*args, **kwargs).items():
            self[tp] = offset
