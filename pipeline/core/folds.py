"""Behavioral traits as folds: ``initialize / aggregate / merge / result``.

Each fold keeps a small JSON-able state (lists, dicts with string keys,
numbers) that lives inside the person's state, and follows one contract:

``initialize() -> S``
    the empty state.
``aggregate(S, fact) -> S``
    fold one event's :class:`~pipeline.core.facts.Fact`. For speed it *owns*
    its input: it may update ``S`` in place and returns it; the caller keeps
    only the returned value.
``merge(S, S) -> S``
    combine two persons' states (identity stitching): equal to aggregating the
    union of their events, up to floating-point rounding and to bounded
    structures pruning differently. Returns a new state, inputs untouched.
``result(S, as_of_ms) -> dict``
    the trait values as of an event time (the watermark, a session close).

The traits operator feeds facts in event-time order (it buffers them until
the watermark passes them), so float sums are bit-for-bit the same whatever
the arrival order. Times are epoch ms; day and hour boundaries of the windows
are UTC, local-time histograms use the person's IANA zone.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Mapping
from typing import Any, Protocol

from pipeline.core.facts import CHECKOUT_EVENT, ORDER_EVENT, Fact
from pipeline.core.localtime import (
    DAY_MS,
    HOUR_MS,
    MINUTE_MS,
    LocalClock,
    SessionShares,
    local_time,
)

__all__ = [
    "COUNT_WINDOWS", "DAY_MS", "HOUR_MS", "MINUTE_MS", "Activity", "CartValue", "Coupons", "Fold",
    "LocalClock", "Orders", "SessionShares", "WindowCounts", "local_time", "window_count",
    "window_expiries",
]  # fmt: skip


class Fold(Protocol):
    """One trait fold (see the module docstring for the contract)."""

    @property
    def key(self) -> str:
        """Short key of this fold's state inside the traits state."""

    def initialize(self) -> Any: ...
    def aggregate(self, state: Any, fact: Fact) -> Any: ...
    def merge(self, a: Any, b: Any) -> Any: ...
    def result(self, state: Any, as_of_ms: int) -> dict[str, Any]: ...


def _add_counts(a: Mapping[str, int], b: Mapping[str, int]) -> dict[str, int]:
    out = dict(a)
    for name, n in b.items():
        out[name] = out.get(name, 0) + n
    return out


def _ratio(num: float, den: float) -> float | None:
    return num / den if den else None


class Activity:
    """First and last seen, recency, event totals by name.

    State ``[first_ms | None, last_ms | None, total, {name: count}]``.
    """

    key = "a"

    def initialize(self) -> list[Any]:
        return [None, None, 0, {}]

    def aggregate(self, state: list[Any], fact: Fact) -> list[Any]:
        # (typed locals: the compiled core compares and adds native ints, calls dict.get directly)
        ts = fact.ts
        first: int | None = state[0]
        if first is None or ts < first:
            state[0] = ts
        last: int | None = state[1]
        if last is None or ts > last:
            state[1] = ts
        total: int = state[2]
        state[2] = total + 1
        counts: dict[str, int] = state[3]
        name = fact.name
        counts[name] = counts.get(name, 0) + 1
        return state

    def merge(self, a: list[Any], b: list[Any]) -> list[Any]:
        firsts = [t for t in (a[0], b[0]) if t is not None]
        lasts = [t for t in (a[1], b[1]) if t is not None]
        return [min(firsts, default=None), max(lasts, default=None), a[2] + b[2],
                _add_counts(a[3], b[3])]  # fmt: skip

    def result(self, state: list[Any], as_of_ms: int) -> dict[str, Any]:
        return {
            "first_seen_ms": state[0],
            "last_seen_ms": state[1],
            "recency_ms": None if state[1] is None else max(0, as_of_ms - state[1]),
            "events_total": state[2],
            "event_counts_total": dict(sorted(state[3].items())),
        }


#: Bucket levels: key, bucket size (ms), buckets kept behind the newest one.
LEVELS = (("m", MINUTE_MS, 60), ("h", HOUR_MS, 7 * 24), ("d", DAY_MS, 30))
#: Sliding windows: trait suffix, size (ms), bucket level (= resolution).
WINDOWS = (("1h", HOUR_MS, "m"), ("1d", DAY_MS, "h"), ("7d", 7 * DAY_MS, "h"),
           ("30d", 30 * DAY_MS, "d"))  # fmt: skip


