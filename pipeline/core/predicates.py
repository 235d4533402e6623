"""Predicates over an event, its person's traits and segment memberships.

A predicate is written in a topology file as a mapping from a *path* to a
*condition*; all entries must hold::

    where:
      properties.value: {gte: 100}         # cart value above 100
      properties.category: {in: [shoes, bags]}
      context.channel: web
      local_hour: {gte: 21}                # hour of day in the person's time zone
      trait.orders_30d: {lt: 1}
      segment: night_shopper               # current segment membership
      custom: is_vip                       # a Python function registered by name

Paths: ``properties.<name>``, ``context.<name>``, ``event``, ``local_hour``,
``local_weekday`` (0 = Monday), ``trait.<name>``; in the rule stage also
``score.<task>[.percentile]``, ``recs`` and ``best_hour.<channel>``, read from
the stage's models (:mod:`pipeline.core.modelreads`). Conditions: a bare value
(equality) or one of ``eq ne gt gte lt lte in not_in exists``. A missing value
fails every condition except ``exists: false`` and ``ne``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pipeline.core.events import MAX_TIMESTAMP_MS, Event

OPERATORS = ("eq", "ne", "gt", "gte", "lt", "lte", "in", "not_in", "exists")
#: What a path reads when there is nothing there.
MISSING: Any = object()
_MISSING = MISSING


#: ``Facts``' default traits: a new empty dict each time (as ``default_factory=dict``).
_NO_TRAITS: Mapping[str, Any] = {}


@dataclass(frozen=True, slots=True, init=False)
class Facts:
    """What a predicate can look at: the event, the person's traits and segments."""

    event: Event
    traits: Mapping[str, Any] = field(default_factory=dict)
    segments: frozenset[str] = frozenset()

    def __init__(
        self,
        event: Event,
        traits: Mapping[str, Any] = _NO_TRAITS,
        segments: frozenset[str] = frozenset(),
    ) -> None:
        # written out so that mypyc compiles it (see pipeline.core.outputs.Output)
        object.__setattr__(self, "event", event)
        object.__setattr__(self, "traits", {} if traits is _NO_TRAITS else traits)
        object.__setattr__(self, "segments", segments)


#: A custom predicate: ``(facts) -> bool``, registered by name.
CustomPredicate = Callable[[Facts], bool]


def local_time(timestamp_ms: int, timezone: str | None) -> datetime:
    """The event time in the person's IANA time zone (UTC when unknown or invalid)."""
    tz: Any = UTC
    if timezone:
        try:
            tz = ZoneInfo(timezone)
        except (ZoneInfoNotFoundError, ValueError):
            tz = UTC
    # clamp: replay's final watermark is "infinity", which no calendar can show
    clamped = min(max(timestamp_ms, 0), MAX_TIMESTAMP_MS)
    return datetime.fromtimestamp(clamped / 1000, tz=tz)


def lookup(facts: Facts, path: str) -> Any:
    """The value at ``path`` (see the module docstring), or a private MISSING marker."""
    event = facts.event
    if path == "event":
        return event.event
    if path in ("local_hour", "local_weekday"):
        local = local_time(event.timestamp_ms, event.context.get("timezone"))
        return local.hour if path == "local_hour" else local.weekday()
    head, _, rest = path.partition(".")
    source: Mapping[str, Any] | None = {
        "properties": event.properties,
        "context": event.context,
        "trait": facts.traits,
    }.get(head)
    if source is None or not rest:
        return _MISSING
    value = source.get(rest, _MISSING)
    if value is _MISSING and head == "trait" and "." in rest:
        # nested traits: trait.counts_30d.order_completed
        value = facts.traits
        for part in rest.split("."):
            if not isinstance(value, Mapping):
                return _MISSING
            value = value.get(part, _MISSING)
    return value


def holds(op: str, actual: Any, expected: Any) -> bool:
    if op == "exists":
        return (actual is not _MISSING and actual is not None) == bool(expected)
    if op == "ne":
        return actual is _MISSING or actual != expected
    if actual is _MISSING or actual is None:
        return False
    if op == "eq":
        return bool(actual == expected)
    if op == "in":
        return actual in expected
    if op == "not_in":
        return actual not in expected
    try:
        if op == "gt":
            return bool(actual > expected)
        if op == "gte":
            return bool(actual >= expected)
        if op == "lt":
            return bool(actual < expected)
        if op == "lte":
            return bool(actual <= expected)
    except TypeError:
        return False  # comparing a string with a number: the condition does not hold
    raise ValueError(f"unknown condition {op!r}")


@dataclass(frozen=True, slots=True)
class Predicate:
    """A conjunction of (path, operator, value) conditions, plus segment/custom checks."""

    conditions: tuple[tuple[str, str, Any], ...] = ()
    segments: tuple[str, ...] = ()
    custom: tuple[CustomPredicate, ...] = ()

    def __call__(self, facts: Facts) -> bool:
        for path, op, expected in self.conditions:
            if not holds(op, lookup(facts, path), expected):
                return False
        if any(name not in facts.segments for name in self.segments):
            return False
        return all(check(facts) for check in self.custom)

    @property
    def needs_state(self) -> bool:
        """True when the predicate reads traits or segments (not just the event)."""
        return bool(self.segments) or any(p.startswith("trait.") for p, _, _ in self.conditions)


ALWAYS = Predicate()
