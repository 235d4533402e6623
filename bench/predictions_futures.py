"""The synthetic months' evaluation (:mod:`bench.predictions_synthetic`): what happened next.

Each person's product and engagement events in time order, and the hit rates
of next best product and best send time against their baselines.
"""

from __future__ import annotations

import bisect
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from bench.predictions_stream import DAY_MS, K
from pipeline.core.events import Event

# -- the persons' futures --------------------------------------------------------------


@dataclass
class Timeline:
    """One person's product and engagement events, in event time."""

    views: list[tuple[int, str]] = field(default_factory=list)
    takes: list[tuple[int, tuple[str, ...]]] = field(default_factory=list)  # adds and orders
    orders: list[tuple[int, tuple[str, ...]]] = field(default_factory=list)
    engaged: dict[str, list[tuple[int, str | None]]] = field(default_factory=dict)


def _products(e: Event) -> tuple[str, ...]:
    props = e.properties
    if "products" in props:
        return tuple(str(p["product_id"]) for p in props["products"] if "product_id" in p)
    return (str(props["product_id"]),) if "product_id" in props else ()


def timelines(events: Iterable[Event], channels: Sequence[str]) -> dict[str, Timeline]:
    out: dict[str, Timeline] = defaultdict(Timeline)
    for e in sorted(events, key=lambda e: (e.timestamp_ms, e.message_id)):
        t = out[e.person_id]
        name = e.event or ""
        if name == "product_viewed":
            t.views.extend((e.timestamp_ms, p) for p in _products(e))
        elif name in ("product_added", "order_completed"):
            t.takes.append((e.timestamp_ms, _products(e)))
            if name == "order_completed":
                t.orders.append((e.timestamp_ms, _products(e)))
        else:
            for channel in channels:
                if name in (f"{channel}_opened", f"{channel}_clicked"):
                    tz = e.context.get("timezone")
                    t.engaged.setdefault(channel, []).append((e.timestamp_ms, tz))
    return out


def _after(rows: Sequence[tuple[int, Any]], t: int) -> int:
    """Index of the first row after time ``t``."""
    return bisect.bisect_right(rows, t, key=lambda row: row[0])


def bought_by(tl: Timeline, t: int) -> set[str]:
    return {p for ts, items in tl.orders if ts <= t for p in items}


def most_recently_viewed(tl: Timeline, t: int, skip: set[str], k: int = K) -> list[str]:
    out: list[str] = []
    for _, product in reversed(tl.views[: _after(tl.views, t)]):
        if product not in skip and product not in out:
            out.append(product)
            if len(out) == k:
                break
    return out


def popular_before(timelines_: dict[str, Timeline], cut_ms: int) -> list[str]:
    counts: Counter[str] = Counter()
    for tl in timelines_.values():
        for ts, items in tl.takes:
            if ts < cut_ms:
                counts.update(set(items))
    return [p for p, _ in sorted(counts.items(), key=lambda x: (-x[1], x[0]))]


# -- next best product -------------------------------------------------------------------


@dataclass
class HitCounter:
    points: int = 0
    hits: int = 0
    recall_points: int = 0
    recall_sum: float = 0.0

    def add(self, top: Sequence[str], nxt: Sequence[str] | None, week: set[str]) -> None:
        if nxt is not None:
            self.points += 1
            self.hits += any(p in top for p in nxt)
        if week:
            self.recall_points += 1
            self.recall_sum += len(week.intersection(top)) / len(week)

    def to_json(self) -> dict[str, Any]:
        return {
            "points": self.points,
            "hit_rate": round(self.hits / self.points, 4) if self.points else None,
            "recall_points": self.recall_points,
            "recall": round(self.recall_sum / self.recall_points, 4)
            if self.recall_points
            else None,
        }


def eval_recs(
    profiles: Iterable[dict[str, Any]],
    tls: dict[str, Timeline],
    model: Any,
    cut_ms: int,
    k: int = K,
) -> dict[str, Any]:
    from pipeline.core.recommend import recs_of

    popular = popular_before(tls, cut_ms)
    scores = {"recs": HitCounter(), "most_popular": HitCounter(), "recently_viewed": HitCounter()}
    from_profile = 0
    for prof in profiles:
        t = prof["as_of_ms"]
        tl = tls.get(prof["person_id"])
        if t < cut_ms or tl is None:
            continue
        i = _after(tl.takes, t)
        nxt = tl.takes[i][1] if i < len(tl.takes) else None
        week = {p for ts, items in tl.takes[i:] if ts <= t + 7 * DAY_MS for p in items}
        if nxt is None and not week:
            continue
        skip = bought_by(tl, t)
        mine = prof.get("recs")
        if isinstance(mine, list):
            from_profile += 1
        else:
            mine = recs_of(model, prof.get("traits", {}), k) or []
        scores["recs"].add(mine[:k], nxt, week)
        scores["most_popular"].add([p for p in popular if p not in skip][:k], nxt, week)
        scores["recently_viewed"].add(most_recently_viewed(tl, t, skip, k), nxt, week)
    out = {name: c.to_json() for name, c in scores.items()}
    out["recs_from_profiles"] = from_profile
    return out


# -- best send time -----------------------------------------------------------------------


def _dist(a: int, b: int, period: int) -> int:
    d = abs(a - b) % period
    return min(d, period - d)


def eval_send_time(
    profiles: Iterable[dict[str, Any]],
    tls: dict[str, Timeline],
    prior: Any,
    cut_ms: int,
    channels: Sequence[str],
    min_events: int,
    truth: dict[str, dict[str, int]],
) -> dict[str, Any]:
    from pipeline.core.sendtime import best_hour, best_hour_of, hour_of_week

    out: dict[str, Any] = {}
    for channel in channels:
        population = best_hour(None, channel, prior, min_events=1 << 30)
        rows: Counter[str] = Counter()
        for prof in profiles:
            t = prof["as_of_ms"]
            tl = tls.get(prof["person_id"])
            if t < cut_ms or tl is None or channel not in tl.engaged:
                continue
            rows_ = tl.engaged[channel]
            i = _after(rows_, t)
            if i >= len(rows_):
                continue
            ts, tz = rows_[i]
            how = hour_of_week(ts, tz)
            rows["points"] += 1
            mine = best_hour_of(prior, prof.get("traits", {}), channel, min_events)
            if mine is not None:
                rows["predicted"] += 1
                rows["person" if mine.source == "person" else "fallback"] += 1
                rows["week_hit"] += _dist(mine.how, how, 168) <= 1
                rows["day_hit"] += _dist(mine.hour, how % 24, 24) <= 1
            if population is not None:
                rows["pop_week_hit"] += _dist(population.how, how, 168) <= 1
                rows["pop_day_hit"] += _dist(population.hour, how % 24, 24) <= 1
            want = truth.get(prof["person_id"], {}).get(channel)
            if want is not None:
                rows["truth_day_hit"] += _dist(want, how % 24, 24) <= 1
        n = rows["points"] or 1
        out[channel] = {
            "points": rows["points"],
            "predicted": rows["predicted"],
            "from_person": rows["person"],
            "best_hour_week": round(rows["week_hit"] / n, 4),
            "best_hour_day": round(rows["day_hit"] / n, 4),
            "population_week": round(rows["pop_week_hit"] / n, 4),
            "population_day": round(rows["pop_day_hit"] / n, 4),
            "truth_day": round(rows["truth_day_hit"] / n, 4),
            "population_best_how": None if population is None else population.how,
        }
    return out
