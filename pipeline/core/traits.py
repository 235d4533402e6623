"""A person's behavioral traits: the folds of ``folds.py`` and ``interest.py`` as one.

:class:`Traits` bundles every fold into one fold over a dict keyed by each
fold's short key, and :func:`traits_of` reads the current values out of a
person's state: that dict is what segment and trigger predicates see.

Trait list (``schemas/profile.avsc`` types them; times are epoch ms)::

    first_seen_ms  last_seen_ms  recency_ms  events_total  event_counts_total
    counts_1h  counts_1d  counts_7d  counts_30d           {event name: count}
    hour_histogram[24]  weekday_histogram[7] (Monday first)  timezone
    orders_total  revenue_total  average_order_value  last_order_ms  order_recency_ms
    coupon_uses  orders_with_coupon  orders_without_coupon
    conversion_with_coupon  conversion_without_coupon     (orders / checkouts)
    coupon_order_share                                    (orders with a coupon / orders)
    cart_value_avg  cart_value_max
    category_interest  product_interest  {name: decayed score}, highest first
    repeat_views {product: views >= 2}  max_repeat_views
    sessions_total  sessions_night_share  sessions_weekend_share
    engagement_hours {channel: {hour of week: count}}     (only with predictions.send_time)
    purchased_products [product, ...] newest first        (only with predictions.recs)

Ratios and averages are ``None`` when their denominator is 0. Example::

    >>> from pipeline.core.facts import Fact
    >>> t = Traits()
    >>> s = t.aggregate(t.initialize(), Fact(1_000, "m1", "order_completed", None,
    ...                                      42.0, 42.0, False, (), None))
    >>> r = t.result(s, as_of_ms=61_000)
    >>> r["orders_total"], r["revenue_total"], r["recency_ms"]
    (1, 42.0, 60000)
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from pipeline.core.engagement import EngagementHours
from pipeline.core.facts import Fact
from pipeline.core.folds import (
    DAY_MS,
    Activity,
    CartValue,
    Coupons,
    Fold,
    LocalClock,
    Orders,
    SessionShares,
    WindowCounts,
)
from pipeline.core.interest import DEFAULT_WEIGHTS, Interest
from pipeline.core.recommend import RecentProducts

TraitsState = dict[str, Any]

#: Where the behavior operator keeps its slice, and the traits inside it.
BEHAVIOR = "behavior"
TRAITS_KEY = "t"


@dataclass(frozen=True)
class TraitsConfig:
    """What the traits depend on: interest decay and pruning, and "night".

    >>> TraitsConfig(interest_half_life_ms=0)
    Traceback (most recent call last):
    ...
    ValueError: half_life_ms, max_entries and prune_every_ms must be positive
    """

    interest_half_life_ms: int = 7 * DAY_MS
    interest_floor: float = 0.05
    max_interests: int = 50
    night_from_hour: int = 21
    night_until_hour: int = 5
    interest_weights: Mapping[str, float] = field(
        default_factory=lambda: dict(DEFAULT_WEIGHTS), hash=False
    )
    #: predictions only (off by default: the state and the traits stay as they were):
    #: channels whose hour-of-week engagement is kept (``engagement_hours``, sendtime.py)
    send_channels: tuple[str, ...] = ()
    #: keep recent product events and purchased products (``purchased_products``, recommend.py)
    recent_products: bool = False

    def __post_init__(self) -> None:
        if not 0 <= self.night_from_hour <= 23:
            raise ValueError(f"night_from_hour must be 0-23, got {self.night_from_hour}")
        self.interest()  # validates the interest settings

    def interest(self) -> Interest:
        return Interest(
            half_life_ms=self.interest_half_life_ms,
            floor=self.interest_floor,
            max_entries=self.max_interests,
            weights=dict(self.interest_weights),
        )


def _trait_names(fold: Fold) -> list[str]:
    return list(fold.result(fold.initialize(), 0))


class Traits:
    """Every trait fold as one: ``initialize / aggregate / aggregate_session / merge / result``."""

    def __init__(self, config: TraitsConfig | None = None) -> None:
        self.config = config or TraitsConfig()
        self.sessions = SessionShares(self.config.night_from_hour, self.config.night_until_hour)
        self.activity = Activity()
        self.windows = WindowCounts()
        self.local_clock = LocalClock()
        self.orders = Orders()
        self.coupons = Coupons()
        self.cart = CartValue()
        self.interest = self.config.interest()
        self.hours: EngagementHours | None = None
        self.products: RecentProducts | None = None
        folds: list[Fold] = [
            self.activity, self.windows, self.local_clock, self.orders, self.coupons, self.cart,
            self.interest, self.sessions,
        ]  # fmt: skip
        # predictions' folds exist only when asked for: without them the state and the
        # results are exactly what they were (an older state without their keys still loads)
        if self.config.send_channels:
            self.hours = EngagementHours(self.config.send_channels)
            folds.append(self.hours)
        if self.config.recent_products:
            self.products = RecentProducts()
            folds.append(self.products)
        self.folds: tuple[Fold, ...] = tuple(folds)
        # which fold computes which trait, so a reader can compute only what it reads
        self.fold_of: dict[str, Fold] = {
            name: fold for fold in self.folds for name in _trait_names(fold)
        }

    def initialize(self) -> TraitsState:
        return {fold.key: fold.initialize() for fold in self.folds}

    def aggregate(self, state: TraitsState, fact: Fact) -> TraitsState:
        """Fold one event (in place; returns ``state``).

        Each fold is called by its own class, not through :class:`Fold`, so the
        compiled core calls it directly (no generic call, no boxing); every one of
        these folds updates its state in place, so nothing is stored back.
        (Session shares take sessions, not events.)
        """
        self.activity.aggregate(state["a"], fact)
        self.windows.aggregate(state["w"], fact)
        self.local_clock.aggregate(state["t"], fact)
        self.orders.aggregate(state["o"], fact)
        self.coupons.aggregate(state["c"], fact)
        self.cart.aggregate(state["v"], fact)
        self.interest.aggregate(state[self.interest.key], fact)
        if self.hours is not None:
            hours = state.get("eh")
            if hours is None:
                hours = state["eh"] = self.hours.initialize()
            self.hours.aggregate_at(hours, fact, fact.tz or self.timezone(state))
        if self.products is not None:
            products = state.get("rp")
            if products is None:
                products = state["rp"] = self.products.initialize()
            self.products.aggregate(products, fact)
        return state

    def aggregate_session(self, state: TraitsState, start_ms: int, tz: str | None) -> TraitsState:
        """Fold one closed session, given its start and zone (None: the person's zone)."""
        tz = tz or self.timezone(state)
        state[self.sessions.key] = self.sessions.aggregate_session(
            state[self.sessions.key], start_ms, tz
        )
        if self.hours is not None:
            hours = state.get("eh")
            if hours is None:
                hours = state["eh"] = self.hours.initialize()
            self.hours.aggregate_session(hours, start_ms, tz)
        return state

    def merge(self, a: TraitsState, b: TraitsState) -> TraitsState:
        """Traits of the union of two persons' events (a new state)."""
        return {fold.key: fold.merge(self._of(fold, a), self._of(fold, b)) for fold in self.folds}

    @staticmethod
    def _of(fold: Fold, state: TraitsState) -> Any:
        """The fold's state; its empty state for a state stored before the fold existed."""
        found = state.get(fold.key)
        return fold.initialize() if found is None else found

    def result(self, state: TraitsState, as_of_ms: int) -> dict[str, Any]:
        """The trait values as of ``as_of_ms`` (windows, recency and decay use it)."""
        out = self.activity.result(state["a"], as_of_ms)
        out.update(self.windows.result(state["w"], as_of_ms))
        out.update(self.local_clock.result(state["t"], as_of_ms))
        out.update(self.orders.result(state["o"], as_of_ms))
        out.update(self.coupons.result(state["c"], as_of_ms))
        out.update(self.cart.result(state["v"], as_of_ms))
        out.update(self.interest.result(state[self.interest.key], as_of_ms))
        out.update(self.sessions.result(state["s"], as_of_ms))
        if self.hours is not None:
            out.update(self.hours.result(self._of(self.hours, state), as_of_ms))
        if self.products is not None:
            out.update(self.products.result(self._of(self.products, state), as_of_ms))
        return out

    def lazy_result(self, state: TraitsState, as_of_ms: int) -> LazyTraits:
        """Like :meth:`result`, but each fold computes only when one of its traits is read."""
        return LazyTraits(self, state, as_of_ms)

    # (the folds' keys written out, as in aggregate: the behavior operator asks per step)
    def last_seen_ms(self, state: TraitsState) -> int | None:
        activity: list[Any] = state["a"]
        last: int | None = activity[1]
        return last

    def totals(self, state: TraitsState) -> tuple[int, int]:
        """``(events_total, sessions_total)`` without computing the other traits."""
        activity: list[Any] = state["a"]
        shares: list[Any] = state["s"]
        events: int = activity[2]
        sessions: int = shares[0]
        return events, sessions

    def first_seen_ms(self, state: TraitsState) -> int | None:
        activity: list[Any] = state["a"]
        first: int | None = activity[0]
        return first

    def timezone(self, state: TraitsState) -> str | None:
        known = state[self.local_clock.key]["z"]
        return None if known is None else str(known[1])


class LazyTraits(Mapping[str, Any]):
    """Trait values computed on first read, one fold at a time (predicates read few)."""

    def __init__(self, traits: Traits, state: TraitsState, as_of_ms: int) -> None:
        self._traits = traits
        self._state = state
        self._as_of_ms = as_of_ms
        self._done: dict[str, Any] = {}
        self._computed: set[str] = set()

    def __getitem__(self, name: str) -> Any:
        if name not in self._done:
            fold = self._traits.fold_of.get(name)
            if fold is None or fold.key in self._computed:
                raise KeyError(name)
            self._computed.add(fold.key)
            self._done.update(fold.result(Traits._of(fold, self._state), self._as_of_ms))
        return self._done[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._traits.fold_of)

    def __len__(self) -> int:
        return len(self._traits.fold_of)


DEFAULT_TRAITS = Traits()


def traits_of(
    person_state: Mapping[str, Any] | None,
    as_of_ms: int | None = None,
    *,
    traits: Traits = DEFAULT_TRAITS,
    operator_name: str = BEHAVIOR,
    lazy: bool = False,
) -> Mapping[str, Any]:
    """The current trait values of a person, from the state the engine stores.

    ``person_state`` is the whole person state (``{"behavior": {...}, ...}``).
    ``as_of_ms`` should be the watermark the caller decides at; by default it is
    one millisecond after the last event folded in. Only events below the
    watermark the operator last saw are folded in (later ones are buffered
    until final). Returns ``{}`` for a person with no folded events. With
    ``lazy`` the values are computed on first read (see :class:`LazyTraits`).
    """
    if not person_state:
        return {}
    slice_ = person_state.get(operator_name)
    if not slice_:
        return {}
    state = slice_[TRAITS_KEY]
    last = traits.last_seen_ms(state)
    if last is None:
        return {}
    as_of = last + 1 if as_of_ms is None else as_of_ms
    return traits.lazy_result(state, as_of) if lazy else traits.result(state, as_of)
