"""Predictions on the stream: the ``predictions:`` config, features, and labels.

**Config.** A topology's ``predictions:`` section becomes a frozen
:class:`PredictionsConfig`: the tasks (``purchase_7d``: an ``order_completed``
within 7 days; ``churn_30d``: *no* event within 30 days), the scoring points
(``session_close``), the next-best-product ``k`` and the best-send-time
channels. No section: no config, and the stage does exactly what it did
without predictions (same outputs, same state).

**Features** ("stream/1"): :func:`features_of` maps a person's traits as of a
time to ``{name: number}``. The *same* function makes training examples here
and online scores in the rule stage (:mod:`pipeline.core.models`), so the
model sees online what it was trained on. A feature that is not defined (no
order yet: no ``days_since_last_purchase``) is left out: missing.

**Labels** (:mod:`pipeline.core.labels`): at each scoring point the stage
snapshots :func:`feature_values` and the stream labels it; the order facts
the features read beyond the traits (first order, distinct order days) are
kept in the rule stage's slice (:func:`observe_order`, :func:`order_traits`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pipeline.core.folds import DAY_MS

#: ``label_if`` values: the label is 1 if the outcome happens / does not happen.
PRESENT, ABSENT = "present", "absent"
#: An outcome that any event satisfies (``churn_30d``).
ANY_EVENT = "any_event"
#: The scoring points (the only one for now).
SESSION_CLOSE = "session_close"
FEATURES_VERSION = "stream/1"
#: Logical topics: examples go to ``training.<task>``.
TRAINING = "training."
#: Where the rule stage keeps the order facts in its slice.
ORDER_FACTS = "pf"


@dataclass(frozen=True, slots=True)
class PredictionTask:
    """One prediction: label 1 if ``outcome`` happens in ``(t, t + horizon_ms]``.

    With ``label_if="absent"`` the label is 1 if it does *not* happen (churn).
    ``outcome`` is an event name or :data:`ANY_EVENT`.
    """

    name: str
    outcome: str
    horizon_ms: int
    label_if: str = PRESENT

    def __post_init__(self) -> None:
        if not self.name or not all(c.isalnum() or c in "_-" for c in self.name):
            raise ValueError(f"task name {self.name!r}: letters, digits, _ and - only")
        if self.name in ("censored", "recs", "send_time"):
            raise ValueError(f"task name {self.name!r} is reserved")
        if self.horizon_ms <= 0:
            raise ValueError(f"task {self.name!r}: horizon must be positive")
        if self.label_if not in (PRESENT, ABSENT):
            raise ValueError(f"task {self.name!r}: label_if must be present or absent")

    @property
    def topic(self) -> str:
        """The logical topic of its examples: ``training.<task>``."""
        return TRAINING + self.name


@dataclass(frozen=True, slots=True)
class PredictionsConfig:
    """A topology's ``predictions:`` section (see the module docstring).

    ``recs_k`` 0 = next best product off; ``send_channels`` empty = best send
    time off.
    """

    tasks: tuple[PredictionTask, ...] = ()
    score_at: str = SESSION_CLOSE
    recs_k: int = 0
    send_channels: tuple[str, ...] = ()
    send_min_events: int = 5

    def __post_init__(self) -> None:
        if self.score_at != SESSION_CLOSE:
            raise ValueError(f"score_at must be {SESSION_CLOSE}, got {self.score_at!r}")
        names = [t.name for t in self.tasks]
        if len(set(names)) != len(names):
            raise ValueError("task names must be unique")
        if len(self.tasks) > 30:
            raise ValueError("at most 30 tasks")
        if self.recs_k < 0 or self.send_min_events < 0:
            raise ValueError("recs.k and send_time.min_events must be >= 0")

    @property
    def outcomes(self) -> frozenset[str]:
        """The outcome event names (:data:`ANY_EVENT` included if a task has it)."""
        return frozenset(t.outcome for t in self.tasks)

    @property
    def longest_horizon_ms(self) -> int:
        return max((t.horizon_ms for t in self.tasks), default=0)


# -- features ("stream/1") -------------------------------------------------------------

#: ``(feature prefix, event name)`` counted over 1, 7 and 30 days.
COUNTED = (
    ("views", "product_viewed"),
    ("adds", "product_added"),
    ("checkouts", "checkout_started"),
    ("orders", "order_completed"),
    ("searches", "products_searched"),
    ("pages", "page_viewed"),
    ("email_opens", "email_opened"),
    ("email_clicks", "email_clicked"),
    ("push_opens", "push_opened"),
    ("dismissals", "email_dismissed"),
)
_WINDOWS = (("1d", "counts_1d"), ("7d", "counts_7d"), ("30d", "counts_30d"))


def _feature_names() -> tuple[str, ...]:
    names = [
        "purchases", "purchase_days", "days_since_first_purchase", "days_since_last_purchase",
        "revenue_total", "average_order_value", "events_total", "days_since_first_seen",
        "days_since_last_seen", "sessions", "sessions_night_share", "sessions_weekend_share",
        "cart_value_avg", "cart_value_max", "coupon_uses", "orders_with_coupon",
        "coupon_order_share", "max_repeat_views", "interest_categories",
        "interest_concentration", "interest_products", "top_product_interest",
        "events_1d", "events_7d", "events_30d", "dismissals_push_30d",
    ]  # fmt: skip
    for prefix, _ in COUNTED:
        for suffix, _ in _WINDOWS:
            names.append(f"{prefix}_{suffix}")
    return tuple(names)


#: Every feature name of "stream/1", in the order snapshots store them.
FEATURE_NAMES = _feature_names()


def _num(value: Any) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        x = float(value)
        return x if math.isfinite(x) else None
    return None


def _days(since_ms: Any, at_ms: int) -> float | None:
    if since_ms is None or isinstance(since_ms, bool) or not isinstance(since_ms, int | float):
        return None
    return max(0.0, (at_ms - since_ms) / DAY_MS)


def _count(window: Any, name: str) -> float:
    if not isinstance(window, Mapping):
        return 0.0
    return float(window.get(name) or 0)


def _total(window: Any) -> float:
    if not isinstance(window, Mapping):
        return 0.0
    return float(sum(window.values()))


def feature_values(traits: Mapping[str, Any], at_ms: int) -> list[float | None]:
    """:data:`FEATURE_NAMES`' values (``None``: missing) of ``traits`` as of ``at_ms``."""
    g = traits.get
    orders = _num(g("orders_total")) or 0.0
    categories = g("category_interest")
    cat_scores = [float(v) for v in categories.values()] if isinstance(categories, Mapping) else []
    products = g("product_interest")
    prod_scores = [float(v) for v in products.values()] if isinstance(products, Mapping) else []
    cat_sum = sum(cat_scores)
    w30 = g("counts_30d")
    values: list[float | None] = [
        orders,
        _num(g("order_days")) if orders else 0.0,
        _days(g("first_order_ms"), at_ms),
        _days(g("last_order_ms"), at_ms),
        _num(g("revenue_total")),
        _num(g("average_order_value")),
        _num(g("events_total")),
        _days(g("first_seen_ms"), at_ms),
        _days(g("last_seen_ms"), at_ms),
        _num(g("sessions_total")),
        _num(g("sessions_night_share")),
        _num(g("sessions_weekend_share")),
        _num(g("cart_value_avg")),
        _num(g("cart_value_max")),
        _num(g("coupon_uses")),
        _num(g("orders_with_coupon")),
        _num(g("coupon_order_share")),
        _num(g("max_repeat_views")),
        float(len(cat_scores)),
        max(cat_scores) / cat_sum if cat_sum > 0 else None,
        float(len(prod_scores)),
        max(prod_scores) if prod_scores else 0.0,
        _total(g("counts_1d")),
        _total(g("counts_7d")),
        _total(w30),
        _count(w30, "push_dismissed"),
    ]
    windows = [g(key) for _, key in _WINDOWS]
    for _, event in COUNTED:
        for window in windows:
            values.append(_count(window, event))
    return values


