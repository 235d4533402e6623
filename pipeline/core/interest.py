"""Category and product interest with exponential time decay, and repeat views.

Each interesting event adds its weight (:data:`DEFAULT_WEIGHTS`, by event
name) to the score of every product and category it names; a score halves
every ``half_life_ms`` of event time::

    score(t) = sum(weight_i * 2 ** (-(t - ts_i) / half_life_ms))

It is stored as ``[score_at_ref, ref_ms]`` and brought forward lazily, so one
event costs O(items in the event). With a 7-day half-life, a single product
view (weight 1) is worth 0.5 a week later and falls below the default
``floor`` of 0.05 after about 23 days; entries below the floor are pruned
(checked at most once per ``prune_every_ms`` of event time, a day by
default, or when a table grows past twice ``max_entries``; and in
:meth:`Interest.result`) and at most ``max_entries`` per kind are kept, the
highest scores first (ties by name), so state stays bounded.

Repeat views count ``product_viewed`` events per product that is still in the
interest table: ``repeat_views`` lists products viewed at least twice.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pipeline.core.facts import Fact
from pipeline.core.folds import DAY_MS

DEFAULT_WEIGHTS: Mapping[str, float] = {
    "product_viewed": 1.0,
    "product_clicked": 1.0,
    "product_added_to_wishlist": 2.0,
    "product_added": 3.0,
    "checkout_started": 3.0,
    "order_completed": 5.0,
}


def round6(x: Any) -> Any:
    """``round(x, 6)``, the same value, faster for the scores a profile shows.

    ``round`` formats the float as a correctly rounded decimal and parses it
    back (about 0.3 us). For a positive float ``x`` with ``y = x * 1e6`` below
    2**40, ``y`` is within 2**-13 of the exact ``x * 10**6``, so when the fraction
    of ``y`` is not within 0.001 of one half, rounding ``y`` to an integer ``r``
    gives the integer the exact value rounds to, and ``r / 1e6`` (both exact,
    one correctly rounded division) is the double nearest ``r * 10**-6``, which
    is what ``round`` returns. Anything else (ints, ties, large values) goes to
    ``round``::

        >>> [round6(v) == round(v, 6) for v in (0.1234565, 2.0 / 3, 5, 1e300)]
        [True, True, True, True]
    """
    if isinstance(x, float):
        y: float = x * 1e6
        if 0.0 < y < 1e12:
            base = math.floor(y)
            frac = y - base
            if frac < 0.499:
                return base / 1e6
            if frac > 0.501:
                return (base + 1) / 1e6
    return round(x, 6)


@dataclass(frozen=True)
class Interest:
    """Decayed interest fold (see the module docstring).

    State ``{"c": {category: [score, ref_ms]}, "p": {product: [score, ref_ms,
    views]}, "pr": last_prune_ms | None}``.
    """

    half_life_ms: int = 7 * DAY_MS
    floor: float = 0.05
    max_entries: int = 50
    prune_every_ms: int = DAY_MS
    view_event: str = "product_viewed"
    weights: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_WEIGHTS), hash=False)
    key: str = "i"

    def __post_init__(self) -> None:
        if self.half_life_ms <= 0 or self.max_entries <= 0 or self.prune_every_ms <= 0:
            raise ValueError("half_life_ms, max_entries and prune_every_ms must be positive")
        if not self.floor > 0:
            raise ValueError(f"floor must be positive, got {self.floor}")
        if any(w < 0 for w in self.weights.values()):
            raise ValueError("interest weights must be >= 0")

    def decayed(self, score: float, ref_ms: int, at_ms: int) -> float:
        """``score`` (valid at ``ref_ms``) as of ``at_ms``."""
        if at_ms == ref_ms:
            return score
        factor: float = 2.0 ** (-(at_ms - ref_ms) / self.half_life_ms)
        return score * factor

    def initialize(self) -> dict[str, Any]:
        return {"c": {}, "p": {}, "pr": None}

    def aggregate(self, state: dict[str, Any], fact: Fact) -> dict[str, Any]:
        weight = self.weights.get(fact.name, 0.0)
        viewed = fact.name == self.view_event
        if not fact.items or not (weight or viewed):
            return state
        ts = fact.ts
        cats: dict[str, list[Any]] = state["c"]
        prods: dict[str, list[Any]] = state["p"]
        for product, category in fact.items:
            if product is not None:
                entry = prods.get(product)
                if entry is None:
                    prods[product] = [weight, ts, int(viewed)]
                else:
                    entry[0] = self.decayed(entry[0], entry[1], ts) + weight
                    entry[1] = max(entry[1], ts)
                    entry[2] += viewed
            if category is not None and weight:
                centry = cats.get(category)
                if centry is None:
                    cats[category] = [weight, ts]
                else:
                    centry[0] = self.decayed(centry[0], centry[1], ts) + weight
                    centry[1] = max(centry[1], ts)
        last = state["pr"]
        if last is None or ts - last >= self.prune_every_ms or len(prods) > 2 * self.max_entries:
            self._prune(cats, ts)
            self._prune(prods, ts)
            state["pr"] = ts
        return state

    def _prune(self, table: dict[str, list[Any]], at_ms: int) -> None:
        for rank, (k, score) in enumerate(self._top(table, at_ms)):
            if rank >= self.max_entries or score < self.floor:
                del table[k]

    def merge(self, a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {"c": {}, "p": {}, "pr": None}
        for kind in ("c", "p"):
            table: dict[str, list[Any]] = {k: list(e) for k, e in a[kind].items()}
            for k, e in b[kind].items():
                mine = table.get(k)
                if mine is None:
                    table[k] = list(e)
                    continue
                ref = max(mine[1], e[1])
                mine[0] = self.decayed(mine[0], mine[1], ref) + self.decayed(e[0], e[1], ref)
                mine[1] = ref
                if kind == "p":
                    mine[2] += e[2]
            out[kind] = table
        prunes = [t for t in (a["pr"], b["pr"]) if t is not None]
        if prunes:
            out["pr"] = max(prunes)
            self._prune(out["c"], out["pr"])
            self._prune(out["p"], out["pr"])
        return out

    def _top(self, table: Mapping[str, list[Any]], as_of_ms: int) -> list[tuple[str, float]]:
        """All entries, highest score first (ties by name); those below the floor last."""
        floor, ranked = self.floor, []
        for k, e in table.items():
            score = self.decayed(e[0], e[1], as_of_ms)
            ranked.append((score < floor, -score, k))
        ranked.sort()
        return [(k, -neg) for _, neg, k in ranked]

    def _kept(self, table: Mapping[str, list[Any]], as_of_ms: int) -> list[tuple[float, str]]:
        """``(-score, name)`` of the entries at or above the floor, at most ``max_entries``.

        Highest score first, ties by name: the same order as the head of :meth:`_top`,
        without ranking what is below the floor.
        """
        floor, half_life, ranked = self.floor, self.half_life_ms, []
        real: float
        for k, entry in table.items():
            at_ref = entry[0]  # (untyped: an integer weight stays an int, as before)
            ref: int = entry[1]
            if isinstance(at_ref, float):  # the usual case, in native floats when compiled
                real = at_ref
                if as_of_ms != ref:
                    real = real * 2.0 ** (-(as_of_ms - ref) / half_life)
                if real >= floor:
                    ranked.append((-real, k))
                continue
            score = at_ref if as_of_ms == ref else at_ref * 2.0 ** (-(as_of_ms - ref) / half_life)
            if score >= floor:
                ranked.append((-score, k))
        ranked.sort()
        if len(ranked) > self.max_entries:
            del ranked[self.max_entries :]
        return ranked

    def result(self, state: dict[str, Any], as_of_ms: int) -> dict[str, Any]:
        prods: dict[str, list[Any]] = state["p"]
        products = self._kept(prods, as_of_ms)
        repeat: dict[str, int] = {}
        for _, k in products:
            views: int = prods[k][2]
            if views >= 2:
                repeat[k] = views
        return {
            "category_interest": {k: round6(-neg) for neg, k in self._kept(state["c"], as_of_ms)},
            "product_interest": {k: round6(-neg) for neg, k in products},
            "repeat_views": dict(sorted(repeat.items())),
            "max_repeat_views": max(repeat.values(), default=0),
        }
