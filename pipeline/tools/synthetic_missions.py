"""The predictive generator's shoppers (:mod:`pipeline.tools.synthetic_predictive`): the rules.

The catalog (clusters and their partners), the per-person state (engagement,
missions, preferred hours) and :class:`_Generator`, which walks each person
day by day by the rules documented in :mod:`pipeline.tools.synthetic_predictive`.
"""

from __future__ import annotations

import math
import random
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from pipeline.core.events import Event
from pipeline.tools.synthetic_shoppers import (
    _CATEGORIES,
    _CATEGORY_NAMES,
    _DAY_HOURS,
    _LOCALES,
    _ZONES,
    DAY_MS,
    HOUR_MS,
    MINUTE_MS,
    local_midnight_ms,
)

if TYPE_CHECKING:
    from pipeline.tools.synthetic_predictive import PredictiveConfig

CLUSTERS_PER_CATEGORY = 12
PRODUCTS_PER_CLUSTER = 10
#: Weekdays (Monday = 0) a campaign goes out on, per channel.
CHANNEL_DAYS = {"email": (0, 2, 4), "push": (1, 5)}
#: Population weights of a person's preferred local hour per channel (index = hour).
_PREFERRED = {
    "email": (0, 0, 0, 0, 0, 0, 1, 4, 6, 5, 3, 2, 4, 3, 2, 2, 2, 3, 4, 6, 8, 7, 4, 1),
    "push": (0, 0, 0, 0, 0, 0, 1, 3, 5, 3, 2, 3, 6, 5, 3, 2, 3, 4, 5, 5, 4, 3, 2, 1),
}


@dataclass(frozen=True)
class Rules:
    """The constants of the rules in the module doc (recorded in the labels)."""

    churn_base: float = 0.0005
    churn_scale: float = 0.08
    churn_power: float = 4.0
    fade_min: float = 0.003
    fade_max: float = 0.02
    mission_base: float = 0.008
    mission_scale: float = 0.017
    mission_session_p: float = 0.55
    mission_drop_p: float = 0.15
    mission_max_days: int = 14
    buy_intercept: float = -2.2
    buy_per_session: float = 0.45
    buy_per_log_orders: float = 0.5
    buy_per_engagement: float = 1.5
    payment_fail_p: float = 0.08
    follow_up_p: float = 0.5
    click_p: float = 0.3
    hour_sd_h: float = 0.6


@dataclass(frozen=True)
class Product:
    product_id: str
    category: str
    cluster: int  # global cluster index
    price: float


def catalog(seed: int) -> tuple[list[list[Product]], list[int]]:
    """(products by cluster, partner cluster of each cluster), fixed by the seed."""
    rng = random.Random(f"catalog-{seed}")
    clusters: list[list[Product]] = []
    for category in _CATEGORY_NAMES:
        low, high = _CATEGORIES[category]
        for c in range(CLUSTERS_PER_CATEGORY):
            index = len(clusters)
            clusters.append([
                Product(f"sku-{category}-{c:02d}-{k}", category, index,
                        round(rng.uniform(low, high), 2))
                for k in range(PRODUCTS_PER_CLUSTER)
            ])  # fmt: skip
    partners = []
    for index in range(len(clusters)):
        own = index // CLUSTERS_PER_CATEGORY
        other = rng.choice([i for i in range(len(_CATEGORY_NAMES)) if i != own])
        partners.append(other * CLUSTERS_PER_CATEGORY + rng.randrange(CLUSTERS_PER_CATEGORY))
    return clusters, partners


_POPULARITY = [1.0 / (rank + 1) ** 0.8 for rank in range(CLUSTERS_PER_CATEGORY)]


@dataclass
class _Mission:
    cluster: int
    started_day: int
    sessions: int = 0
    cart: list[Product] = field(default_factory=list)
    viewed: list[Product] = field(default_factory=list)


@dataclass
class _Person:
    index: int
    user_id: str
    anonymous_id: str
    timezone: str
    context: dict[str, Any]
    rate: float
    engagement: float
    fade: float
    categories: list[float]  # weight per category index
    open_rate: dict[str, float]
    hour: dict[str, int]
    sharpness: dict[str, float]
    orders: int = 0
    missions: int = 0
    churn_day: int | None = None
    mission: _Mission | None = None
    follow_up: tuple[int, int] | None = None  # (day, cluster)
    bought: set[str] = field(default_factory=set)


