"""Next best product: item-to-item co-occurrence, the person's decayed interest, minus purchases.

**What the stream keeps** (only with ``predictions.recs``): the fold
:class:`RecentProducts` (traits key ``"rp"``): the product events of about the
last day (``[ts, product, kind]``, kind ``v`` viewed / ``a`` added / ``o``
ordered, at most :data:`MAX_RECENT`), to describe each closed session, and
the products the person bought (``{product: last order ms}``, at most
:data:`MAX_BOUGHT`, the oldest dropped). Its trait is ``purchased_products``
(newest first).

**Training records.** At each session close the stream emits on
``training.recs`` (key = person) :func:`session_example`::

    {"task": "recs", "person": "u-42", "scored_at_ms": closed_at, "start_ms": ...,
     "end_ms": ..., "viewed": ["p1", ...], "added": [...], "purchased": [...]}

``pulse train --task recs`` (:mod:`pipeline.tools.train_recs`) counts, per
person, product pairs seen in the same session (weight 1) or in two sessions
of theirs starting within 7 days (weight 0.5; a pair counts at most once per
person, its largest weight), scores ``sim(a, b) = c(a, b) / sqrt(n(a) n(b))``
(``n``: people who had the product), keeps the top neighbours per product
(bounded) and publishes model ``recs``::

    {"format": "pulse-model", "version": 1, "task": "recs", "kind": "recs",
     "recs": {"neighbours": {"p1": [["p2", 0.41], ["p7", 0.2]], ...},
              "popular": ["p9", "p1", ...], "self_weight": 1.0},
     "trained": {...}}

**Online** (:func:`recommend`): ``score(b) = sum over the person's products a
of interest(a) * sim(a, b)``, with ``sim(a, a) = self_weight`` (a product the
person keeps looking at is itself a good next product), minus the products
they bought; ties by product id; filled up with the most popular products
the person has not bought when fewer than ``k`` score.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pipeline.core.facts import Fact
from pipeline.core.localtime import DAY_MS
from pipeline.core.scoring import table_body
from pipeline.errors import ModelError

TASK = "recs"
MAX_RECENT = 200
MAX_BOUGHT = 200
RECENT_MS = DAY_MS
#: Event name -> kind letter in the recent product events.
KINDS: Mapping[str, str] = {
    "product_viewed": "v",
    "product_clicked": "v",
    "product_added": "a",
    "product_added_to_wishlist": "a",
    "order_completed": "o",
}


class RecentProducts:
    """Recent product events and purchased products (module docstring).

    State ``{"e": [[ts, product, kind], ...] sorted, "b": {product: last_order_ms}}``.
    """

    key = "rp"

    def initialize(self) -> dict[str, Any]:
        return {"e": [], "b": {}}

    def aggregate(self, state: dict[str, Any], fact: Fact) -> dict[str, Any]:
        kind = KINDS.get(fact.name)
        if kind is None or not fact.items:
            return state
        ts = fact.ts
        recent: list[list[Any]] = state["e"]
        bought: dict[str, int] = state["b"]
        for item in fact.items:
            product = item[0]
            if product is None:
                continue
            recent.append([ts, product, kind])
            if kind == "o":
                bought[product] = max(ts, bought.get(product, ts))
        _trim(state, ts)
        return state

    def merge(self, a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
        recent = sorted([*a["e"], *b["e"]], key=lambda e: (e[0], e[1], e[2]))
        bought = dict(a["b"])
        for product, ts in b["b"].items():
            bought[product] = max(ts, bought.get(product, ts))
        out = {"e": [list(e) for e in recent], "b": bought}
        if recent:
            _trim(out, recent[-1][0])
        return out

    def result(self, state: dict[str, Any], as_of_ms: int) -> dict[str, Any]:
        bought: dict[str, int] = state["b"]
        return {"purchased_products": [p for p, _ in sorted(bought.items(), key=_newest)]}


def _newest(entry: tuple[str, int]) -> tuple[int, str]:
    return -entry[1], entry[0]


def _trim(state: dict[str, Any], now_ms: int) -> None:
    recent: list[list[Any]] = state["e"]
    horizon = now_ms - RECENT_MS
    drop = 0
    while drop < len(recent) and recent[drop][0] < horizon:
        drop += 1
    drop = max(drop, len(recent) - MAX_RECENT)
    if drop > 0:
        del recent[:drop]
    bought: dict[str, int] = state["b"]
    if len(bought) > MAX_BOUGHT:
        for product, _ in sorted(bought.items(), key=_newest)[MAX_BOUGHT:]:
            del bought[product]


def session_example(
    session: Mapping[str, Any], person_id: str, recent: Mapping[str, Any] | None = None
) -> dict[str, Any] | None:
    """The ``training.recs`` record of a closed session (module docstring).

    ``session`` is the ``sessions`` record (``start_ms``, ``end_ms``,
    ``closed_at_ms``, ``products``); ``recent`` the person's ``"rp"`` traits
    state (``traits_state.get("rp")``) folded at least up to the session's
    end. Products are split by what was done with them in
    ``[start_ms, end_ms]``; without ``recent`` every product of the session
    counts as viewed. Each list is sorted, a product in at most the one of its
    strongest kind (purchased > added > viewed). None for a session without products.
    """
    start: int = session["start_ms"]
    end: int = session["end_ms"]
    strongest: dict[str, str] = {}
    rank = {"v": 0, "a": 1, "o": 2}
    if recent is not None:
        for ts, product, kind in recent.get("e", []):
            if start <= ts <= end and rank[kind] >= rank.get(strongest.get(product, "v"), 0):
                strongest[product] = kind
    for product in session.get("products") or []:
        strongest.setdefault(product, "v")
    if not strongest:
        return None
    return {
        "task": TASK,
        "person": person_id,
        "scored_at_ms": session["closed_at_ms"],
        "start_ms": start,
        "end_ms": end,
        "viewed": sorted(p for p, k in strongest.items() if k == "v"),
        "added": sorted(p for p, k in strongest.items() if k == "a"),
        "purchased": sorted(p for p, k in strongest.items() if k == "o"),
    }


# -- the model and the online top-k ---------------------------------------------------------


@dataclass(frozen=True)
class RecsModel:
    """Model ``recs``: neighbours per product (best first), the most popular, ``sim(a, a)``."""

    neighbours: Mapping[str, tuple[tuple[str, float], ...]]
    popular: tuple[str, ...]
    self_weight: float = 1.0


def load_recs_model(doc: Mapping[str, Any]) -> RecsModel:
    """Validate a ``recs`` model document (module docstring) into a :class:`RecsModel`.

    Raises :class:`~pipeline.errors.ModelError` naming what is wrong.
    """
    body = table_body(doc, TASK)
    raw = body.get("neighbours")
    if not isinstance(raw, Mapping):
        raise ModelError(f"{TASK}: no neighbours")
    neighbours: dict[str, tuple[tuple[str, float], ...]] = {}
    for product, entries in raw.items():
        if not isinstance(entries, list):
            raise ModelError(f"{TASK}: neighbours[{product!r}] is not a list")
        pairs: list[tuple[str, float]] = []
        for entry in entries:
            if (
                not isinstance(entry, list | tuple)
                or len(entry) != 2
                or not isinstance(entry[0], str)
                or not isinstance(entry[1], int | float)
                or not math.isfinite(entry[1])
            ):
                raise ModelError(f"{TASK}: neighbours[{product!r}] needs [product, number] pairs")
            pairs.append((entry[0], float(entry[1])))
        neighbours[str(product)] = tuple(pairs)
    popular = body.get("popular", [])
    if not isinstance(popular, list) or not all(isinstance(p, str) for p in popular):
        raise ModelError(f"{TASK}: popular must be a list of product ids")
    weight = body.get("self_weight", 1.0)
    if not isinstance(weight, int | float) or not math.isfinite(weight) or weight < 0:
        raise ModelError(f"{TASK}: self_weight must be a number >= 0")
    return RecsModel(neighbours, tuple(popular), float(weight))


def recommend_scored(
    model: RecsModel, interest: Mapping[str, float], bought: Collection[str], k: int
) -> list[tuple[str, float]]:
    """The top ``k`` ``(product, score)`` (module docstring); popular fill-ins score 0.

    ``interest`` is the ``product_interest`` trait (decayed scores), ``bought``
    the ``purchased_products`` trait.

    >>> m = RecsModel({"a": (("b", 0.5), ("c", 0.2))}, ("z", "c"), 1.0)
    >>> recommend_scored(m, {"a": 2.0}, {"a"}, 3)
    [('b', 1.0), ('c', 0.4), ('z', 0.0)]
    """
    if k <= 0:
        return []
    skip = set(bought)
    scores: dict[str, float] = {}
    self_weight = model.self_weight
    for product in sorted(interest):
        weight = float(interest[product])
        if weight <= 0:
            continue
        if self_weight > 0:
            scores[product] = scores.get(product, 0.0) + weight * self_weight
        for other, sim in model.neighbours.get(product, ()):
            scores[other] = scores.get(other, 0.0) + weight * sim
    ranked = sorted(
        ((-s, p) for p, s in scores.items() if p not in skip and s > 0), key=lambda x: x
    )
    out = [(p, round(-neg, 6)) for neg, p in ranked[:k]]
    if len(out) < k:
        taken = {p for p, _ in out}
        for product in model.popular:
            if len(out) >= k:
                break
            if product not in skip and product not in taken:
                out.append((product, 0.0))
                taken.add(product)
    return out


def recommend(
    model: RecsModel, interest: Mapping[str, float], bought: Collection[str], k: int
) -> list[str]:
    """The top ``k`` product ids for a person (:func:`recommend_scored` without the scores)."""
    return [p for p, _ in recommend_scored(model, interest, bought, k)]


def recs_of(model: RecsModel | None, traits: Mapping[str, Any], k: int) -> list[str] | None:
    """The ``recs`` lookup: top ``k`` for a person's traits (as of the decision).

    None without a model. Reads ``product_interest`` and ``purchased_products``.
    """
    if model is None:
        return None
    interest = traits.get("product_interest") or {}
    bought = traits.get("purchased_products") or ()
    return recommend(model, interest, bought, k)


def pairs_of(items: Sequence[str]) -> list[tuple[str, str]]:
    """Ordered pairs ``(a, b)``, ``a != b``, of distinct items (for the trainer and tests)."""
    distinct = sorted(set(items))
    return [(a, b) for a in distinct for b in distinct if a != b]


__all__ = [
    "KINDS", "TASK", "RecentProducts", "RecsModel", "load_recs_model", "pairs_of", "recommend",
    "recommend_scored", "recs_of", "session_example",
]  # fmt: skip
