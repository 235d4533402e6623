"""A source partition's duplicate window, kept in its partition store.

Replay reads every record, so its :class:`~pipeline.core.dedupe.Dedupe`
remembers each message id for the whole window (``horizon_ms`` of event time,
at most ``max_ids``). A worker that restarts, or takes a partition over in a
rebalance, must remember the same ids, or a producer's retry that straddles
the restart is applied twice live and once in replay.

:class:`StoredDedupe` is that window with a journal: the ids first seen since
the last commit are written at the commit as one store record (``d<seq>``,
``[[id, event time], ...]``), in the same transaction as the persons and the
offsets, so the journal always matches what was applied. The window only ever
drops ids from its front (it is a contiguous suffix of the ids in first-seen
order), so it is rebuilt exactly from the journal's last ``len(window)``
entries; a journal record is deleted once all its ids have left the window.
The cost: one store record per commit, about 50 bytes per event on the
changelog; no record is read back from the broker on assignment.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from typing import Any

import orjson

from pipeline.core.dedupe import Dedupe, DedupeWindow
from pipeline.worker.store import SEEN, PartitionStore


class StoredDedupe(Dedupe):
    """A :class:`Dedupe` whose window is journaled in a :class:`PartitionStore`."""

    def __init__(self, window: DedupeWindow, store: PartitionStore) -> None:
        super().__init__(window)
        self.store = store
        self.fresh: list[tuple[str, int]] = []
        #: journal records in the store, oldest first: (key, number of ids)
        self.journal: deque[tuple[bytes, int]] = deque()
        self.journaled = 0
        self.next_seq = 0

    def offer(self, message_id: str, timestamp_ms: int) -> bool:
        new = super().offer(message_id, timestamp_ms)
        if new:
            self.fresh.append((message_id, timestamp_ms))
        return new

    def load(self, snapshot: dict[str, Any] | None) -> bool:
        """Rebuild the window saved with ``snapshot`` (the meta's ``seen``); False if none."""
        entries: list[tuple[str, int]] = []
        for key, value in self.store.scan(SEEN):
            ids = orjson.loads(value)
            entries.extend((str(i), int(t)) for i, t in ids)
            self.journal.append((SEEN + key, len(ids)))
            self.next_seq = int.from_bytes(key, "big") + 1
        self.journaled = len(entries)
        if snapshot is None:  # no window saved with the offsets: the loop refills it
            return False
        size = int(snapshot["n"])
        self._seen = OrderedDict(entries[len(entries) - size :] if size else [])
        self.max_time_ms = snapshot.get("max")
        return True

    def save(self) -> dict[str, Any]:
        """Journal the ids seen since the last save; the snapshot to keep with the offsets."""
        if self.fresh:
            key = SEEN + self.next_seq.to_bytes(8, "big")
            self.store.put(key, orjson.dumps(self.fresh))
            self.journal.append((key, len(self.fresh)))
            self.journaled += len(self.fresh)
            self.next_seq += 1
            self.fresh = []
        while self.journal and self.journaled - self.journal[0][1] >= len(self._seen):
            key, count = self.journal.popleft()
            self.store.put(key, None)
            self.journaled -= count
        return {"n": len(self._seen), "max": self.max_time_ms}
