"""Trigger rules besides absence: immediate, repetition and milestones.

Each rule is a frozen config object with pure methods over a plain-data
snapshot (see :mod:`pipeline.core.rules` for how they run and are capped):

* ``ImmediateRule``: the event matches -> fire now (e.g. a high-value add-to-cart).
* ``RepetitionRule``: "A at least N times within T (optionally of the same
  item), and not B" -> fire when the N-th A arrives, e.g. viewed the same event
  page twice without starting checkout. Fires once per item per window.
* ``MilestoneRule``: the first time ever a person does X (first purchase, first
  login, first payment failure). The set of reached milestones is part of the
  person's state, so it survives restarts and merges by union.

``fire(...)`` returns the trigger record; ids are deterministic.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pipeline.core.absence import trigger_id
from pipeline.core.events import Event, canonical_event_name

_CONTEXT_KEYS = (
    "product_id", "name", "category", "price", "value", "revenue", "currency", "coupon",
    "order_id", "checkout_id", "url", "products", "reason", "query",
)  # fmt: skip


def event_context(event: Event) -> dict[str, Any]:
    """The part of an event a message about it needs."""
    context = {k: event.properties[k] for k in _CONTEXT_KEYS if k in event.properties}
    if channel := event.context.get("channel"):
        context["channel"] = channel
    return context


def trigger_record(
    rule: str, person_id: str, causes: list[Event], event_time_ms: int
) -> dict[str, Any]:
    last = causes[-1]
    return {
        "trigger_id": trigger_id(rule, person_id, last.message_id),
        "rule": rule,
        "person_id": person_id,
        "event_ids": [e.message_id for e in causes],
        "event_time_ms": event_time_ms,
        "context": event_context(last),
    }


@dataclass(frozen=True, slots=True)
class ImmediateRule:
    """Fire on every event named ``event`` (that passes the rule's ``where``)."""

    name: str
    event: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "event", canonical_event_name(self.event))

    def on_event(
        self, state: Any, event: Event, person_id: str
    ) -> tuple[Any, list[dict[str, Any]]]:
        if event.event != self.event:
            return state, []
        return state, [trigger_record(self.name, person_id, [event], event.timestamp_ms)]

    @staticmethod
    def merge(a: Any, b: Any) -> Any:
        """Stateless: nothing to merge."""
        return None


@dataclass(frozen=True, slots=True)
class MilestoneRule:
    """Fire the first time ever the person does ``event``."""

    name: str
    event: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "event", canonical_event_name(self.event))

    def on_event(
        self, state: Any, event: Event, person_id: str
    ) -> tuple[Any, list[dict[str, Any]]]:
        if event.event != self.event or state:
            return state, []
        return True, [trigger_record(self.name, person_id, [event], event.timestamp_ms)]

    @staticmethod
    def merge(a: Any, b: Any) -> Any:
        """Reached by either person: reached (so a first purchase fires once, ever)."""
        return bool(a or b) or None


@dataclass(frozen=True, slots=True)
class RepetitionRule:
    """``event`` at least ``at_least`` times within ``within_ms`` and no ``unless`` between.

    ``same`` names a property (e.g. ``product_id``): repetitions are counted per
    value. State: ``{item: [[ts, message_id], ...], "!": last_unless_ts}``; entries
    older than the window are pruned on every update.
    """

    name: str
    event: str
    at_least: int
    within_ms: int
    unless: str | None = None
    same: str | None = None

    def __post_init__(self) -> None:
        if self.at_least < 2:
            raise ValueError(f"rule {self.name!r}: at_least must be 2 or more")
        if self.within_ms <= 0:
            raise ValueError(f"rule {self.name!r}: within must be positive")
        object.__setattr__(self, "event", canonical_event_name(self.event))
        if self.unless is not None:
            object.__setattr__(self, "unless", canonical_event_name(self.unless))

    def on_event(
        self, state: Any, event: Event, person_id: str
    ) -> tuple[Any, list[dict[str, Any]]]:
        if event.event is None or event.event not in (self.event, self.unless):
            return state, []  # (a nameless identify or page is never the `unless` event)
        state = dict(state or {})
        now = event.timestamp_ms
        horizon = now - self.within_ms
        if event.event == self.unless:
            state = {"!": now}  # the unless event resets every count
            return state, []
        item = "*" if self.same is None else str(event.properties.get(self.same, "?"))
        since = max(horizon, state.get("!", horizon))
        seen = [pair for pair in state.get(item, []) if since < pair[0] <= now]
        seen.append([now, event.message_id])
        fired: list[dict[str, Any]] = []
        if len(seen) == self.at_least:
            causes = [
                Event(message_id=mid, type="track", event=self.event, timestamp_ms=ts)
                for ts, mid in seen[:-1]
            ]
            record = trigger_record(self.name, person_id, [*causes, event], now)
            if self.same is not None:
                record["context"][self.same] = event.properties.get(self.same)
            fired.append(record)
        state[item] = seen
        # drop other items whose whole history left the window
        for key in [k for k in state if k not in ("!", item)]:
            if all(ts <= horizon for ts, _ in state[key]):
                del state[key]
        return state, fired

    @staticmethod
    def merge(a: Any, b: Any) -> Any:
        """Union of the seen lists per item; the later ``unless`` reset wins.

        Repetition is decided on arrival: a merge never fires, it only lets the
        next repetition count both persons' earlier ones.
        """
        if not a or not b:
            return b or a or None
        merged: dict[str, Any] = {}
        for key in sorted(set(a) | set(b)):
            if key == "!":
                merged[key] = max(v for v in (a.get(key), b.get(key)) if v is not None)
                continue
            seen = {(ts, mid) for ts, mid in [*a.get(key, []), *b.get(key, [])]}
            merged[key] = [[ts, mid] for ts, mid in sorted(seen)]
        return merged


#: ``deliver_at`` values a trigger may ask for.
DELIVER_AT = ("best_hour",)


@dataclass(frozen=True, slots=True)
class DeliverAt:
    """When a trigger's activations are to be delivered (``deliver_at`` in the topology).

    ``best_hour``: at the person's best local hour on the rule's channel
    within ``max_delay_ms`` of the trigger (:func:`pipeline.core.sendtime.send_at`),
    never in quiet hours; the activation carries ``send_at_ms`` and the
    delivery service holds it until then. Example (topology YAML)::

        deliver_at: best_hour
        max_delay: 12h
    """

    mode: str
    max_delay_ms: int

    def __post_init__(self) -> None:
        if self.mode not in DELIVER_AT:
            raise ValueError(
                f"deliver_at must be one of {', '.join(DELIVER_AT)}, not {self.mode!r}"
            )
        if not 0 < self.max_delay_ms <= 7 * 86_400_000:
            raise ValueError("max_delay must be positive and at most 7d (one week of hours)")
