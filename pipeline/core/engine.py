"""The per-partition processor: events and watermarks in, outputs out.

``Processor`` is what both adapters drive: the Faust behavior agent (one per
assigned partition) and ``pulse replay``. It owns the partition's clock and a
timer index, and reads/writes each person's state through a
:class:`PersonStore` once per event::

    store = MemoryStore()
    proc = Processor([AbsenceRule("checkout_abandoned", "checkout_started",
                                  "order_completed", 30 * 60_000)],
                     allowed_lateness_ms=0, store=store)
    outputs = proc.process(event)        # apply one event
    outputs = proc.advance_to(t_ms)      # move stream time (idle tick / end of input)

A person's state is a plain dict ``{operator_name: snapshot, "_next": deadline,
"_ids": [merged anonymous id, ...], "_src": {source partition: offset}}``.
Timers are durable because they *are*
that state: the in-memory index (deadline, person) is derived, and
:meth:`Processor.rebuild_index` recreates it from the store after a restart or
rebalance.

**Redelivery.** Kafka delivers at least once: after a restart, a rebalance or
Faust's recovery seek, records since the last committed offset come again, and
ingest may forward an event a second time. When the caller names where an
event was read (``source=(partition, offset)`` of the original record), the
processor keeps, per person, the last applied offset of each source partition
(``"_src"``, written with the state, so it is exactly as durable) and skips an
event at or below it: a person's events from one source partition arrive in
offset order, so this is exact, and costs one integer per source partition.

**Identity stitching** moves a person's state to another person, in two
steps that may run on different partitions (the worker) or on one processor
(``pulse replay``)::

    state = proc.extract(anonymous_id)            # removed from the store
    if state is not None:
        outputs = proc.merge_in(user_id, state, anonymous_id)

``merge_in`` merges with every operator's and the stage's ``merge`` and
evaluates the merged person at the current watermark, so a timer that was
pending for either person and is due fires now, once, for the merged person.
It refuses a merge beyond ``IdentityRules.max_anonymous_per_user`` (an
``identities`` conflict record is all it returns); the caller then puts the
state back with :meth:`Processor.restore`.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, Protocol

from pipeline.core.clock import NEG_INF_MS, PartitionClock
from pipeline.core.events import Event
from pipeline.core.identity import IDENTITIES, IdentityRules, accept_merge, identity_record
from pipeline.core.outputs import LATE, Output

PersonState = dict[str, Any]
_NEXT = "_next"
#: The anonymous ids merged into a person (identity stitching), bounded by the rules.
IDS = "_ids"
#: Anonymous ids whose merge into this person is on its way (a barrier, below).
AWAIT = "_await"
#: Per source partition, the offset of the last source record applied to this
#: person: a record seen again (redelivered) is recognised and skipped.
SRC = "_src"
_RESERVED = frozenset({_NEXT, IDS, AWAIT, SRC})


class Operator(Protocol):
    """A rule, session window or trait computed per person (see ``absence.py``)."""

    @property
    def name(self) -> str: ...

    def on_event(
        self, state: Any, event: Event, person_id: str, watermark_ms: int
    ) -> tuple[Any, list[Output]]: ...

    def on_watermark(
        self, state: Any, person_id: str, watermark_ms: int
    ) -> tuple[Any, list[Output]]: ...

    def next_deadline_ms(self, state: Any) -> int | None: ...

    def merge(self, a: Any, b: Any) -> Any:
        """Both persons' snapshots as one (``a`` stays, ``b`` merges in); inputs untouched."""


class Stage(Protocol):
    """Runs after the operators with the whole person state (rules read traits)."""

    def after_event(
        self, person: PersonState, event: Event, person_id: str, watermark_ms: int
    ) -> list[Output]: ...

    def after_watermark(
        self, person: PersonState, person_id: str, watermark_ms: int
    ) -> list[Output]: ...

    def next_deadline_ms(self, person: PersonState) -> int | None: ...

    def merge(self, a: PersonState, b: PersonState) -> PersonState:
        """The stage's keys of two merged person states (``a`` stays); inputs untouched."""


class PersonStore(Protocol):
    """Where person state lives: a Faust table in the worker, a dict in replay."""

    def load(self, person_id: str) -> PersonState | None: ...

    def save(self, person_id: str, state: PersonState | None) -> None:
        """Persist ``state``; ``None`` deletes the person's entry."""

    def items(self) -> Iterable[tuple[str, PersonState]]: ...


class MemoryStore:
    """A :class:`PersonStore` in a dict (replay and tests)."""

    def __init__(self) -> None:
        self.data: dict[str, PersonState] = {}

    def load(self, person_id: str) -> PersonState | None:
        return self.data.get(person_id)

    def save(self, person_id: str, state: PersonState | None) -> None:
        if state is None:
            self.data.pop(person_id, None)
        else:
            self.data[person_id] = state

    def items(self) -> Iterator[tuple[str, PersonState]]:
        return iter(list(self.data.items()))