class _Generator:
    def __init__(self, config: PredictiveConfig) -> None:
        self.cfg = config
        self.rules = config.rules
        self.rng = random.Random(config.seed)
        self.clusters, self.partners = catalog(config.seed)
        self.rows: list[tuple[int, int, Event]] = []

    def _uuid(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def _emit(  # noqa: PLR0917
        self, ts: int, name: str, person: _Person, props: dict[str, Any], context: dict[str, Any],
        device: bool = True,
    ) -> None:  # fmt: skip
        event = Event(
            message_id=self._uuid(),
            type="page" if name == "page_viewed" else "track",
            timestamp_ms=ts,
            event=name,
            anonymous_id=person.anonymous_id if device else None,
            user_id=person.user_id,
            properties=props,
            context=context,
        )
        self.rows.append((ts, len(self.rows), event))

    def _gap(self) -> int:
        return min(8 * MINUTE_MS, max(5_000, int(self.rng.lognormvariate(10.1, 0.9))))

    def person(self, index: int) -> _Person:
        rng = self.rng
        zone = rng.choice(_ZONES)
        anon = self._uuid()
        favourites = rng.sample(range(len(_CATEGORY_NAMES)), 2)
        weights = [0.2 / (len(_CATEGORY_NAMES) - 2)] * len(_CATEGORY_NAMES)
        weights[favourites[0]], weights[favourites[1]] = 0.5, 0.3
        channel = rng.choice(("web", "ios", "android"))
        return _Person(
            index=index,
            user_id=f"pp-{self.cfg.seed}-{index:06d}",
            anonymous_id=anon,
            timezone=zone,
            context={
                "channel": channel,
                "timezone": zone,
                "locale": _LOCALES.get(zone, "en-US"),
                "device_id": anon[:18],
            },
            rate=min(1.0, max(0.02, rng.lognormvariate(math.log(0.15), 0.6))),
            engagement=rng.uniform(0.4, 1.0),
            fade=rng.uniform(self.rules.fade_min, self.rules.fade_max),
            categories=weights,
            open_rate={"email": rng.uniform(0.1, 0.6), "push": rng.uniform(0.05, 0.4)},
            hour={ch: rng.choices(range(24), w)[0] for ch, w in _PREFERRED.items()},
            sharpness={"email": rng.uniform(0.5, 0.9), "push": rng.uniform(0.5, 0.9)},
        )

    def _cluster_of(self, person: _Person) -> int:
        rng = self.rng
        category = rng.choices(range(len(_CATEGORY_NAMES)), person.categories)[0]
        return (
            category * CLUSTERS_PER_CATEGORY
            + rng.choices(range(CLUSTERS_PER_CATEGORY), _POPULARITY)[0]
        )

    # -- one person, day by day ---------------------------------------------------

    def run_person(self, p: _Person) -> None:
        rng, rules = self.rng, self.rules
        free_from = self.cfg.start_ms
        for day in range(self.cfg.days):
            e = p.engagement
            if rng.random() < rules.churn_base + rules.churn_scale * (1.0 - e) ** rules.churn_power:
                p.churn_day = day
                return
            p.engagement = e * (1.0 - p.fade)
            day_start = self.cfg.start_ms + day * DAY_MS
            midnight = local_midnight_ms(p.timezone, day_start)
            weekday = datetime.fromtimestamp(day_start / 1000, tz=UTC).weekday()
            mission = self._mission_of(p, day)
            plans: list[tuple[int, str]] = []  # (start, kind)
            if mission is not None and rng.random() < rules.mission_session_p:
                plans.append((midnight + self._session_hour(), "mission"))
            plans.extend(
                (midnight + self._session_hour(), "browse")
                for _ in range(_poisson(rng, p.rate * p.engagement))
            )
            for channel, days in CHANNEL_DAYS.items():
                if weekday in days and rng.random() < p.open_rate[channel] * p.engagement:
                    plans.append((midnight + self._open_offset(p, channel), channel))
            for wanted, kind in sorted(plans):
                start = max(wanted, free_from + 45 * MINUTE_MS + rng.randrange(30 * MINUTE_MS))
                if start >= self.cfg.start_ms + self.cfg.days * DAY_MS:
                    break
                if kind in CHANNEL_DAYS:
                    free_from = self._engagement(p, start, kind, day)
                else:
                    free_from = self._session(p, start, kind == "mission", p.context)
            if p.mission is not None and day - p.mission.started_day >= rules.mission_max_days:
                self._drop(p)

    def _session_hour(self) -> int:
        return self.rng.choice(_DAY_HOURS) * HOUR_MS + self.rng.randrange(HOUR_MS)

    def _open_offset(self, p: _Person, channel: str) -> int:
        rng = self.rng
        if rng.random() < p.sharpness[channel]:
            hours = p.hour[channel] + 0.5 + rng.gauss(0.0, self.rules.hour_sd_h)
            return int(min(max(hours, 0.0), 23.99) * HOUR_MS)
        return 7 * HOUR_MS + rng.randrange(17 * HOUR_MS)

    def _mission_of(self, p: _Person, day: int) -> _Mission | None:
        if p.mission is None:
            if p.follow_up is not None and p.follow_up[0] <= day:
                cluster, p.follow_up = p.follow_up[1], None
            elif self.rng.random() < self.rules.mission_base + self.rules.mission_scale * (
                p.engagement
            ):
                cluster = self._cluster_of(p)
            else:
                return None
            p.mission = _Mission(cluster, day)
            p.missions += 1
        return p.mission

    def _drop(self, p: _Person) -> None:
        p.mission = None
        p.engagement *= 0.95

    def _engagement(self, p: _Person, t: int, channel: str, day: int) -> int:
        campaign = f"{channel}-{day}"
        ctx = {"channel": channel, "timezone": p.timezone, "campaign_name": campaign}
        self._emit(t, f"{channel}_opened", p, {"campaign": campaign}, ctx, device=False)
        if self.rng.random() >= self.rules.click_p:
            return t
        t += self.rng.randrange(10_000, 5 * MINUTE_MS)
        self._emit(t, f"{channel}_clicked", p, {"campaign": campaign}, ctx, device=False)
        context = {**p.context, "campaign_source": channel, "campaign_name": campaign}
        return self._session(
            p, t + self.rng.randrange(5_000, 90_000), p.mission is not None, context
        )

    def _session(self, p: _Person, t: int, mission: bool, context: dict[str, Any]) -> int:
        rng = self.rng
        self._emit(t, "page_viewed", p, {"path": "/"}, {**context, "page_path": "/"})
        m = p.mission if mission else None
        if m is None:
            views = [
                rng.choice(self.clusters[self._cluster_of(p)]) for _ in range(rng.randint(1, 4))
            ]
        else:
            m.sessions += 1
            views = rng.sample(self.clusters[m.cluster], rng.randint(2, 4))
            if rng.random() < 0.5:
                views.append(rng.choice(self.clusters[self._cluster_of(p)]))
        for product in views:
            t += self._gap()
            self._emit(t, "product_viewed", p, _props(product), context)
        if m is None:
            if rng.random() < 0.05:
                t += self._gap()
                self._emit(t, "product_added", p, _props(views[-1]), context)
            return t
        m.viewed.extend(v for v in views if v.cluster == m.cluster)
        if rng.random() < min(0.8, 0.25 + 0.15 * m.sessions):
            pool = [v for v in m.viewed if v.product_id not in p.bought]
            fresh = [v for v in self.clusters[m.cluster] if v not in m.viewed]
            if fresh and (not pool or rng.random() < 0.4):
                pick = rng.choice(fresh)
                t += self._gap()
                self._emit(t, "product_viewed", p, _props(pick), context)
                m.viewed.append(pick)
            else:
                pick = rng.choice(pool)
            t += self._gap()
            self._emit(t, "product_added", p, _props(pick), context)
            m.cart.append(pick)
        return self._checkout(p, m, t, context) if m.cart else self._maybe_drop(p, t)

    def _maybe_drop(self, p: _Person, t: int) -> int:
        if self.rng.random() < self.rules.mission_drop_p:
            self._drop(p)
        return t

    def _checkout(self, p: _Person, m: _Mission, t: int, context: dict[str, Any]) -> int:
        rng, rules = self.rng, self.rules
        logit = (rules.buy_intercept + rules.buy_per_session * m.sessions
                 + rules.buy_per_log_orders * math.log1p(p.orders)
                 + rules.buy_per_engagement * (p.engagement - 0.5))  # fmt: skip
        value = round(sum(x.price for x in m.cart), 2)
        products = [_props(x) for x in m.cart]
        checkout = {"checkout_id": f"co-{self._uuid()[:13]}", "value": value, "currency": "USD",
                    "products": products}  # fmt: skip
        if rng.random() >= 1.0 / (1.0 + math.exp(-logit)):
            if rng.random() < 0.3:
                t += self._gap()
                self._emit(t, "checkout_started", p, checkout, context)
            return self._maybe_drop(p, t)
        t += self._gap()
        self._emit(t, "checkout_started", p, checkout, context)
        t += self._gap()
        pay = {"checkout_id": checkout["checkout_id"], "payment_method": "card"}
        self._emit(t, "payment_info_entered", p, pay, context)
        t += self._gap() // 4
        if rng.random() < rules.payment_fail_p:
            self._emit(t, "payment_failed", p, {**pay, "reason": "card_declined", "value": value,
                                                "currency": "USD"}, context)  # fmt: skip
            p.engagement *= 0.85
            return t
        order = {"order_id": f"ord-{self._uuid()[:13]}", "checkout_id": checkout["checkout_id"],
                 "revenue": value, "currency": "USD", "products": products}  # fmt: skip
        self._emit(t, "order_completed", p, order, context)
        p.orders += 1
        p.bought.update(x.product_id for x in m.cart)
        p.engagement += 0.25 * (1.0 - p.engagement)
        p.mission = None
        day = (t - self.cfg.start_ms) // DAY_MS
        if rng.random() < rules.follow_up_p:
            p.follow_up = (day + rng.randint(1, 6), self.partners[m.cluster])
        return t


def _props(product: Product) -> dict[str, Any]:
    return {"product_id": product.product_id, "category": product.category,
            "price": product.price, "quantity": 1}  # fmt: skip


def _poisson(rng: random.Random, lam: float) -> int:
    threshold, k, p = math.exp(-lam), 0, 1.0
    while True:
        p *= rng.random()
        if p <= threshold:
            return k
        k += 1
