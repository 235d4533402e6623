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

A person's state is a plain dict ``{operator_name: snapshot, "_next": deadline}``.
Timers are durable because they *are* that state: the in-memory index
(deadline, person) is derived, and :meth:`Processor.rebuild_index` recreates it
from the store after a restart or rebalance.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, Protocol

from pipeline.core.clock import NEG_INF_MS, PartitionClock
from pipeline.core.events import Event
from pipeline.core.outputs import LATE, Output

PersonState = dict[str, Any]
_NEXT = "_next"


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


class Stage(Protocol):
    """Runs after the operators with the whole person state (rules read traits)."""

    def after_event(
        self, person: PersonState, event: Event, person_id: str, watermark_ms: int
    ) -> list[Output]: ...

    def after_watermark(
        self, person: PersonState, person_id: str, watermark_ms: int
    ) -> list[Output]: ...

    def next_deadline_ms(self, person: PersonState) -> int | None: ...


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
    ) -> None:
        self.operators = tuple(operators)
        self.stage = stage
        self.clock = PartitionClock(allowed_lateness_ms)
        self.store = store
        self._timers: list[tuple[int, str]] = []  # heap of (deadline_ms, person_id)
        self.late_count = 0

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
        self, event: Event, person_id: str | None = None, *, advance_clock: bool = True
    ) -> list[Output]:
        """Apply one event, then fire whatever timers its stream time made due.

        With ``advance_clock=False`` the event does not move stream time: the
        caller drives it with :meth:`advance_to` (the worker does, from the
        watermarks of the upstream partitions; see ``pipeline/worker/app.py``).
        """
        person = person_id or event.person_id
        watermark = self.clock.watermark_ms
        if self.clock.is_late(event.timestamp_ms):
            self.late_count += 1
            return [Output(LATE, person, late_record(event, watermark))]
        if advance_clock:
            self.clock.observe(event.timestamp_ms)
        watermark = self.clock.watermark_ms
        state = self.store.load(person) or {}
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

    def _fire_due(self) -> list[Output]:
        watermark = self.clock.watermark_ms
        outputs: list[Output] = []
        while self._timers and self._timers[0][0] <= watermark and watermark > NEG_INF_MS:
            deadline, person = heapq.heappop(self._timers)
            state = self.store.load(person)
            if state is None or state.get(_NEXT) != deadline:
                continue  # stale index entry: the person's timer moved or was cleared
            del state[_NEXT]  # popped from the index: _save re-indexes what remains
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
        self.store.save(person, state or None)


def _put(state: PersonState, key: str, snapshot: Any) -> None:
    if snapshot is None:
        state.pop(key, None)
    else:
        state[key] = snapshot