class WindowCounts:
    """Counts per event name over sliding windows: last hour, day, 7 and 30 days.

    Events go into tumbling buckets at three resolutions (minute, hour, day,
    UTC-aligned). The window "as of t" is the hopping window on its level's grid
    that ends at ``e``, ``t`` rounded *up* to the grid: ``[e - size, e)``. It
    holds every folded event from ``e - size`` up to ``t`` (so today's order is
    in ``counts_30d`` at once); its old edge moves in bucket steps, so it spans
    between ``size - bucket`` and ``size`` before ``t``. Resolution: ``1h`` by
    the minute, ``1d`` and ``7d`` by the hour, ``30d`` by the UTC day.
    State is bounded: at most 61 + 169 + 31 sparse buckets, older ones pruned.

    State ``{"m"|"h"|"d": [[bucket_index, {name: count}], ...]}`` sorted by index.
    """

    key = "w"

    def initialize(self) -> dict[str, list[list[Any]]]:
        return {level: [] for level, _, _ in LEVELS}

    def aggregate(self, state: dict[str, list[list[Any]]], fact: Fact) -> Any:
        ts, name = fact.ts, fact.name
        # the levels of LEVELS written out (a compiled loop over it unboxes each tuple)
        _bump(state["m"], ts // MINUTE_MS, name, 60)
        _bump(state["h"], ts // HOUR_MS, name, 7 * 24)
        _bump(state["d"], ts // DAY_MS, name, 30)
        return state

    def merge(self, a: dict[str, list[list[Any]]], b: dict[str, list[list[Any]]]) -> Any:
        out: dict[str, list[list[Any]]] = {}
        for level, _, keep in LEVELS:
            by_idx: dict[int, dict[str, int]] = {}
            for idx, counts in [*a[level], *b[level]]:
                by_idx[idx] = _add_counts(by_idx.get(idx, {}), counts)
            buckets = [[idx, by_idx[idx]] for idx in sorted(by_idx)]
            _prune(buckets, keep)
            out[level] = buckets
        return out

    def result(self, state: dict[str, list[list[Any]]], as_of_ms: int) -> dict[str, Any]:
        day, week = _day_and_week(state["h"], as_of_ms)  # (one walk over the hour buckets)
        return {
            "counts_1h": window_count(state, "counts_1h", as_of_ms, None),
            "counts_1d": day,
            "counts_7d": week,
            "counts_30d": window_count(state, "counts_30d", as_of_ms, None),
        }


assert LEVELS == (("m", MINUTE_MS, 60), ("h", HOUR_MS, 7 * 24), ("d", DAY_MS, 30))  # (_bump)


def _index(bucket: list[Any]) -> int:
    idx: int = bucket[0]
    return idx


def _bump(buckets: list[list[Any]], idx: int, name: str, keep: int) -> None:
    """Count ``name`` once in bucket ``idx`` of one level (created, and old ones pruned)."""
    counts: dict[str, int]
    if buckets:
        last = buckets[-1]
        newest: int = last[0]
        if newest == idx:  # the common case: same bucket as last event
            counts = last[1]
            counts[name] = counts.get(name, 0) + 1
            return
    i = bisect_left(buckets, idx, key=_index)
    if i < len(buckets) and buckets[i][0] == idx:
        counts = buckets[i][1]
    else:
        counts = {}
        buckets.insert(i, [idx, counts])
        _prune(buckets, keep)
    counts[name] = counts.get(name, 0) + 1


#: Sliding count windows by trait name: ``(size_ms, bucket level, bucket size_ms)``.
COUNT_WINDOWS = {
    f"counts_{suffix}": (size, level, {lv: unit for lv, unit, _ in LEVELS}[level])
    for suffix, size, level in WINDOWS
}


def window_count(
    state: dict[str, list[list[Any]]], trait: str, as_of_ms: int, name: str | None
) -> Any:
    """One count window of :class:`WindowCounts` as of a time, without the others.

    ``name`` None gives the whole ``{event name: count}`` map (key-sorted), else
    that event's count, or ``None`` when it is 0 (the map has no such key).
    """
    size, level, unit = COUNT_WINDOWS[trait]
    end = (as_of_ms - 1) // unit + 1
    start = end - size // unit
    # buckets are sorted by index: walk back from the newest (counts are ints: any order)
    # (typed locals: the compiled core compares native ints and iterates dicts directly)
    buckets = state[level]
    idx: int
    counts: dict[str, int]
    if name is not None:
        total = 0
        for i in range(len(buckets) - 1, -1, -1):  # (not reversed(): mypyc cannot compile it)
            bucket = buckets[i]
            idx = bucket[0]
            if idx < end:
                if idx < start:
                    break
                counts = bucket[1]
                total += counts.get(name, 0)
        return total or None
    totals: dict[str, int] = {}
    for i in range(len(buckets) - 1, -1, -1):
        bucket = buckets[i]
        idx = bucket[0]
        if idx < end:
            if idx < start:
                break
            counts = bucket[1]
            for key, n in counts.items():
                totals[key] = totals.get(key, 0) + n
    return dict(sorted(totals.items()))


def _day_and_week(buckets: list[list[Any]], as_of_ms: int) -> tuple[dict[str, int], dict[str, int]]:
    """``window_count`` of ``counts_1d`` and of ``counts_7d`` (both on the hour buckets)."""
    end = (as_of_ms - 1) // HOUR_MS + 1
    day_start, week_start = end - DAY_MS // HOUR_MS, end - 7 * DAY_MS // HOUR_MS
    day: dict[str, int] = {}
    week: dict[str, int] = {}
    idx: int
    counts: dict[str, int]
    for i in range(len(buckets) - 1, -1, -1):
        bucket = buckets[i]
        idx = bucket[0]
        if idx < end:
            if idx < week_start:
                break
            counts = bucket[1]
            for key, n in counts.items():
                week[key] = week.get(key, 0) + n
            if idx >= day_start:
                for key, n in counts.items():
                    day[key] = day.get(key, 0) + n
    return dict(sorted(day.items())), dict(sorted(week.items()))


def window_expiries(
    state: dict[str, list[list[Any]]], trait: str, as_of_ms: int, name: str | None
) -> list[tuple[int, int]]:
    """``(time, count)`` of each bucket in the window as of ``as_of_ms``, oldest first.

    ``time`` is the first time at which the bucket has left the window (with no
    new event): the window as of ``t`` ends at ``ceil(t / unit)``, so bucket
    ``i`` of a window ``n`` buckets long is out from ``(i + n) * unit + 1`` on.
    """
    size, level, unit = COUNT_WINDOWS[trait]
    n = size // unit
    end = (as_of_ms - 1) // unit + 1
    out = []
    buckets = state[level]
    for i in range(len(buckets) - 1, -1, -1):  # newest first, then put oldest first
        idx, counts = buckets[i]
        if idx < end:
            if idx < end - n:
                break
            count = counts.get(name, 0) if name is not None else sum(counts.values())
            if count:
                out.append(((idx + n) * unit + 1, count))
    out.reverse()
    return out


def _prune(buckets: list[list[Any]], keep: int) -> None:
    if not buckets:
        return
    oldest = buckets[-1][0] - keep
    drop = 0
    while drop < len(buckets) and buckets[drop][0] < oldest:
        drop += 1
    if drop:
        del buckets[:drop]


class Orders:
    """Recency, frequency and monetary value of orders (``order_completed``).

    State ``[orders, revenue_sum, last_order_ms | None]``.
    """

    key = "o"

    def initialize(self) -> list[Any]:
        return [0, 0.0, None]

    def aggregate(self, state: list[Any], fact: Fact) -> list[Any]:
        if fact.name == ORDER_EVENT:
            state[0] += 1
            state[1] += fact.revenue or 0.0
            state[2] = fact.ts if state[2] is None else max(state[2], fact.ts)
        return state

    def merge(self, a: list[Any], b: list[Any]) -> list[Any]:
        lasts = [t for t in (a[2], b[2]) if t is not None]
        return [a[0] + b[0], a[1] + b[1], max(lasts, default=None)]

    def result(self, state: list[Any], as_of_ms: int) -> dict[str, Any]:
        return {
            "orders_total": state[0],
            "revenue_total": state[1],
            "average_order_value": _ratio(state[1], state[0]),
            "last_order_ms": state[2],
            "order_recency_ms": None if state[2] is None else max(0, as_of_ms - state[2]),
        }


class Coupons:
    """Coupon use, and checkout-to-order conversion with and without a coupon.

    A checkout or order "has a coupon" when it carries a ``coupon`` property.
    State ``[coupon_events, checkouts_with, checkouts_without, orders_with,
    orders_without]``.
    """

    key = "c"

    def initialize(self) -> list[int]:
        return [0, 0, 0, 0, 0]

    def aggregate(self, state: list[int], fact: Fact) -> list[int]:
        if fact.coupon:
            state[0] += 1
        if fact.name == CHECKOUT_EVENT:
            state[1 if fact.coupon else 2] += 1
        elif fact.name == ORDER_EVENT:
            state[3 if fact.coupon else 4] += 1
        return state

    def merge(self, a: list[int], b: list[int]) -> list[int]:
        return [x + y for x, y in zip(a, b, strict=True)]

    def result(self, state: list[int], as_of_ms: int) -> dict[str, Any]:
        coupon_events, ck_with, ck_without, ord_with, ord_without = state
        return {
            "coupon_uses": coupon_events,
            "orders_with_coupon": ord_with,
            "orders_without_coupon": ord_without,
            "conversion_with_coupon": _ratio(ord_with, ck_with),
            "conversion_without_coupon": _ratio(ord_without, ck_without),
            "coupon_order_share": _ratio(ord_with, ord_with + ord_without),
        }


class CartValue:
    """Average and maximum cart value over cart events. State ``[n, sum, max | None]``."""

    key = "v"

    def initialize(self) -> list[Any]:
        return [0, 0.0, None]

    def aggregate(self, state: list[Any], fact: Fact) -> list[Any]:
        if fact.cart is not None:
            state[0] += 1
            state[1] += fact.cart
            state[2] = fact.cart if state[2] is None else max(state[2], fact.cart)
        return state

    def merge(self, a: list[Any], b: list[Any]) -> list[Any]:
        maxima = [m for m in (a[2], b[2]) if m is not None]
        return [a[0] + b[0], a[1] + b[1], max(maxima, default=None)]

    def result(self, state: list[Any], as_of_ms: int) -> dict[str, Any]:
        return {"cart_value_avg": _ratio(state[1], state[0]), "cart_value_max": state[2]}
