"""The delivery book of one destination: what is pending, in which order, and what may commit.

Pure bookkeeping (no Kafka client, no HTTP, time passed in as ``now_ms``); the
worker (``pipeline.deliver.worker``) feeds it records and answers and carries
out the writes it asks for in :attr:`Book.outbox`.

**Entries and lanes.** Every activation read from ``pulse.activations.<dest>``
becomes an :class:`Entry` named by its *origin*, the offset where it was first
read in its partition. Entries wait in *lanes*: one lane per person for
``order: per_person`` (ordered by origin, only the head is ever in flight, so a
person's activations arrive in order), one lane per entry for ``unordered``.

**Retries survive a crash.** A failed entry is written to the destination's
retry topic (same partition number as its origin, headers carrying origin,
attempts, when it is due and a generation number) before its input offset may
commit. An entry queued in memory behind a head that waits for a retry is
written there too ("parked"), so the input partition's commit never waits on a
retry. When a retried entry is finally delivered or dead-lettered, a small
*marker* record follows it in the retry topic. After a restart the worker reads
each retry partition from its committed offset to its end before it sends
anything from that partition: latest generation per origin wins, markers remove
what was already done, and an input record whose origin is already known is a
duplicate. What is lost to a crash is at most the knowledge that something was
delivered: it is sent again, with the same ``webhook-id``.

**Timed delivery.** An activation with ``send_at_ms`` (a trigger with
``deliver_at: best_hour``) is held until then (wall clock): it is due at
``send_at_ms`` and written to the retry topic at once (like a retry, with no
attempt made), so its input offset commits and a restart keeps holding it.
With ``order: per_person`` the person's later activations wait behind it (their
order is kept); a destination that should not wait uses ``order: unordered``.
An activation whose ``send_at_ms`` has passed goes at once.

**Commits.** For each input and retry partition, :meth:`Book.positions` is the
lowest offset still needed (not delivered, dead-lettered or safely written
elsewhere), or one past the last read.
"""

from __future__ import annotations

import heapq
import itertools
from collections import OrderedDict
from collections.abc import Iterable
from typing import Any

from pipeline.deliver.config import Destination
from pipeline.deliver.entries import Entry, Kind, Lane, Offsets, Read, Write
from pipeline.deliver.policy import Judgement, Verdict, next_step

_seq = itertools.count()


def send_at_ms(activation: dict[str, Any] | None) -> int:
    """The activation's ``send_at_ms`` (timed delivery), 0 when it has none."""
    when = (activation or {}).get("send_at_ms")
    return when if isinstance(when, int) and not isinstance(when, bool) else 0


