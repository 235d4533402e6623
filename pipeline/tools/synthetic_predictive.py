"""``pulse produce --synthetic --predictive``: months of shoppers whose futures follow known rules.

A seeded generator for evaluating the predictions of issue 15 (docs/predictions.md,
"Evaluation on the synthetic generator"). Unlike :mod:`pipeline.tools.synthetic`
(a week of funnels for the behavioral triggers), what each person does next here
depends on what they did before, by the rules below, so a model that reads the
behavior can beat one that reads purchase history only, and the figures can be
checked against the truth the generator keeps (``labels``).

**The catalog.** 8 categories x 12 clusters x 10 products (``sku-<cat>-<cc>-<k>``,
a fixed price each). Shoppers compare products of one cluster in a session
(co-views), and each cluster has a *partner* cluster in another category
(the accessory of a purchase): the products that go together are the clusters
and their partners, which only co-occurrence can learn.

**A person** has: a time zone; a browsing rate ``r`` (sessions a day, log-normal,
median 0.15); an *engagement* ``e`` in (0, 1] (start uniform 0.4-1); a daily
fade ``delta`` (uniform 0.003-0.02); two favourite categories (weights 0.5, 0.3,
the rest share 0.2; clusters by popularity ``1 / rank^0.8``); per channel
(email, push) an open rate, a preferred local hour and a sharpness ``s``.

**Each day** (in this order), for an active person:

1. *Churn*: with probability ``0.0005 + 0.08 (1 - e)^4`` the person leaves for
   good: no event of theirs after that day (``labels.people[].churn_day``).
2. *Fade*: ``e <- e (1 - delta)``.
3. *Missions* (an intent to buy in one cluster): with no mission open, one
   starts with probability ``0.008 + 0.017 e`` (a follow-up mission scheduled
   after a purchase starts on its day instead). An open mission has a session
   that day with probability 0.55; it is dropped (``e <- 0.95 e``) after a
   session without an order with probability 0.15, or after 14 days.
4. *Browsing*: ``Poisson(r e)`` sessions that view 1-4 products of the
   favourite categories, rarely add (5 %) and almost never buy.
5. *Campaigns*: e-mails on Monday, Wednesday and Friday, pushes on Tuesday
   and Saturday (sent, not events). The person opens one with probability
   ``open_rate x e``; an open is at the preferred local hour + N(0, 0.6 h)
   with probability ``s``, else at a uniform hour 07-23; 30 % of opens are
   followed by a click and a session from it (a mission session when a
   mission is open).

**A mission session** (its ``k``-th, k = 1, 2, ...) views 2-4 products of the
mission's cluster (and one other product half the time) and adds one to the
cart with probability ``min(0.8, 0.25 + 0.15 k)`` (usually a product viewed in
an earlier session or a new one of the cluster). With a cart, it buys with
probability ``sigmoid(-2.2 + 0.45 k + 0.5 ln(1 + orders) + 1.5 (e - 0.5))``
(``checkout_started``, ``payment_info_entered``, ``order_completed``; 8 % of
payments fail instead: ``payment_failed``, ``e <- 0.85 e``, the mission goes on);
without buying, 30 % start a checkout and leave. An order closes the mission,
lifts engagement (``e <- e + 0.25 (1 - e)``) and, with probability 0.5,
schedules a follow-up mission in the partner cluster 1-6 days later.

So, by construction: **purchase within 7 days** follows an open mission
(recent sessions, repeated views in one category, cart adds, started
checkouts), its age, past orders and engagement; **churn** follows
engagement, which falls with time, failed payments and dropped missions,
rises with orders, and shows in the falling rate of sessions and opens;
**best send time** is the preferred hour per channel (``labels``: the truth,
local time); **next best product** is the mission's cluster, then its partner.

Events carry the user id (every person is logged in, on one device); e-mail
and push events carry the user id only, with ``context.channel`` and
``context.timezone``. A ``late_rate`` share arrives up to ``max_late_ms`` late,
so the list is in arrival order. The same config gives the same bytes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from pipeline.core.events import Event
from pipeline.tools.synthetic import Synthetic
from pipeline.tools.synthetic_missions import (
    CHANNEL_DAYS,
    CLUSTERS_PER_CATEGORY,
    PRODUCTS_PER_CLUSTER,
    Rules,
    _Generator,
    catalog,
)
from pipeline.tools.synthetic_shoppers import DEFAULT_START_MS, MINUTE_MS

__all__ = [
    "CHANNEL_DAYS", "CLUSTERS_PER_CATEGORY", "PRODUCTS_PER_CLUSTER", "PredictiveConfig", "Rules",
    "catalog", "generate",
]  # fmt: skip


@dataclass(frozen=True)
class PredictiveConfig:
    """Size of a predictive data set; validated when built."""

    seed: int = 7
    people: int = 2_000
    days: int = 120
    start_ms: int = DEFAULT_START_MS
    late_rate: float = 0.005
    max_late_ms: int = 5 * MINUTE_MS
    rules: Rules = field(default_factory=Rules)

    def __post_init__(self) -> None:
        if self.people < 1 or self.days < 1:
            raise ValueError("people and days must be at least 1")
        if not 0.0 <= self.late_rate <= 1.0:
            raise ValueError("late_rate is a share between 0 and 1")
        if self.max_late_ms < 1_000:
            raise ValueError("max_late_ms must be at least 1000")


def generate(config: PredictiveConfig) -> Synthetic:
    """People, their events (arrival order) and the truth (``labels``, JSON-able)."""
    gen = _Generator(config)
    people = [gen.person(i) for i in range(config.people)]
    for person in people:
        gen.run_person(person)
    rng = gen.rng
    arrivals: list[tuple[int, int, Event]] = []
    late = 0
    log_max = math.log(config.max_late_ms / 1_000)
    for ts, seq, event in gen.rows:
        if config.late_rate and rng.random() < config.late_rate:
            late += 1
            arrivals.append((ts + int(1_000 * math.exp(rng.random() * log_max)), seq, event))
        else:
            arrivals.append((ts, seq, event))
    arrivals.sort(key=lambda row: (row[0], row[1]))
    events = [row[2] for row in arrivals]
    labels = {
        "generator": {
            "kind": "predictive",
            "seed": config.seed,
            "people": config.people,
            "days": config.days,
            "start_ms": config.start_ms,
            "late_rate": config.late_rate,
            "max_late_ms": config.max_late_ms,
            "rules": vars(config.rules),
        },
        "events": len(events),
        "late": late,
        "partners": {
            gen.clusters[c][0].product_id.rsplit("-", 1)[0]: gen.clusters[t][0].product_id.rsplit(
                "-", 1
            )[0]
            for c, t in enumerate(gen.partners)
        },
        "people": [
            {
                "person_id": p.user_id,
                "timezone": p.timezone,
                "churn_day": p.churn_day,
                "orders": p.orders,
                "missions": p.missions,
                "rate": round(p.rate, 4),
                "preferred_hour": dict(p.hour),
                "sharpness": {k: round(v, 3) for k, v in p.sharpness.items()},
            }
            for p in people
        ],
    }
    return Synthetic(events, labels)
