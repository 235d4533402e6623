"""Absence rules: "A, then not B within T" (checkout abandonment and friends).

A rule is decided in event time, independent of arrival order within the
allowed lateness: events are buffered and only the *final* part of the
timeline (event time below the watermark) is evaluated, in time order. Within
T is half-open: a B at exactly ``A + T`` is too late. At equal timestamps an A
sorts before a B, so a purchase in the same millisecond as its checkout
converts it.

While a timer is pending, a repeated A does not re-arm it (a person cannot
re-enter the journey) unless ``restart_on_repeat`` is set, in which case the
newer A replaces the pending one and the deadline moves.

State is plain data (a JSON-able dict) so the adapters can persist it::

    {"buf": [[ts, kind, message_id, context], ...],   # kind 0 = A, 1 = B
     "act": [start_ts, message_id, context] | None}   # the pending timer
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from pipeline.core.events import Event, canonical_event_name
from pipeline.core.outputs import Output

_START, _CANCEL = 0, 1

# Properties of the start event that a message about it needs.
_CONTEXT_KEYS = (
    "checkout_id", "cart_id", "order_id", "value", "revenue", "total", "currency",
    "coupon", "products", "product_id", "name", "category", "price", "url",
)  # fmt: skip


def trigger_id(rule: str, person_id: str, message_id: str) -> str:
    """Deterministic id of a trigger: the same rule, person and cause give the same id."""
    digest = hashlib.blake2b(f"{rule}\x1f{person_id}\x1f{message_id}".encode(), digest_size=16)
    return digest.hexdigest()


@dataclass(frozen=True, slots=True)
class AbsenceRule:
    """``start`` then no ``cancel`` within ``within_ms``: emit a trigger named ``name``."""

    name: str
    start: str
    cancel: str
    within_ms: int
    restart_on_repeat: bool = False

    def __post_init__(self) -> None:
        if self.within_ms <= 0:
            raise ValueError(f"rule {self.name!r}: within_ms must be positive")
        object.__setattr__(self, "start", canonical_event_name(self.start))
        object.__setattr__(self, "cancel", canonical_event_name(self.cancel))
        if self.start == self.cancel:
            raise ValueError(f"rule {self.name!r}: start and cancel are the same event")

    # -- the operator protocol (see pipeline.core.engine) ----------------------

    def wants(self, event: Event) -> bool:
        return event.event in (self.start, self.cancel)

    def on_event(
        self, state: dict[str, Any] | None, event: Event, person_id: str, watermark_ms: int
    ) -> tuple[dict[str, Any] | None, list[Output]]:
        if not self.wants(event):
            # Still settle what this event's watermark made final, so state shrinks.
            return self.on_watermark(state, person_id, watermark_ms)
        state = {"buf": [], "act": None} if state is None else state
        if event.event == self.start:
            item = [event.timestamp_ms, _START, event.message_id, _start_context(event)]
        else:
            item = [event.timestamp_ms, _CANCEL, event.message_id, None]
        state["buf"].append(item)
        return self.on_watermark(state, person_id, watermark_ms)

    def on_watermark(
        self, state: dict[str, Any] | None, person_id: str, watermark_ms: int
    ) -> tuple[dict[str, Any] | None, list[Output]]:
        if state is None:
            return None, []
        buf: list[list[Any]] = sorted(state["buf"], key=lambda it: (it[0], it[1], it[2]))
        active: list[Any] | None = state["act"]
        outputs: list[Output] = []
        consumed = 0
        for ts, kind, message_id, context in buf:
            if ts >= watermark_ms:
                break  # not final yet: an earlier event may still arrive
            consumed += 1
            if active is not None and ts >= active[0] + self.within_ms:
                outputs.append(self._fire(active, person_id))
                active = None
            if kind == _CANCEL:
                active = None  # converted in time (or nothing was pending)
            elif active is None or self.restart_on_repeat:
                active = [ts, message_id, context]
        if active is not None and watermark_ms >= active[0] + self.within_ms:
            outputs.append(self._fire(active, person_id))
            active = None
        rest = buf[consumed:]
        if not rest and active is None:
            return None, outputs
        return {"buf": rest, "act": active}, outputs

    def next_deadline_ms(self, state: dict[str, Any] | None) -> int | None:
        """The watermark at which this state needs :meth:`on_watermark` again."""
        if state is None:
            return None
        if state["act"] is not None:
            return int(state["act"][0]) + self.within_ms
        starts = [it[0] for it in state["buf"] if it[1] == _START]
        return min(starts) + self.within_ms if starts else None

    def _fire(self, active: list[Any], person_id: str) -> Output:
        start_ts, message_id, context = active
        record = {
            "trigger_id": trigger_id(self.name, person_id, message_id),
            "rule": self.name,
            "person_id": person_id,
            "event_ids": [message_id],
            "event_time_ms": start_ts + self.within_ms,
            "context": dict(context or {}),
        }
        return Output("triggers", person_id, record)


def _start_context(event: Event) -> dict[str, Any]:
    context = {k: event.properties[k] for k in _CONTEXT_KEYS if k in event.properties}
    context["started_at_ms"] = event.timestamp_ms
    if channel := event.context.get("channel"):
        context["channel"] = channel
    return context
