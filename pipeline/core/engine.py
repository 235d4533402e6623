"""The per-partition processor: events and watermarks in, outputs out.

``Processor`` is what both adapters drive: the worker (one per assigned
partition) and ``pulse replay``. It owns the partition's clock and a timer
index, and reads/writes each person's state through a :class:`PersonStore`::

    store = MemoryStore()
    proc = Processor([AbsenceRule("checkout_abandoned", "checkout_started",
                                  "order_completed", 30 * 60_000)],
                     allowed_lateness_ms=0, store=store)
    outputs = proc.process(event)        # apply one event
    outputs = proc.advance_to(t_ms)      # move stream time (idle tick / end of input)

**Decided in event time, at the watermark.** An event is only *buffered* when it
arrives (it is at or above the watermark, so an earlier one may still come).
Everything a person's operators and rule stage decide -- a session closing, a
trait fold, a trigger, a cap, a segment change -- happens when the watermark
passes its event time, in event-time order, each person *settled* to the
watermark whenever it is touched (an event, a due timer, a merge). So the
outputs are a function of the events and their event times: any arrival order
within the allowed lateness, and any points at which the watermark moves,
give the same records.

A person's state is a plain dict (see :mod:`pipeline.core.store`). Timers are
durable because they *are* that state: the in-memory index (deadline, person)
is derived, and :meth:`Processor.rebuild_index` recreates it from the store.

**Redelivery.** When the caller names where an event was read
(``source=(partition, offset)``), the processor keeps, per person, the last
applied offset of each source partition (``"_src"``) and skips an event at or
below it: a person's events from one source partition arrive in offset order.

**Identity stitching** (:mod:`pipeline.core.linking`) moves an anonymous
person's state into a user: ``extract`` on the anonymous id, ``merge_in`` on the
user (``restore`` puts a refused state back). A link at event time ``T`` joins
the two persons for everything after ``T``: until the watermark reaches ``T``
the anonymous part is kept apart and decided alone, so it does not matter
whether the merge arrives before or after the user's own events.
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence
from typing import Any

from pipeline.core import gctune, linking
from pipeline.core.behavior import BehaviorOperator
from pipeline.core.clock import NEG_INF_MS, PartitionClock
from pipeline.core.deciding import Decider, put
from pipeline.core.events import Event
from pipeline.core.identity import IDENTITIES, IdentityRules, accept_merge, identity_record
from pipeline.core.linking import AWAIT, IDS, NEXT, PRE, SRC
from pipeline.core.opensession import plain
from pipeline.core.operator import Operator, Stage, late_record
from pipeline.core.outputs import LATE, Output
from pipeline.core.rules import RuleStage
from pipeline.core.store import MemoryStore, PersonState, PersonStore

__all__ = [
    "AWAIT",
    "IDS",
    "SRC",
    "MemoryStore",
    "Operator",
    "PersonState",
    "PersonStore",
    "Processor",
    "Stage",
    "late_record",
]

_NEXT = NEXT


class Processor:
    """Runs ``operators`` (and a rule ``stage``) for every person of one partition.

    The first processor of a process tunes the garbage collector for many
    long-lived person states (:mod:`pipeline.core.gctune`; ``tune_gc=False``
    leaves it as it is).
    """

    def __init__(
        self,
        operators: Sequence[Operator],
        *,
        allowed_lateness_ms: int,
        store: PersonStore,
        stage: Stage | None = None,
        identity: IdentityRules | None = None,
        tune_gc: bool = True,
    ) -> None:
        if tune_gc:
            gctune.tune()  # once per process: see pipeline.core.gctune
        self.operators = tuple(operators)
        self.stage = stage
        self.decider = Decider(self.operators, stage)
        self.identity = IdentityRules() if identity is None else identity
        self.clock = PartitionClock(allowed_lateness_ms)
        self.store = store
        self._timers: list[tuple[int, str]] = []  # heap of (deadline_ms, person_id)
        self.late_count = 0
        self.redelivered_count = 0

    @property
    def watermark_ms(self) -> int:
        return self.clock.watermark_ms

    @property
    def pending_timers(self) -> int:
        return len(self._timers)

    def rebuild_index(self) -> int:
        """Recreate the timer index from persisted state; returns timers found."""
        self._timers = [
            (state[_NEXT], person) for person, state in self.store.items() if state.get(_NEXT)
        ]
        heapq.heapify(self._timers)
        return len(self._timers)

    def process(
        self,
        event: Event,
        person_id: str | None = None,
        *,
        advance_clock: bool = True,
        awaits: str | None = None,
        source: tuple[int, int] | None = None,
    ) -> list[Output]:
        """Take one event, then settle whatever its stream time made final.

        With ``advance_clock=False`` the event does not move stream time: the
        caller drives it with :meth:`advance_to` (the worker does, from the
        stream times of the source partitions).

        ``awaits`` names an anonymous id whose state is on its way to this person
        (the link crosses partitions): until :meth:`merge_in` brings it, the
        person is decided no further than this event's time, so nothing after
        the link is decided on half of the person.

        ``source`` is the (partition, offset) the event was read from upstream:
        an event at or below the person's last applied offset of that partition
        is a redelivery and changes nothing (see the module docs).
        """
        person = person_id or event.person_id
        state = self.store.load(person)
        if source is not None and state is not None and linking.applied(state, source):
            self.redelivered_count += 1
            return []
        if self.clock.is_late(event.timestamp_ms):
            self.late_count += 1
            return [Output(LATE, person, late_record(event, self.clock.watermark_ms))]
        if advance_clock:
            self.clock.observe(event.timestamp_ms)
        watermark = self.clock.watermark_ms
        state = {} if state is None else state
        outputs: list[Output] = []
        self.decider.settle(person, state, watermark, outputs)
        if source is not None:
            linking.mark(state, source)
        if awaits is not None and awaits not in (state.get(IDS) or ()):
            linking.hold(state, awaits, event.timestamp_ms)
        target, target_id, cap = linking.route(state, event, person)
        if not target_id:  # kept for a merge on its way (see linking.hold)
            self._save(person, state)
            return outputs
        self._take(
            target, event, target_id, watermark if cap is None else min(cap, watermark), outputs
        )
        self._save(person, state)
        if self._timers and self._timers[0][0] <= watermark:
            outputs.extend(self._fire_due())
        return outputs

    def _take(
        self,
        target: PersonState,
        event: Event,
        target_id: str,
        watermark: int,
        outputs: list[Output],
    ) -> None:
        snapshot: Any  # any operator's (declared: else the first branch's type is checked)
        for op in self.operators:
            # (isinstance: the compiled core calls the behavior operator directly)
            if isinstance(op, BehaviorOperator):
                snapshot, out = op.on_event(target.get(op.name), event, target_id, watermark)
            else:
                snapshot, out = op.on_event(target.get(op.name), event, target_id, watermark)
            put(target, op.name, snapshot)
            if out:
                outputs.extend(out)
        stage = self.stage
        if isinstance(stage, RuleStage):  # noqa: SIM114 (a direct call when compiled)
            outputs.extend(stage.after_event(target, event, target_id, watermark))
        elif stage is not None:
            outputs.extend(stage.after_event(target, event, target_id, watermark))

    def advance_to(self, stream_time_ms: int) -> list[Output]:
        """Move stream time forward without an event (idle tick, end of replay)."""
        self.clock.observe(stream_time_ms)
        return self._fire_due()

    # -- identity stitching ---------------------------------------------------------

    def extract(self, person_id: str) -> PersonState | None:
        """Remove ``person_id``'s state from the store and return it (None if none).

        The person's entry in the timer index goes stale and is skipped when it
        comes due. The state keeps what is not decided yet; whoever merges it
        decides it (:meth:`merge_in`). It is plain JSON data (sessions as their
        stored dicts), so it can travel in a record encoded by ``json``.
        """
        state = self.store.load(person_id)
        if state is None:
            return None
        self.store.save(person_id, None)
        out: PersonState = {k: plain(v) for k, v in state.items() if k != _NEXT}
        return out or None

    def merge_in(
        self,
        person_id: str,
        other: PersonState,
        other_id: str,
        *,
        event_time_ms: int | None = None,
        message_id: str | None = None,
    ) -> list[Output]:
        """Merge ``other`` (the state :meth:`extract` returned for ``other_id``) into ``person_id``.

        ``event_time_ms`` is the link's event time ``T`` (without it the
        persons are joined at once, at the watermark). Until the watermark
        reaches ``T`` the merged-in person stays apart inside the user's
        state and is decided alone (its outputs keyed by ``other_id``); at
        ``T`` both are merged (each operator's and the stage's ``merge``) and
        decided as one from then on. A merge that comes
        after the watermark passed ``T`` is joined at once (best effort: what
        either person decided after ``T`` stands).

        Returns an ``identities`` ``merge`` record and whatever became due.
        ``other_id`` already among the person's merged ids (``"_ids"``) means
        the merge was delivered again: nothing changes and nothing is emitted.

        Beyond ``max_anonymous_per_user`` the merge is refused: nothing changes
        and the only output is an ``identities`` ``conflict`` record (reason
        ``too_many_anonymous_ids``). The caller still holds ``other`` and must
        put it back under ``other_id`` (:meth:`restore`, on the processor that
        owns ``other_id``). ``message_id`` names the cause in the records.
        """
        state = self.store.load(person_id) or {}
        if other_id in (state.get(IDS) or ()):
            self.redelivered_count += 1  # the merge read again (at-least-once delivery)
            return []
        was_waiting = linking.release(state, other_id)
        merged_ids: list[str] = list(state.get(IDS) or ())
        incoming = [*(other.get(IDS) or ()), other_id]
        ids = merged_ids + [i for i in dict.fromkeys(incoming) if i not in merged_ids]
        accepted, reason = accept_merge(merged_ids, other_id, self.identity)
        if accepted and len(ids) > self.identity.max_anonymous_per_user:
            accepted, reason = False, "too_many_anonymous_ids"
        watermark = self.clock.watermark_ms
        at = max(watermark, 0) if event_time_ms is None else event_time_ms
        kind = "merge" if accepted else "conflict"
        record = identity_record(kind, other_id, person_id, reason, at, message_id)
        outputs = [Output(IDENTITIES, person_id, record)]
        waiting = linking.pending_part(state, other_id)
        if not accepted:
            if was_waiting:  # the barrier lifts: decide what waited for the merge
                for rec in waiting[3] if waiting else ():  # its events stay the person's
                    self._take(state, Event.from_record(rec), person_id, watermark, outputs)
                self.decider.settle(person_id, state, watermark, outputs)
                self._save(person_id, state)
            return outputs
        state[IDS] = ids
        sources = linking.merged_sources(state.get(SRC), other.get(SRC))
        if sources:
            state[SRC] = sources
        part = {k: v for k, v in other.items() if k not in linking.RESERVED}
        if waiting is not None:
            at = min(at, waiting[0])
            for rec in waiting[3]:
                self._take(part, Event.from_record(rec), other_id, watermark, outputs)
        if at > watermark or waiting is not None:
            linking.add_pre(state, at, other_id, part)
        else:
            if event_time_ms is not None:  # decided apart up to the link (if behind it)
                self.decider.settle(other_id, part, at, outputs)
            self.decider.join(state, part, min(at, watermark))
        self.decider.settle(person_id, state, watermark, outputs)
        self._save(person_id, state)
        return outputs

    def restore(self, person_id: str, state: PersonState) -> list[Output]:
        """Put back a state :meth:`extract` took (after a refused merge).

        Decided up to the current watermark, then merged with whatever
        ``person_id`` has meanwhile (no identity record, no id check).
        """
        watermark = self.clock.watermark_ms
        outputs: list[Output] = []
        back = {k: v for k, v in state.items() if k != _NEXT}
        current = self.store.load(person_id)
        if current is not None:
            self.decider.settle(person_id, current, watermark, outputs)
            self.decider.settle(person_id, back, watermark, outputs)
            ids = dict.fromkeys([*(current.get(IDS) or ()), *(back.get(IDS) or ())])
            part = {k: v for k, v in back.items() if k not in linking.RESERVED}
            self.decider.join(current, part, watermark)
            if ids:
                current[IDS] = list(ids)
            back = current
        self.decider.settle(person_id, back, watermark, outputs)
        self._save(person_id, back)
        return outputs

    def _fire_due(self) -> list[Output]:
        watermark = self.clock.watermark_ms
        outputs: list[Output] = []
        timers = self._timers
        while timers and timers[0][0] <= watermark and watermark > NEG_INF_MS:
            deadline, person = heapq.heappop(timers)
            state = self.store.load(person)
            if state is None or state.get(_NEXT) != deadline:
                continue  # stale index entry: the person's timer moved or was cleared
            del state[_NEXT]  # popped from the index: _save re-indexes what remains
            self.decider.settle(person, state, watermark, outputs)
            self._save(person, state)
        return outputs

    def _save(self, person: str, state: PersonState) -> None:
        nxt = self.decider.deadline(state)
        for at, _, part, _ in state.get(PRE) or ():
            if part is None:
                continue  # announced, not arrived: merge_in settles it
            d = self.decider.deadline(part)
            d = at if d is None else min(d, at)
            if nxt is None or d < nxt:
                nxt = d
        held = linking.held_until(state)
        if held is not None and nxt is not None and nxt > held:
            nxt = None  # decided when the awaited merge arrives
        previous = state.pop(_NEXT, None)
        if nxt is not None:
            state[_NEXT] = nxt
            if nxt != previous:
                heapq.heappush(self._timers, (nxt, person))
        # a person whose operators all let go (e.g. evicted) is gone, merged ids included
        self.store.save(person, state if linking.keeps(state) else None)