def late_record(event: Event, watermark_ms: int) -> dict[str, Any]:
    """The record written to the late-events output for an event below the watermark."""
    return {
        "message_id": event.message_id,
        "person_id": event.person_id,
        "timestamp_ms": event.timestamp_ms,
        "watermark_ms": watermark_ms,
        "reason": "beyond_allowed_lateness",
        "event": event.to_record(),
    }


class Processor:
    """Runs ``operators`` for every person of one partition, in event time."""

    def __init__(
        self,
        operators: Sequence[Operator],
        *,
        allowed_lateness_ms: int,
        store: PersonStore,
        stage: Stage | None = None,
        identity: IdentityRules | None = None,
    ) -> None:
        self.operators = tuple(operators)
        self.stage = stage
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
        """Apply one event, then fire whatever timers its stream time made due.

        With ``advance_clock=False`` the event does not move stream time: the
        caller drives it with :meth:`advance_to` (the worker does, from the
        watermarks of the upstream partitions; see ``pipeline/worker/app.py``).

        ``awaits`` names an anonymous id whose state is on its way to this person
        (the worker's merge crosses partitions): until :meth:`merge_in` brings it,
        the person's timers and session closes wait, so they never run on half
        of the person.

        ``source`` is the (partition, offset) the event was read from upstream:
        an event at or below the person's last applied offset of that partition
        is a redelivery and changes nothing (see the module docs).
        """
        person = person_id or event.person_id
        loaded: PersonState | None = None
        if source is not None:
            loaded = self.store.load(person)
            if loaded is not None and _applied(loaded, source):
                self.redelivered_count += 1
                return []
        watermark = self.clock.watermark_ms
        if self.clock.is_late(event.timestamp_ms):
            self.late_count += 1
            return [Output(LATE, person, late_record(event, watermark))]
        if advance_clock:
            self.clock.observe(event.timestamp_ms)
        watermark = self.clock.watermark_ms
        state = (loaded if source is not None else self.store.load(person)) or {}
        if source is not None:
            _mark(state, source)
        if awaits is not None and awaits not in (state.get(IDS) or ()):
            state[AWAIT] = sorted({*(state.get(AWAIT) or ()), awaits})
        outputs: list[Output] = []
        for op in self.operators:
            snapshot, out = op.on_event(state.get(op.name), event, person, watermark)
            _put(state, op.name, snapshot)
            outputs.extend(out)
        if self.stage is not None:
            outputs.extend(self.stage.after_event(state, event, person, watermark))
        self._save(person, state)
        outputs.extend(self._fire_due())
        return outputs

    def advance_to(self, stream_time_ms: int) -> list[Output]:
        """Move stream time forward without an event (idle tick, end of replay)."""
        self.clock.observe(stream_time_ms)
        return self._fire_due()

    # -- identity stitching ---------------------------------------------------------

    def extract(self, person_id: str) -> PersonState | None:
        """Remove ``person_id``'s state from the store and return it (None if none).

        The person's entry in the timer index goes stale and is skipped when
        it comes due; nothing fires for them any more.
        """
        state = self.store.load(person_id)
        if state is None:
            return None
        self.store.save(person_id, None)
        return {k: v for k, v in state.items() if k != _NEXT} or None

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

        Each operator's ``merge`` and the stage's ``merge`` combine the two
        states; ``other_id`` joins the person's merged anonymous ids (``"_ids"``);
        then the merged person is evaluated at the current watermark, so timers
        already due fire now, exactly once, for ``person_id``. Returns an
        ``identities`` ``merge`` record and whatever that evaluation emitted.
        ``other_id`` already among the person's merged ids means the merge was
        delivered again: nothing changes and nothing is emitted.

        Beyond ``max_anonymous_per_user`` the merge is refused: nothing changes
        and the only output is an ``identities`` ``conflict`` record (reason
        ``too_many_anonymous_ids``). The caller still holds ``other`` and must
        put it back under ``other_id`` (:meth:`restore`, on the processor that
        owns ``other_id``). ``event_time_ms`` and ``message_id`` name the cause
        in the records (default: the watermark, none).
        """
        state = self.store.load(person_id) or {}
        if other_id in (state.get(IDS) or ()):
            # already merged: this is the merge read again (at-least-once delivery);
            # merging the same state twice would count it twice
            self.redelivered_count += 1
            return []
        waiting = [a for a in state.get(AWAIT) or () if a != other_id]
        was_waiting = len(waiting) != len(state.get(AWAIT) or ())
        merged_ids: list[str] = list(state.get(IDS) or ())
        incoming = [*(other.get(IDS) or ()), other_id]
        ids = merged_ids + [i for i in dict.fromkeys(incoming) if i not in merged_ids]
        accepted, reason = accept_merge(merged_ids, other_id, self.identity)
        if accepted and len(ids) > self.identity.max_anonymous_per_user:
            accepted, reason = False, "too_many_anonymous_ids"
        at = max(self.watermark_ms, 0) if event_time_ms is None else event_time_ms
        kind = "merge" if accepted else "conflict"
        record = identity_record(kind, other_id, person_id, reason, at, message_id)
        outputs = [Output(IDENTITIES, person_id, record)]
        if not accepted:
            if was_waiting:  # the barrier lifts: evaluate what waited for the merge
                _put(state, AWAIT, waiting or None)
                outputs.extend(self._evaluate(person_id, state, state.get(_NEXT)))
            return outputs
        merged = self._merged(state, other)
        merged[IDS] = ids
        if waiting:
            merged[AWAIT] = waiting
        outputs.extend(self._evaluate(person_id, merged, state.get(_NEXT)))
        return outputs

    def restore(self, person_id: str, state: PersonState) -> list[Output]:
        """Put back a state :meth:`extract` took (after a refused merge).

        Merged with whatever ``person_id`` has meanwhile, then evaluated at the
        current watermark like :meth:`merge_in` (no identity record, no id check).
        """
        current = self.store.load(person_id)
        if current is None:
            return self._evaluate(person_id, dict(state), None)
        merged = self._merged(current, state)
        ids = dict.fromkeys([*(current.get(IDS) or ()), *(state.get(IDS) or ())])
        if ids:
            merged[IDS] = list(ids)
        return self._evaluate(person_id, merged, current.get(_NEXT))

    def _merged(self, a: PersonState, b: PersonState) -> PersonState:
        merged: PersonState = {}
        sources = _merged_sources(a.get(SRC), b.get(SRC))
        if sources:
            merged[SRC] = sources
        for op in self.operators:
            _put(merged, op.name, op.merge(a.get(op.name), b.get(op.name)))
        if self.stage is not None:
            merged.update(self.stage.merge(a, b))
        return merged

    def _evaluate(self, person: str, state: PersonState, indexed: int | None) -> list[Output]:
        state.pop(_NEXT, None)
        watermark = self.clock.watermark_ms
        outputs: list[Output] = []
        for op in self.operators:
            snapshot, out = op.on_watermark(state.get(op.name), person, watermark)
            _put(state, op.name, snapshot)
            outputs.extend(out)
        if self.stage is not None:
            outputs.extend(self.stage.after_watermark(state, person, watermark))
        if indexed is not None:
            state[_NEXT] = indexed  # already in the index: _save pushes only a new deadline
        self._save(person, state)
        return outputs

    def _fire_due(self) -> list[Output]:
        watermark = self.clock.watermark_ms
        outputs: list[Output] = []
        while self._timers and self._timers[0][0] <= watermark and watermark > NEG_INF_MS:
            deadline, person = heapq.heappop(self._timers)
            state = self.store.load(person)
            if state is None or state.get(_NEXT) != deadline:
                continue  # stale index entry: the person's timer moved or was cleared
            del state[_NEXT]  # popped from the index: _save re-indexes what remains
            if state.get(AWAIT):
                # A merge is on its way: don't close sessions or fire timers on a
                # half of the person; merge_in evaluates (and re-indexes) them.
                self.store.save(person, state)
                continue
            for op in self.operators:
                snapshot, out = op.on_watermark(state.get(op.name), person, watermark)
                _put(state, op.name, snapshot)
                outputs.extend(out)
            if self.stage is not None:
                outputs.extend(self.stage.after_watermark(state, person, watermark))
            self._save(person, state)
        return outputs

    def _save(self, person: str, state: PersonState) -> None:
        deadlines = [
            d for op in self.operators if (d := op.next_deadline_ms(state.get(op.name))) is not None
        ]
        if self.stage is not None and (d := self.stage.next_deadline_ms(state)) is not None:
            deadlines.append(d)
        previous = state.pop(_NEXT, None)
        if deadlines:
            nxt = min(deadlines)
            state[_NEXT] = nxt
            if nxt != previous:
                heapq.heappush(self._timers, (nxt, person))
        # a person whose operators all let go (e.g. evicted) is gone, merged ids included
        keep = bool(set(state) - _RESERVED) or bool(state.get(AWAIT))
        self.store.save(person, state if keep else None)


def _put(state: PersonState, key: str, snapshot: Any) -> None:
    if snapshot is None:
        state.pop(key, None)
    else:
        state[key] = snapshot


def _applied(state: PersonState, source: tuple[int, int]) -> bool:
    """Whether the record at ``source`` (or a later one of its partition) was applied."""
    last = (state.get(SRC) or {}).get(str(source[0]))
    return last is not None and source[1] <= last


def _mark(state: PersonState, source: tuple[int, int]) -> None:
    sources = state.get(SRC)
    if sources is None:
        sources = state[SRC] = {}
    sources[str(source[0])] = source[1]


def _merged_sources(a: dict[str, int] | None, b: dict[str, int] | None) -> dict[str, int]:
    """Both persons' last applied offsets: the larger per source partition."""
    merged = dict(a or {})
    for partition, offset in (b or {}).items():
        merged[partition] = max(offset, merged.get(partition, offset))
    return merged