class Book:
    """Everything pending for one destination, across its assigned partitions."""

    def __init__(self, destination: Destination) -> None:
        self.destination = destination
        self.lanes: dict[tuple[int, Any], Lane] = {}
        self.origins: dict[tuple[int, int], Entry] = {}
        self.ready: OrderedDict[tuple[int, Any], Lane] = OrderedDict()
        self.timers: list[tuple[int, int, tuple[int, Any]]] = []
        self.offsets: dict[tuple[Kind, int], Offsets] = {}
        self.finished: dict[int, dict[int, int]] = {}  # partition -> origin -> gen resolved
        self.caught_up: set[int] = set()
        self.outbox: list[Write] = []
        self.disabled = False
        self.not_before_ms = 0
        self.pending = 0

    # -- reading ------------------------------------------------------------------------

    def _offsets(self, kind: Kind, partition: int) -> Offsets:
        found = self.offsets.get((kind, partition))
        if found is None:
            found = self.offsets[(kind, partition)] = Offsets()
        return found

    def add_main(self, rec: Read, now_ms: int) -> None:
        """An input record."""
        offsets = self._offsets("main", rec.partition)
        if (rec.partition, rec.offset) in self.origins:
            offsets.read(rec.offset, needed=False)  # already known from the retry topic
            return
        offsets.read(rec.offset)
        entry = rec.entry(rec.offset)
        entry.main_open = True
        hold = send_at_ms(entry.activation)
        if hold > now_ms:
            entry.due_ms = hold
        self._admit(entry, now_ms)
        if entry.activation is None:
            self._dead_letter(entry, "undecodable", now_ms)
        elif hold > now_ms and entry.main_open and entry.gen == 0 and entry.state == "idle":
            self._persist(entry)  # held until send_at: parked, so the input commits meanwhile

    def add_retry(self, rec: Read, meta: dict[str, int], now_ms: int) -> None:
        """A record of the retry topic; ``meta``: origin, gen, attempts, due/first ms, marker."""
        partition, offset = rec.partition, rec.offset
        offsets = self._offsets("retry", partition)
        origin, gen = meta["origin"], meta["gen"]
        entry = self.origins.get((partition, origin))
        if meta.get("marker"):
            offsets.read(offset, needed=False)
            if entry is not None and entry.state == "idle" and entry.gen <= gen:
                self._resolve(entry, now_ms, marker=False)  # done before a restart
            return
        if entry is None:
            finished = self.finished.get(partition, {})
            if finished.get(origin, -1) >= gen:
                offsets.read(offset, needed=False)
                if finished[origin] == gen:
                    del finished[origin]
                return
            offsets.read(offset)
            entry = rec.entry(origin)
            self._take_meta(entry, meta, offset)
            self._admit(entry, now_ms)
            if entry.activation is None:
                self._dead_letter(entry, "undecodable", now_ms)
            return
        if gen < entry.retry_gen or (gen == entry.retry_gen and entry.retry_offset is not None
                                     and offset < entry.retry_offset):  # fmt: skip
            offsets.read(offset, needed=False)  # superseded
            return
        offsets.read(offset)
        if gen > entry.gen and entry.state == "idle":
            self._take_meta(entry, meta, offset)  # newer than what memory knew
        self._hold(entry, gen, offset)
        if entry.lane is not None:
            self._refresh(entry.lane, now_ms)

    def _take_meta(self, entry: Entry, meta: dict[str, int], offset: int) -> None:
        entry.gen = meta["gen"]
        entry.attempts = meta.get("attempts", 0)
        entry.due_ms = meta.get("due_ms", 0)
        entry.first_ms = meta.get("first_ms", 0)
        entry.last_status = meta.get("status") or None

    def _hold(self, entry: Entry, gen: int, offset: int) -> None:
        """The retry record ``gen`` at ``offset`` now holds ``entry``: release older holders."""
        old = entry.retry_offset
        if old is not None and old != offset:
            self._offsets("retry", entry.partition).done(old)
        entry.retry_offset, entry.retry_gen = offset, gen
        self._release_main(entry)

    def _release_main(self, entry: Entry) -> None:
        if entry.main_open:
            entry.main_open = False
            self._offsets("main", entry.partition).done(entry.origin)

    def _admit(self, entry: Entry, now_ms: int) -> None:
        self.origins[(entry.partition, entry.origin)] = entry
        self.pending += 1
        if entry.activation is None:
            return
        lane_key: Any = entry.key if self.destination.per_person else entry.origin
        lane = self.lanes.get((entry.partition, lane_key))
        if lane is None:
            lane = self.lanes[(entry.partition, lane_key)] = Lane(entry.partition, lane_key)
        lane.insert(entry)
        self._park_followers(lane, now_ms, None if lane.entries[0] is entry else entry)
        self._refresh(lane, now_ms)

    # -- readiness ------------------------------------------------------------------------

    def _refresh(self, lane: Lane, now_ms: int) -> None:
        ident = (lane.partition, lane.key)
        self.ready.pop(ident, None)
        if not lane.entries:
            self.lanes.pop(ident, None)
            return
        head = lane.entries[0]
        if head.state != "idle" or lane.partition not in self.caught_up:
            return
        if head.due_ms <= now_ms:
            self.ready[ident] = lane
        else:
            heapq.heappush(self.timers, (head.due_ms, next(_seq), ident))

    def _park_followers(self, lane: Lane, now_ms: int, only: Entry | None = None) -> None:
        """Entries behind a head that waits for a retry move to the retry topic, off the input.

        ``only``: just that newcomer (the others were looked at when they came).
        """
        head = lane.entries[0]
        if head.state != "idle" or head.due_ms <= now_ms:
            return
        for entry in lane.entries[1:] if only is None else [only]:
            if entry.main_open and entry.gen == 0 and entry.state == "idle":
                self._persist(entry)

    def set_caught_up(self, partition: int, now_ms: int) -> None:
        """The retry partition has been read to its end: its lanes may send."""
        self.caught_up.add(partition)
        for lane in [ln for ln in self.lanes.values() if ln.partition == partition]:
            self._park_followers(lane, now_ms)
            self._refresh(lane, now_ms)

    def next_due_ms(self) -> int | None:
        while self.timers:
            due, _, ident = self.timers[0]
            lane = self.lanes.get(ident)
            head = lane.entries[0] if lane and lane.entries else None
            if head is None or head.state != "idle" or head.due_ms != due:
                heapq.heappop(self.timers)  # stale
                continue
            return due
        return None

    def _wake_timers(self, now_ms: int) -> None:
        while self.timers and self.timers[0][0] <= now_ms:
            _, _, ident = heapq.heappop(self.timers)
            lane = self.lanes.get(ident)
            if lane is not None:
                self._refresh(lane, now_ms)

    def take(self, now_ms: int, limit: int) -> list[Entry]:
        """Up to ``limit`` entries due now, a person's in order; they are in flight after."""
        self._wake_timers(now_ms)
        batch: list[Entry] = []
        while self.ready and len(batch) < limit:
            _, lane = self.ready.popitem(last=False)
            for entry in lane.entries:
                if len(batch) >= limit or entry.state != "idle" or entry.due_ms > now_ms:
                    break
                entry.state = "flight"
                entry.attempts += 1
                entry.first_ms = entry.first_ms or now_ms
                batch.append(entry)
        return batch

    def ready_count(self, now_ms: int) -> int:
        """Lanes with an entry to send now."""
        self._wake_timers(now_ms)
        return len(self.ready)

    # -- answers ------------------------------------------------------------------------

    def finish(self, batch: Iterable[Entry], judgement: Judgement, now_ms: int,
               status: int | None, error: str) -> None:  # fmt: skip
        """Apply the verdict on a request to the entries it carried."""
        verdict = judgement.verdict
        if verdict is Verdict.RETRY and judgement.after_ms is not None:
            self.not_before_ms = max(self.not_before_ms, now_ms + judgement.after_ms)
        if verdict is Verdict.GONE:
            self.disabled = True
        lanes: dict[int, Lane] = {}
        for entry in batch:
            if entry.state != "flight":
                continue  # dropped with its partition meanwhile
            entry.last_status, entry.last_error = status, error
            if entry.lane is not None:
                lanes[id(entry.lane)] = entry.lane
            if verdict is Verdict.DELIVERED:
                self._resolve(entry, now_ms)
            elif verdict is Verdict.REJECTED:
                self._dead_letter(entry, "rejected", now_ms)
            elif verdict is Verdict.GONE:
                entry.state = "idle"  # parked until the destination is enabled again
                entry.attempts -= 1
            else:
                step = next_step(self.destination.retry, entry.attempts, entry.first_ms,
                                 now_ms, judgement.after_ms)  # fmt: skip
                if step.due_ms is None:
                    self._dead_letter(entry, step.reason or "attempts_exhausted", now_ms)
                else:
                    entry.state, entry.due_ms = "idle", step.due_ms
                    self._persist(entry)
        for lane in lanes.values():
            if lane.entries:
                self._park_followers(lane, now_ms)
            self._refresh(lane, now_ms)

    def enable(self, now_ms: int) -> None:
        self.disabled = False
        for lane in list(self.lanes.values()):
            self._refresh(lane, now_ms)

    def _persist(self, entry: Entry) -> None:
        entry.gen += 1
        self.outbox.append(Write("retry", entry, entry.gen))

    def _dead_letter(self, entry: Entry, reason: str, now_ms: int) -> None:
        entry.state = "dlq"
        self.outbox.append(Write("dlq", entry, entry.gen, reason))

    def _resolve(self, entry: Entry, now_ms: int, *, marker: bool = True) -> None:
        """Delivered or dead-lettered: forget it, free its offsets, mark its retry records done."""
        entry.state = "done"
        self.pending -= 1
        self.origins.pop((entry.partition, entry.origin), None)
        self._release_main(entry)
        if entry.retry_offset is not None:
            self._offsets("retry", entry.partition).done(entry.retry_offset)
        if entry.gen > entry.retry_gen:  # a retry record not read back yet: drop it when it is
            self.finished.setdefault(entry.partition, {})[entry.origin] = entry.gen
        if entry.gen and marker:
            self.outbox.append(Write("marker", entry, entry.gen))
        lane = entry.lane
        if lane is not None:
            lane.entries.remove(entry)
            entry.lane = None
            self._refresh(lane, now_ms)

    # -- writes done --------------------------------------------------------------------

    def written(self, write: Write, error: str | None, now_ms: int) -> None:
        """The worker produced ``write`` (``error`` None) or failed to (it is asked again)."""
        entry = write.entry
        if write.kind == "marker" or entry.state == "done":
            return
        if error is not None:
            if write.kind == "dlq":
                self.outbox.append(write)
            elif write.gen == entry.gen:
                self._persist(entry)
            return
        if write.kind == "dlq":
            self._resolve(entry, now_ms)
        else:
            self._release_main(entry)

    # -- partitions and commits -----------------------------------------------------------

    def drop_partition(self, partition: int) -> None:
        """The partition went to another worker: forget everything of it."""
        for ident in [i for i in self.lanes if i[0] == partition]:
            self.ready.pop(ident, None)
            del self.lanes[ident]
        for origin_key in [k for k in self.origins if k[0] == partition]:
            entry = self.origins.pop(origin_key)
            entry.state = "done"
            self.pending -= 1
        self.offsets.pop(("main", partition), None)
        self.offsets.pop(("retry", partition), None)
        self.finished.pop(partition, None)
        self.caught_up.discard(partition)
        self.outbox = [w for w in self.outbox if w.entry.partition != partition]

    def positions(self) -> dict[tuple[Kind, int], int]:
        """Offset to commit per (topic kind, partition)."""
        out: dict[tuple[Kind, int], int] = {}
        for ident, offsets in self.offsets.items():
            position = offsets.position()
            if position is not None:
                out[ident] = position
        return out