def features_of(traits: Mapping[str, Any], at_ms: int) -> dict[str, float]:
    """The "stream/1" features of a person whose ``traits`` are as of ``at_ms``.

    ``traits`` is what the rule stage's ``traits_of`` gives (the built-in
    traits, plus ``first_order_ms`` and ``order_days`` from the stage's
    slice: :func:`order_traits`). Missing features are left out. Times become
    days: ``days_since_last_purchase`` = ``(at_ms - last_order_ms) / 1 day``.

    >>> f = features_of({"orders_total": 2, "order_days": 2, "last_order_ms": 0,
    ...                  "first_order_ms": 0, "counts_7d": {"product_viewed": 3}}, 86_400_000)
    >>> f["purchases"], f["purchase_days"], f["days_since_last_purchase"], f["views_7d"]
    (2.0, 2.0, 1.0, 3.0)
    """
    return to_features(feature_values(traits, at_ms))


def to_features(values: Sequence[float | None]) -> dict[str, float]:
    """``{name: value}`` of a stored snapshot, missing values left out."""
    return {n: v for n, v in zip(FEATURE_NAMES, values, strict=True) if v is not None}


# -- the order facts the traits do not keep ----------------------------------------------


def observe_order(facts: list[Any] | None, ts: int) -> list[Any]:
    """Fold one order at ``ts`` (in event-time order) into ``[first_ms, days, last_day]``."""
    day = ts // DAY_MS
    if facts is None:
        return [ts, 1, day]
    if day != facts[2]:
        facts[1] += 1
        facts[2] = day
    return facts


def order_traits(person: Mapping[str, Any]) -> dict[str, Any]:
    """``first_order_ms`` and ``order_days`` of a person (``{}`` before an order)."""
    st = person.get("rules")
    facts = st.get(ORDER_FACTS) if st else None
    if not facts:
        return {}
    return {"first_order_ms": facts[0], "order_days": facts[1]}


def merge_order_facts(a: list[Any] | None, b: list[Any] | None) -> list[Any] | None:
    """Two persons' order facts as one (distinct days: the sum, less a shared last day)."""
    if a is None or b is None:
        return None if a is None and b is None else list(a or b or ())
    days = a[1] + b[1] - (1 if a[2] == b[2] else 0)
    return [min(a[0], b[0]), days, max(a[2], b[2])]


def person_features(
    person: Mapping[str, Any],
    at_ms: int,
    traits_of: Callable[[Mapping[str, Any], int], Mapping[str, Any]],
) -> dict[str, float]:
    """:func:`features_of` a person as of ``at_ms`` (``{}`` before any event)."""
    traits = traits_of(person, at_ms)
    if not traits:
        return {}
    return features_of(traits, at_ms)


def snapshot_values(
    person: Mapping[str, Any],
    at_ms: int,
    traits: Mapping[str, Any] | None,
    traits_of: Callable[[Mapping[str, Any], int], Mapping[str, Any]],
) -> list[float | None] | None:
    """:func:`feature_values` of a person as of ``at_ms``; None before any event.

    ``traits``: the traits as of ``at_ms`` if the caller has them (the profile
    of the session closing then), else they are read with ``traits_of``.
    """
    if traits is None:
        traits = traits_of(person, at_ms)
    if not traits:
        return None
    extra = order_traits(person)
    if extra and "order_days" not in traits:
        traits = {**traits, **extra}
    return feature_values(traits, at_ms)
