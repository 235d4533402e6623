"""Predicates compiled for the rule stage: what they read, when they can change.

A topology's ``where`` (:class:`~pipeline.core.predicates.Predicate`) is split
once, when the stage is built:

* the **event part** (``properties.*``, ``context.*``, ``event``, ``local_hour``,
  ``local_weekday``) is a pure function of the event: checked when it arrives;
* the **state part** (``trait.*``, ``score.*``, ``segment``, ``custom``) reads the
  person as of an event time: checked when the watermark has passed it. Each trait path
  becomes a reader over the raw trait state (``trait.counts_7d.product_viewed``
  sums one window for one event name, not all four windows for every name).

For segments each reader also says what can change its value: which events
(:data:`ANY` or a set of names), a closed session, and time alone -- for a
count window, the exact time its oldest buckets leave it
(:meth:`StatePart.next_change_ms`).

``score.<task>`` (the probability) and ``score.<task>.percentile`` score the
person's features as of the check's time with the stage's
:class:`~pipeline.core.models.ModelSet` (the model in it *at the check*: the
worker replaces models while it runs). No model for the task, or a person
with no trait yet: MISSING, so every condition on it but ``exists: false`` /
``ne`` is false. A score may change after any event, at a session close and
with time alone (recency and decayed features): segments reading one are
re-checked on the ``segment_recheck_ms`` grid, as recency is.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from pipeline.core.events import Event
from pipeline.core.facts import CART_EVENTS, CHECKOUT_EVENT, ORDER_EVENT
from pipeline.core.folds import COUNT_WINDOWS, window_count, window_expiries
from pipeline.core.modelreads import best_hour_reader, recs_reader, score_reader
from pipeline.core.models import ModelSet
from pipeline.core.predicates import MISSING, Facts, Predicate, holds, lookup
from pipeline.core.reads import ANY, TraitRead, TraitsOf
from pipeline.core.traits import BEHAVIOR, DEFAULT_TRAITS, TRAITS_KEY

_EVENT_PATHS = ("properties", "context")
_EVENT_KEYS = ("event", "local_hour", "local_weekday")
_ORDERS = frozenset({ORDER_EVENT})
_BY_EVENTS: dict[str, frozenset[str]] = {
    **dict.fromkeys(
        ("orders_total", "revenue_total", "average_order_value", "last_order_ms",
         "order_recency_ms", "orders_with_coupon", "orders_without_coupon",
         "coupon_order_share"), _ORDERS),
    "conversion_with_coupon": frozenset({CHECKOUT_EVENT, ORDER_EVENT}),
    "conversion_without_coupon": frozenset({CHECKOUT_EVENT, ORDER_EVENT}),
    "cart_value_avg": CART_EVENTS,
    "cart_value_max": CART_EVENTS,
    **dict.fromkeys(("sessions_total", "sessions_night_share", "sessions_weekend_share"),
                    frozenset()),
}  # fmt: skip
_SESSION_TRAITS = frozenset({"sessions_total", "sessions_night_share", "sessions_weekend_share"})
#: Traits that change with time alone, continuously (re-checked on a grid).
_DRIFTING = frozenset({
    "recency_ms", "order_recency_ms", "category_interest", "product_interest",
    "repeat_views", "max_repeat_views",
})  # fmt: skip


def _traits_state(person: Mapping[str, Any]) -> dict[str, Any] | None:
    slice_ = person.get(BEHAVIOR)
    if not slice_:
        return None
    state: dict[str, Any] = slice_[TRAITS_KEY]
    return state if state["a"][1] is not None else None


def _nested(value: Any, parts: list[str]) -> Any:
    for part in parts:
        if not isinstance(value, Mapping):
            return MISSING
        value = value.get(part, MISSING)
    return value


def trait_reader(path: str, traits_of: TraitsOf, custom: frozenset[str]) -> TraitRead:
    """Compile ``path`` (what follows ``trait.``) into a :class:`TraitRead`."""
    head, _, rest = path.partition(".")
    if head in custom or (head not in DEFAULT_TRAITS.fold_of and head not in COUNT_WINDOWS):

        def read_any(person: Mapping[str, Any], as_of: int, cache: dict[str, Any]) -> Any:
            values = cache.get("*")
            if values is None:
                values = cache["*"] = traits_of(person, as_of)
            return lookup(Facts(_PROBE, values), "trait." + path)

        return TraitRead(path, read_any, ANY, True, None, True)
    if head in COUNT_WINDOWS:
        name = rest or None

        def read_window(person: Mapping[str, Any], as_of: int, cache: dict[str, Any]) -> Any:
            state = _traits_state(person)
            if state is None:
                return MISSING
            value = window_count(state["w"], head, as_of, name)
            return MISSING if value is None else value

        events = ANY if name is None else frozenset({name})
        return TraitRead(path, read_window, events, False, (head, name), False)
    fold = DEFAULT_TRAITS.fold_of[head]
    parts = rest.split(".") if rest else []

    def read_fold(person: Mapping[str, Any], as_of: int, cache: dict[str, Any]) -> Any:
        state = _traits_state(person)
        if state is None:
            return MISSING
        result = cache.get(fold.key)
        if result is None:
            result = cache[fold.key] = fold.result(state[fold.key], as_of)
        return _nested(result.get(head, MISSING), parts)

    events = _BY_EVENTS.get(head, ANY)
    return TraitRead(path, read_fold, events, head in _SESSION_TRAITS, None, head in _DRIFTING)


#: The event a check at a point in time (no event) sees: no name, no properties.
_PROBE = Event(message_id="", type="track", timestamp_ms=0)


@dataclass(frozen=True, slots=True)
class StatePart:
    """The ``trait.*`` / ``segment`` / ``custom`` part of a predicate, checked when final."""

    conditions: tuple[tuple[TraitRead, str, Any], ...]
    segments: tuple[str, ...]
    custom: tuple[Callable[[Facts], bool], ...]
    event_conditions: tuple[tuple[str, str, Any], ...]  # for segments: read at each check
    traits_of: TraitsOf

    @property
    def empty(self) -> bool:
        return not (self.conditions or self.segments or self.custom or self.event_conditions)

    def __call__(
        self,
        person: Mapping[str, Any],
        as_of_ms: int,
        members: frozenset[str] | set[str],
        event: Any = None,
    ) -> bool:
        cache: dict[str, Any] = {}
        for reader, op, expected in self.conditions:
            if not holds(op, reader.read(person, as_of_ms, cache), expected):
                return False
        for name in self.segments:
            if name not in members:
                return False
        if self.event_conditions:
            facts = Facts(event if event is not None else _PROBE)
            for path, op, expected in self.event_conditions:
                if not holds(op, lookup(facts, path), expected):
                    return False
        if self.custom:
            traits = self.traits_of(person, as_of_ms)
            facts = Facts(event if event is not None else _PROBE, traits, frozenset(members))
            return all(check(facts) for check in self.custom)
        return True

    # -- what can change the value (segments) ---------------------------------------

    @property
    def events(self) -> frozenset[str]:
        """Event names after which the value may differ (ANY: every event)."""
        if self.custom or self.event_conditions:
            return ANY
        names: set[str] = set()
        for reader, _, _ in self.conditions:
            if reader.events is ANY:
                return ANY
            names |= reader.events
        return frozenset(names)

    @property
    def session(self) -> bool:
        return bool(self.custom) or any(r.session for r, _, _ in self.conditions)

    @property
    def timed(self) -> bool:
        """Whether time alone can change the value."""
        return bool(self.custom) or any(
            r.drifts or r.window is not None for r, _, _ in self.conditions
        )

    def next_change_ms(self, person: Mapping[str, Any], as_of_ms: int, grid_ms: int) -> int | None:
        """The first time after ``as_of_ms`` at which time alone may flip the value.

        Exact for count windows (when the oldest buckets leave the window, the
        first time a condition's outcome changes); traits that drift
        continuously (recency, decayed interest) and custom code are re-checked
        on a ``grid_ms`` grid of event time.
        """
        best: int | None = None
        grid = as_of_ms - as_of_ms % grid_ms + grid_ms
        if self.custom:
            best = grid
        state = _traits_state(person)
        for reader, op, expected in self.conditions:
            at: int | None = None
            if reader.drifts:
                # no traits (none yet, or evicted): nothing drifts until an event
                # comes (else replay's final flush to +inf would re-check forever)
                at = grid if state is not None else None
            elif reader.window is not None and state is not None:
                at = _flip_ms(state["w"], reader.window, as_of_ms, op, expected)
            if at is not None and (best is None or at < best):
                best = at
        return best


def _flip_ms(
    buckets: dict[str, list[list[Any]]],
    window: tuple[str, str | None],
    as_of_ms: int,
    op: str,
    expected: Any,
) -> int | None:
    trait, name = window
    if name is None:  # a condition on the whole map: re-check whenever a bucket leaves
        leaving = window_expiries(buckets, trait, as_of_ms, None)
        return leaving[0][0] if leaving else None
    leaving = window_expiries(buckets, trait, as_of_ms, name)
    total = sum(n for _, n in leaving)
    now = holds(op, total or MISSING, expected)
    for at, n in leaving:
        total -= n
        if holds(op, total or MISSING, expected) != now:
            return at
    return None


@dataclass(frozen=True, slots=True)
class Compiled:
    """A predicate split in its event part and its state part."""

    event_conditions: tuple[tuple[str, str, Any], ...]
    state: StatePart

    def event_ok(self, event: Any) -> bool:
        if not self.event_conditions:
            return True
        facts = Facts(event)
        return all(holds(op, lookup(facts, p), x) for p, op, x in self.event_conditions)


def _is_event_path(path: str) -> bool:
    return path in _EVENT_KEYS or path.split(".", 1)[0] in _EVENT_PATHS


def state_reader(
    path: str,
    traits_of: TraitsOf,
    custom_traits: frozenset[str],
    models: ModelSet | None,
    predictions: Any = None,
) -> TraitRead:
    """The reader of a state path: ``trait.*``, ``score.*``, ``recs``, ``best_hour.*``."""
    head = path.split(".", 1)[0]
    if head in ("score", "recs", "best_hour"):
        if head == "score":
            return score_reader(path, traits_of, models)
        if models is None:
            models = ModelSet()
        if head == "recs":
            k = predictions.recs_k if predictions is not None else 0
            return recs_reader(path, traits_of, models, k or 10)
        min_events = predictions.send_min_events if predictions is not None else 5
        return best_hour_reader(path, traits_of, models, min_events)
    return trait_reader(path[len("trait.") :], traits_of, custom_traits)


def compile_predicate(
    predicate: Predicate,
    traits_of: TraitsOf,
    custom_traits: frozenset[str],
    *,
    segment: bool,
    models: ModelSet | None = None,
    predictions: Any = None,
) -> Compiled:
    """Split ``predicate``; for a ``segment`` the event part is read at each check.

    ``models``: the stage's models, read by ``score.*``, ``recs`` and
    ``best_hour.*`` (None: no score); ``predictions``: the topology's
    ``PredictionsConfig`` (``recs.k``, ``send_time.min_events``), or None.
    """
    events = tuple(c for c in predicate.conditions if _is_event_path(c[0]))
    traits = tuple(
        (state_reader(p, traits_of, custom_traits, models, predictions), op, x)
        for p, op, x in predicate.conditions
        if not _is_event_path(p)
    )
    state = StatePart(
        traits, predicate.segments, predicate.custom, events if segment else (), traits_of
    )
    return Compiled(() if segment else events, state)
