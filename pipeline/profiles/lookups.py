"""Between the API's thread and the worker loop: lookups answered from committed state.

The worker loop is single-threaded and keeps person state decoded in a write
cache between commits, which nothing else may read while the loop changes it.
The API does not need it: every commit writes the partition's persons, links,
history and clocks to RocksDB in one write batch, once Kafka committed them
(``pipeline/worker/store.py``). So a lookup reads **the last commit** of the
person's partition, on the API's own thread, in one RocksDB multi-get (the
person, their history, their identity link and the partition's clocks, from
one consistent view), and never waits for the loop: its latency does not
depend on how busy the worker is, only on the CPU. A profile is at most one
commit interval (``PULSE_COMMIT_INTERVAL_MS``, 100 ms by default) behind the
loop, and never shows what an aborted transaction did.

**Readiness.** ``ready`` is the set of partitions whose stores are restored
and processed by this worker. The loop empties it, under :attr:`Lookups.lock`,
before it closes, wipes or restores a store (revoke, lost, an assignment,
shutdown), and sets it once the assignment's restore is done; a lookup checks
it and reads under the same lock. So the API answers ``503`` with
``Retry-After`` in between, never a stale or empty profile, and never reads a
store being closed.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from pipeline.core.clock import PartitionClock
from pipeline.profiles import history
from pipeline.profiles.view import ProfileView
from pipeline.worker import store as keys
from pipeline.worker.partitioner import partition_for
from pipeline.worker.records import decode_state
from pipeline.worker.store import PartitionStore, meta_key

log = logging.getLogger(__name__)

PERSON, TRIGGERS, PAGE = "person", "triggers", "page"
_CLOCKS = meta_key("clocks")


@dataclass(frozen=True)
class Answer:
    """``found`` (``raw``: its JSON), ``merged`` (into ``user``), ``unknown`` or ``moved``."""

    status: str
    raw: bytes = b""
    user: str = ""


class Lookups:
    """Shared by the API's thread (:meth:`lookup`) and the worker loop (everything else)."""

    def __init__(
        self,
        view: ProfileView,
        partitions: int,
        history_size: int,
        allowed_lateness_ms: int = 0,
        on_ready: Callable[[frozenset[int]], None] | None = None,
    ) -> None:
        self.view = view
        self.partitions = partitions
        self.history_size = history_size
        self.allowed_lateness_ms = allowed_lateness_ms
        self.on_ready = on_ready
        self.ready: frozenset[int] = frozenset()
        #: the loop's stores by partition (the loop's own dict; read only under the lock)
        self.stores: Mapping[int, PartitionStore] = {}
        self.lock = threading.Lock()

    # -- the API's side ---------------------------------------------------------------

    def partition_of(self, person_id: str) -> int:
        return partition_for(person_id.encode(), self.partitions)

    def lookup(self, kind: str, person_id: str) -> Answer:
        """The person as the last commit of their partition left them (any thread)."""
        p = self.partition_of(person_id)
        key = person_id.encode()
        with self.lock:
            store = self.stores.get(p)
            if store is None or p not in self.ready:
                return Answer("moved")
            wanted = [keys.PERSON + key, keys.HISTORY + key, keys.LINK + key, _CLOCKS]
            values = store.read_committed(wanted)
        return self._answer(kind, person_id, p, values)

    def _answer(self, kind: str, person: str, p: int, values: Sequence[bytes | None]) -> Answer:
        raw_state, raw_past, link, clocks = values
        state = None if raw_state is None else decode_state(raw_state)
        past = history.parse(raw_past)
        if state is None:
            if link is not None:  # the source partition's identity link
                return Answer("merged", user=link.decode())
            if kind == PERSON or not past["t"]:
                return Answer("unknown")
        body: dict[str, Any] = {}
        if kind in (PERSON, PAGE) and state is not None:
            body = self.view.profile(person, state, self._watermark(clocks))
            entered = past["s"]
            body["segments"] = [
                {"segment": s, "entered_ms": entered.get(s)} for s in body["segments"]
            ]
            body["partition"] = p
        if kind in (TRIGGERS, PAGE):
            body["person_id"] = person
            body["recent_triggers"] = history.entries(past)
        return Answer("found", orjson.dumps(body, option=orjson.OPT_NON_STR_KEYS))

    def _watermark(self, clocks: bytes | None) -> int:
        """The partition's watermark at its last commit (its clocks are committed with it)."""
        clock = PartitionClock(self.allowed_lateness_ms)
        if clocks is not None:
            stream_time = orjson.loads(clocks).get("stream_time")
            if stream_time is not None:
                clock.observe(int(stream_time))
        return clock.watermark_ms

    # -- the loop's side (hooks in pipeline/worker/loop.py) -----------------------------

    def attach(self, stores: Mapping[int, PartitionStore], tasks: Mapping[int, Any]) -> None:
        """New partition tasks: their outputs go to the history too."""
        self.stores = stores
        for task in tasks.values():
            task.history = history.History(task.store, self.history_size)

    def unready(self) -> None:
        """A rebalance or shutdown is about to close, wipe or restore stores."""
        with self.lock:  # a lookup reading a store has finished
            self.ready = frozenset()

    def assigned(self, partitions: list[int]) -> None:
        with self.lock:
            self.ready = frozenset(partitions)
        if self.on_ready is not None:
            self.on_ready(self.ready)

    def revoked(self) -> None:
        self.unready()
        if self.on_ready is not None:
            self.on_ready(self.ready)
