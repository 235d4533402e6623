"""``pulse produce --synthetic``: realistic shoppers with ground-truth labels.

A seeded generator of people who browse, search, fill carts, start checkouts,
pay (or fail to), and buy, with the shapes that behavioral triggers exist for:

* sessions with realistic gaps: events 5 s - 8 min apart (log-normal), sessions
  at least 45 min apart, more sessions in the evening local time;
* funnels ``product_viewed -> product_added -> cart_viewed -> checkout_started
  -> payment_info_entered -> order_completed`` with abandonment at every step,
  payment failures (some recovered by a retry), and shoppers who come back to
  buy after the 30-minute window has closed;
* night shoppers, weekend responders, discount responders (they come on promo
  days, from a campaign e-mail, and use the coupon), promo-dependent
  high-value carts (big carts only with a coupon), first purchases;
* anonymous visitors who log in or sign up (an ``identify`` event links the
  device's anonymous id to the user id; the device's later events carry both),
  guest checkouts, people with several devices;
* late and out-of-order arrival: a ``late_rate`` share of events arrive up to
  ``max_late_ms`` after their event time (a phone's offline queue), so the
  returned list is in *arrival* order, not event-time order.

The same seed gives the same events and labels, byte for byte::

    data = generate(SyntheticConfig(seed=7, people=1_000, days=7))
    data.events          # list[Event], in arrival order
    data.labels          # ground truth, JSON-able (see ``_labels``)

Checkout abandonment labels follow the shipped rule: a ``checkout_started`` not
followed by an ``order_completed`` of the same person within 30 minutes
(half-open). They are given twice: by the person id the core uses today (user
id if present, else anonymous id) and by the person after identity stitching
(the user id the anonymous id is linked to by an ``identify``).
"""

from __future__ import annotations

import json
import math
import random
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import IO, Any
from zoneinfo import ZoneInfo

from pipeline.core.events import Event

MINUTE_MS = 60_000
HOUR_MS = 60 * MINUTE_MS
DAY_MS = 24 * HOUR_MS
ABANDON_WITHIN_MS = 30 * MINUTE_MS
#: 2026-03-02T00:00:00Z, a Monday.
DEFAULT_START_MS = 1_772_409_600_000

_ZONES = (
    "America/New_York", "America/Chicago", "America/Los_Angeles", "America/Sao_Paulo",
    "Europe/London", "Europe/Paris", "Europe/Berlin", "Asia/Kolkata", "Asia/Tokyo",
    "Australia/Sydney",
)  # fmt: skip
_LOCALES = {"Europe/Paris": "fr-FR", "Europe/Berlin": "de-DE", "Asia/Tokyo": "ja-JP",
            "America/Sao_Paulo": "pt-BR", "Asia/Kolkata": "en-IN", "Europe/London": "en-GB",
            "Australia/Sydney": "en-AU"}  # fmt: skip
_DEVICES = (
    ("desktop", "Mac OS", "web", "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_4) Safari/605.1.15"),
    ("desktop", "Windows", "web", "Mozilla/5.0 (Windows NT 10.0; Win64; x64) Chrome/124.0"),
    ("mobile", "iOS", "ios", "PulseShop/5.2 (iPhone; iOS 17.4)"),
    ("mobile", "Android", "android", "PulseShop/5.2 (Linux; Android 14; Pixel 8)"),
    ("tablet", "iOS", "web", "Mozilla/5.0 (iPad; CPU OS 17_4 like Mac OS X) Safari/604.1"),
)
_CATEGORIES = {
    "shoes": (40, 180), "jackets": (60, 400), "bags": (30, 350), "watches": (90, 900),
    "shirts": (15, 90), "headphones": (25, 450), "kitchen": (10, 250), "books": (8, 45),
}  # fmt: skip
_CATEGORY_NAMES = tuple(_CATEGORIES)
#: Local hours a daytime session starts at, weighted towards lunch and evening.
_DAY_HOURS = (7, 8, 9, 10, 11, 12, 12, 13, 13, 14, 15, 16, 17, 18, 19, 19, 20, 20, 20, 21, 21)
_NIGHT_HOURS = (22, 23, 23, 0, 0, 1, 1, 2, 3)
_NIGHT = frozenset({22, 23, 0, 1, 2, 3, 4})
_FAIL_REASONS = ("card_declined", "insufficient_funds", "expired_card", "3ds_failed")


@dataclass(frozen=True)
class SyntheticConfig:
    """Size and shape of a synthetic data set; validated when built."""

    seed: int = 7
    people: int = 1_000
    days: int = 7
    start_ms: int = DEFAULT_START_MS
    #: share of events that arrive late (after later events), 0..1
    late_rate: float = 0.01
    #: the largest delay of a late event, ms
    max_late_ms: int = 10 * MINUTE_MS
    #: share of people who have (or create) an account
    account_share: float = 0.65

    def __post_init__(self) -> None:
        if self.people < 1 or self.days < 1:
            raise ValueError("people and days must be at least 1")
        if not 0.0 <= self.late_rate <= 1.0 or not 0.0 <= self.account_share <= 1.0:
            raise ValueError("late_rate and account_share are shares between 0 and 1")
        if self.max_late_ms < 1_000:
            raise ValueError("max_late_ms must be at least 1000")


@dataclass(frozen=True)
class Synthetic:
    """Generated events (arrival order) and their ground-truth labels."""

    events: list[Event]
    labels: dict[str, Any]


@dataclass
class _Device:
    anonymous_id: str
    context: dict[str, Any]
    logged_in: bool = False


@dataclass
class _Person:
    index: int
    user_id: str | None
    registered: bool
    timezone: str
    devices: list[_Device]
    rate: float
    night: bool
    weekend: bool
    discount: bool
    promo_high_value: bool
    bought_before: bool
    sessions: int = 0
    night_sessions: int = 0
    weekend_sessions: int = 0
    orders: int = 0
    coupon_orders: int = 0
    big_coupon_orders: int = 0
    big_plain_orders: int = 0

    @property
    def person_id(self) -> str:
        """The person after identity stitching."""
        return self.user_id if self.user_id and self.registered else self.devices[0].anonymous_id


@dataclass
class _Cart:
    """Bookkeeping for labels: checkouts and orders with both identities."""

    checkouts: list[tuple[int, str, str, str]] = field(default_factory=list)
    orders: list[tuple[int, str, str]] = field(default_factory=list)
    first_purchases: list[dict[str, Any]] = field(default_factory=list)
    payment_failures: list[dict[str, Any]] = field(default_factory=list)


@cache
def _local_midnight_ms(zone: str, day_start_ms: int) -> int:
    """UTC ms of local midnight of the calendar day that starts at ``day_start_ms`` (UTC)."""
    day = datetime.fromtimestamp(day_start_ms / 1000, tz=UTC)
    local = datetime(day.year, day.month, day.day, tzinfo=ZoneInfo(zone))
    return int(local.timestamp() * 1000)


def _title(name: str) -> str:
    """``checkout_started`` -> ``Checkout Started`` (Segment's spelling)."""
    return " ".join(part.capitalize() for part in name.split("_"))


class _Generator:
    def __init__(self, config: SyntheticConfig) -> None:
        self.cfg = config
        self.rng = random.Random(config.seed)
        self.rows: list[tuple[int, int, Event]] = []  # (event time, seq, event)
        self.cart = _Cart()
        self.links: dict[str, str] = {}  # anonymous id -> user id
        self._zones: dict[str, ZoneInfo] = {}
        rng = self.rng
        self.promo_days = [rng.random() < 0.3 for _ in range(config.days)]
        self.coupons = [f"SAVE{rng.choice((10, 15, 20, 25))}-{d}" for d in range(config.days)]

    # -- ids and events -----------------------------------------------------------

    def _uuid(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def _emit(  # noqa: PLR0917 (a private hot path: keywords cost time)
        self,
        ts: int,
        etype: str,
        name: str | None,
        device: _Device | None,
        person: _Person,
        props: dict[str, Any] | None = None,
        context: dict[str, Any] | None = None,
    ) -> Event:
        user_id = person.user_id if device is None or device.logged_in else None
        event = Event(
            message_id=self._uuid(),
            type=etype,
            event=name,
            anonymous_id=None if device is None else device.anonymous_id,
            user_id=user_id,
            timestamp_ms=ts,
            properties=props or {},
            context=context if context is not None else ({} if device is None else device.context),
        )
        self.rows.append((ts, len(self.rows), event))
        return event

    def _gap(self) -> int:
        """Think time between two events of a session: log-normal, median ~25 s."""
        return min(8 * MINUTE_MS, max(5_000, int(self.rng.lognormvariate(10.1, 0.9))))

    # -- people -------------------------------------------------------------------

    def person(self, index: int) -> _Person:
        rng = self.rng
        has_account = rng.random() < self.cfg.account_share
        zone = rng.choice(_ZONES)
        n_devices = 1 + (has_account and rng.random() < 0.35) + (has_account and rng.random() < 0.1)
        devices = []
        for _ in range(n_devices):
            anon = self._uuid()
            dtype, os_name, channel, agent = rng.choice(_DEVICES)
            devices.append(_Device(anon, {
                "channel": channel, "timezone": zone, "locale": _LOCALES.get(zone, "en-US"),
                "device_id": anon[:18], "device_type": dtype, "os_name": os_name,
                "user_agent": agent, "ip": f"198.51.100.{rng.randrange(1, 255)}",
            }))  # fmt: skip
        discount = rng.random() < 0.2
        return _Person(
            index=index,
            user_id=f"user-{self.cfg.seed}-{index:06d}" if has_account else None,
            registered=has_account and rng.random() < 0.7,
            timezone=zone,
            devices=devices,
            rate=min(3.0, rng.lognormvariate(-1.2, 0.8)),
            night=rng.random() < 0.12,
            weekend=rng.random() < 0.15,
            discount=discount,
            promo_high_value=rng.random() < (0.35 if discount else 0.03),
            bought_before=rng.random() < 0.5,
        )

    def _poisson(self, lam: float) -> int:
        threshold, k, p = math.exp(-lam), 0, 1.0
        while True:
            p *= self.rng.random()
            if p <= threshold:
                return k
            k += 1

    def _zone(self, name: str) -> ZoneInfo:
        zone = self._zones.get(name)
        if zone is None:
            zone = self._zones[name] = ZoneInfo(name)
        return zone

    def run_person(self, person: _Person) -> None:
        rng = self.rng
        free_from = self.cfg.start_ms
        for day in range(self.cfg.days):
            day_start = self.cfg.start_ms + day * DAY_MS
            weekday = datetime.fromtimestamp(day_start / 1000, tz=UTC).weekday()
            weekend = weekday >= 5
            promo = self.promo_days[day]
            lam = person.rate
            if person.weekend:
                lam *= 3.0 if weekend else 0.25
            if person.discount:
                lam *= 3.0 if promo else 0.3
            starts = []
            midnight = _local_midnight_ms(person.timezone, day_start)
            for _ in range(self._poisson(lam)):
                night = rng.random() < (0.85 if person.night else 0.03)
                hour = rng.choice(_NIGHT_HOURS if night else _DAY_HOURS)
                offset = hour * HOUR_MS if hour >= 12 or not night else (24 + hour) * HOUR_MS
                starts.append(midnight + offset + rng.randrange(HOUR_MS))
            for wanted in sorted(starts):
                # Sessions of one person never overlap and are 45+ min apart,
                # so at most one checkout per person is open at a time.
                start = max(wanted, free_from + 45 * MINUTE_MS + rng.randrange(30 * MINUTE_MS))
                # Labels use the session's real local start, as Pulse does: a
                # Sunday-night session that starts at 01:00 Monday is not a weekend one.
                local = datetime.fromtimestamp(start / 1000, tz=self._zone(person.timezone))
                person.sessions += 1
                person.night_sessions += local.hour in _NIGHT
                person.weekend_sessions += local.weekday() >= 5
                free_from = self.session(person, start, day, promo)

    # -- one session ----------------------------------------------------------------

    def session(self, person: _Person, t: int, day: int, promo: bool) -> int:
        rng = self.rng
        device = person.devices[0] if len(person.devices) == 1 else rng.choice(person.devices)
        context = device.context
        campaign = person.discount and promo and person.registered and rng.random() < 0.8
        if campaign:
            # the campaign e-mail that brought them: delivered and opened before the visit
            sent = t - rng.randrange(20 * MINUTE_MS, 6 * HOUR_MS)
            mail = {"channel": "email", "campaign_name": f"promo-day-{day}"}
            self._emit(
                sent,
                "track",
                "email_delivered",
                None,
                person,
                {"campaign": f"promo-day-{day}"},
                mail,
            )
            self._emit(t - rng.randrange(5_000, 10 * MINUTE_MS), "track", "email_opened", None,
                       person, {"campaign": f"promo-day-{day}"}, mail)  # fmt: skip
            context = {**context, "campaign_source": "newsletter", "campaign_medium": "email",
                       "campaign_name": f"promo-day-{day}"}  # fmt: skip
        elif person.registered and person.user_id and rng.random() < 0.05:
            name = rng.choice(("push_delivered", "push_opened", "push_dismissed"))
            self._emit(t - rng.randrange(1_000, HOUR_MS), "track", name, None, person,
                       {"campaign": "back-in-stock"}, {"channel": "push"})  # fmt: skip
        path = "/" if rng.random() < 0.6 else f"/c/{rng.choice(_CATEGORY_NAMES)}"
        self._emit(
            t,
            "page",
            "page_viewed",
            device,
            person,
            {"path": path},
            {**context, "page_path": path, "page_url": f"https://shop.example{path}"},
        )
        if person.user_id and not device.logged_in and rng.random() < 0.25:
            t = self._login(person, device, t + self._gap(), context)
        if rng.random() < 0.3:
            t += self._gap()
            self._emit(
                t,
                "track",
                "products_searched",
                device,
                person,
                {"query": rng.choice(_CATEGORY_NAMES)},
                context,
            )
        products: list[dict[str, Any]] = []
        for _ in range(1 + min(12, int(rng.expovariate(0.45)))):
            t += self._gap()
            category = rng.choice(_CATEGORY_NAMES)
            low, high = _CATEGORIES[category]
            product = {"product_id": f"sku-{rng.randrange(1, 5_000):05d}", "category": category,
                       "price": round(rng.uniform(low, high), 2), "quantity": 1}  # fmt: skip
            self._emit(t, "track", "product_viewed", device, person, product, context)
            products.append(product)
        big = person.promo_high_value and promo
        p_add = 0.7 if campaign or big else 0.35
        if rng.random() >= p_add:
            return t  # bounced after browsing
        cart = [p for p in products if rng.random() < 0.5] or products[-1:]
        if big:
            cart = [*cart, {"product_id": f"sku-{rng.randrange(5_000, 6_000):05d}",
                            "category": "watches", "price": round(rng.uniform(400, 900), 2),
                            "quantity": 1}]  # fmt: skip
        for product in cart:
            t += self._gap()
            self._emit(t, "track", "product_added", device, person, product, context)
        value = round(sum(p["price"] for p in cart), 2)
        if rng.random() < 0.8:
            t += self._gap()
            self._emit(
                t,
                "track",
                "cart_viewed",
                device,
                person,
                {"value": value, "products": cart},
                context,
            )
        # Promo-dependent big spenders do not check out a large cart without a coupon.
        if person.promo_high_value and not promo and value > 200:
            return t
        if rng.random() >= (0.85 if campaign or big else 0.55):
            return t  # cart abandoned
        if person.user_id and not device.logged_in and rng.random() < 0.6:
            t = self._login(person, device, t + self._gap(), context)
        coupon = self.coupons[day] if promo and (person.discount or big or rng.random() < 0.1) \
            else None  # fmt: skip
        checkout_id = f"co-{self._uuid()[:13]}"
        checkout = {"checkout_id": checkout_id, "value": value, "currency": "USD",
                    "products": cart, **({"coupon": coupon} if coupon else {})}  # fmt: skip
        t += self._gap()
        started = self._emit(t, "track", "checkout_started", device, person, checkout, context)
        self.cart.checkouts.append((t, started.message_id, started.person_id, device.anonymous_id))
        login_mid_checkout = bool(person.user_id and not device.logged_in and rng.random() < 0.15)
        if login_mid_checkout:
            t = self._login(person, device, t + self._gap(), context)
        if rng.random() >= 0.85:
            return self._maybe_come_back(person, device, t, started, checkout, context)
        t += self._gap()
        self._emit(
            t,
            "track",
            "payment_info_entered",
            device,
            person,
            {"checkout_id": checkout_id, "payment_method": "card"},
            context,
        )
        if rng.random() < 0.1 + 0.1 * big:
            t += self._gap() // 4
            failed = self._emit(t, "track", "payment_failed", device, person,
                                {"checkout_id": checkout_id, "reason": rng.choice(_FAIL_REASONS),
                                 "value": value, "currency": "USD"}, context)  # fmt: skip
            recovered = rng.random() < 0.55
            self.cart.payment_failures.append({
                "person_id": person.person_id, "message_id": failed.message_id,
                "checkout_message_id": started.message_id, "recovered": recovered,
            })  # fmt: skip
            if not recovered:
                return t
            t += self._gap()
            self._emit(
                t,
                "track",
                "payment_info_entered",
                device,
                person,
                {"checkout_id": checkout_id, "payment_method": "paypal"},
                context,
            )
        elif rng.random() >= 0.9:
            return self._maybe_come_back(person, device, t, started, checkout, context)
        t = max(t + self._gap(), started.timestamp_ms)
        if t >= started.timestamp_ms + ABANDON_WITHIN_MS:
            t = started.timestamp_ms + ABANDON_WITHIN_MS - 1 - rng.randrange(60_000)
        return self._order(person, device, t, checkout, context)

    def _maybe_come_back(  # noqa: PLR0917
        self,
        person: _Person,
        device: _Device,
        t: int,
        started: Event,
        checkout: dict[str, Any],
        context: dict[str, Any],
    ) -> int:
        """A few abandoners buy anyway, 31-50 min after the checkout: too late for the rule."""
        if self.rng.random() >= 0.12:
            return t
        back = self.rng.randrange(MINUTE_MS, 20 * MINUTE_MS)
        t = max(t, started.timestamp_ms + ABANDON_WITHIN_MS + back)
        return self._order(person, device, t, checkout, context)

    def _order(
        self,
        person: _Person,
        device: _Device,
        t: int,
        checkout: dict[str, Any],
        context: dict[str, Any],
    ) -> int:
        coupon = checkout.get("coupon")
        value = checkout["value"]
        discount = round(value * 0.2, 2) if coupon else 0.0
        order = {"order_id": f"ord-{self._uuid()[:13]}", "checkout_id": checkout["checkout_id"],
                 "revenue": round(value - discount, 2), "discount": discount, "currency": "USD",
                 "products": checkout["products"],
                 **({"coupon": coupon} if coupon else {})}  # fmt: skip
        placed = self._emit(t, "track", "order_completed", device, person, order, context)
        self.cart.orders.append((t, placed.person_id, device.anonymous_id))
        person.orders += 1
        person.coupon_orders += coupon is not None
        if value > 300:
            if coupon:
                person.big_coupon_orders += 1
            else:
                person.big_plain_orders += 1
        if person.orders == 1 and not person.bought_before:
            self.cart.first_purchases.append({"person_id": person.person_id,
                                              "message_id": placed.message_id,
                                              "timestamp_ms": t})  # fmt: skip
        return t

    def _login(self, person: _Person, device: _Device, t: int, context: dict[str, Any]) -> int:
        assert person.user_id is not None
        device.logged_in = True
        self.links[device.anonymous_id] = person.user_id
        if not person.registered:
            person.registered = True
            person.bought_before = False
            self._emit(t, "track", "signed_up", device, person, {"method": "email"}, context)
            t += self._gap() // 4
        else:
            self._emit(t, "track", "logged_in", device, person, {"method": "password"}, context)
        self._emit(
            t, "identify", None, device, person, {"email": f"{person.user_id}@example.com"}, context
        )
        return t


def _abandoned(
    checkouts: Iterable[tuple[int, str, str]], orders: Iterable[tuple[int, str]]
) -> set[str]:
    """Message ids of abandoned checkouts: (ts, id, person) and (ts, person) tuples.

    Written independently of :mod:`pipeline.core.absence` as the oracle tests
    compare it with: per person in event time, a checkout is converted by an
    order in ``[ts, ts + 30 min)``; a checkout while one is pending is ignored.
    """
    timeline: dict[str, list[tuple[int, int, str]]] = {}
    for ts, mid, person in checkouts:
        timeline.setdefault(person, []).append((ts, 0, mid))
    for ts, person in orders:
        timeline.setdefault(person, []).append((ts, 1, ""))
    abandoned: set[str] = set()
    for items in timeline.values():
        pending: tuple[int, str] | None = None
        for ts, kind, mid in sorted(items):
            if pending is not None and ts >= pending[0] + ABANDON_WITHIN_MS:
                abandoned.add(pending[1])
                pending = None
            if kind == 1:
                pending = None
            elif pending is None:
                pending = (ts, mid)
        if pending is not None:
            abandoned.add(pending[1])
    return abandoned


def generate(config: SyntheticConfig) -> Synthetic:
    """Generate people, their events (in arrival order) and the labels."""
    gen = _Generator(config)
    people = [gen.person(i) for i in range(config.people)]
    for person in people:
        gen.run_person(person)
    rng = gen.rng
    rows = gen.rows
    # Arrival order: most events arrive in event-time order; a late share is
    # held back (an offline phone) and sent up to max_late_ms later.
    arrivals: list[tuple[int, int, Event]] = []
    late_ids: list[str] = []
    max_delay = 0
    log_max = math.log(config.max_late_ms / 1_000)
    for ts, seq, event in rows:
        if config.late_rate and rng.random() < config.late_rate:
            delay = int(1_000 * math.exp(rng.random() * log_max))
            max_delay = max(max_delay, delay)
            late_ids.append(event.message_id)
            arrivals.append((ts + delay, seq, event))
        else:
            arrivals.append((ts, seq, event))
    arrivals.sort(key=lambda row: (row[0], row[1]))
    events = [row[2] for row in arrivals]
    labels = _labels(config, gen, people, events, late_ids, max_delay)
    return Synthetic(events, labels)


def _labels(  # noqa: PLR0917
    config: SyntheticConfig,
    gen: _Generator,
    people: list[_Person],
    events: list[Event],
    late_ids: list[str],
    max_delay: int,
) -> dict[str, Any]:
    links = gen.links
    cart = gen.cart

    def stitched(person_id: str) -> str:
        return links.get(person_id, person_id)

    now = _abandoned(((ts, mid, p) for ts, mid, p, _ in cart.checkouts),
                     ((ts, p) for ts, p, _ in cart.orders))  # fmt: skip
    after = _abandoned(((ts, mid, stitched(p)) for ts, mid, p, _ in cart.checkouts),
                       ((ts, stitched(p)) for ts, p, _ in cart.orders))  # fmt: skip

    def entry(ts: int, mid: str, person_id: str, anon: str) -> dict[str, Any]:
        return {"message_id": mid, "person_id": person_id, "timestamp_ms": ts,
                "anonymous_id": anon, "user_id": links.get(anon)}  # fmt: skip

    def ids(pred: Any) -> list[str]:
        return [p.person_id for p in people if pred(p)]

    return {
        "generator": {
            "seed": config.seed,
            "people": config.people,
            "days": config.days,
            "start_ms": config.start_ms,
            "late_rate": config.late_rate,
            "max_late_ms": config.max_late_ms,
        },
        "events": len(events),
        "rule": {
            "name": "checkout_abandoned",
            "start": "checkout_started",
            "cancel": "order_completed",
            "within_ms": ABANDON_WITHIN_MS,
        },
        "checkouts": len(cart.checkouts),
        "orders": len(cart.orders),
        # Person = user id if present else anonymous id (the core before identity stitching).
        "checkout_abandoned": [
            entry(ts, mid, p, a) for ts, mid, p, a in cart.checkouts if mid in now
        ],
        # Person after stitching: anonymous ids replaced by the user id an identify links them to.
        "checkout_abandoned_stitched": [
            {**entry(ts, mid, p, a), "person_id": stitched(p)}
            for ts, mid, p, a in cart.checkouts
            if mid in after
        ],
        "identities": dict(sorted(links.items())),
        "night_shoppers": ids(
            lambda p: p.night and p.sessions >= 2 and p.night_sessions >= 0.6 * p.sessions
        ),
        "weekend_responders": ids(
            lambda p: p.weekend and p.sessions >= 2 and p.weekend_sessions >= 0.5 * p.sessions
        ),
        "discount_responders": ids(
            lambda p: p.discount and p.orders >= 1 and p.coupon_orders >= 0.5 * p.orders
        ),
        "promo_dependent_high_value": ids(
            lambda p: p.promo_high_value and p.big_coupon_orders >= 1 and p.big_plain_orders == 0
        ),
        "first_purchases": cart.first_purchases,
        "payment_failures": cart.payment_failures,
        "people": [
            {
                "person_id": p.person_id,
                "user_id": p.user_id if p.registered else None,
                "anonymous_ids": [d.anonymous_id for d in p.devices],
                "timezone": p.timezone,
                "sessions": p.sessions,
                "orders": p.orders,
            }
            for p in people
        ],
        "late": {"count": len(late_ids), "max_delay_ms": max_delay, "message_ids": late_ids},
    }


def event_to_json(event: Event) -> dict[str, Any]:
    """The Segment-style JSON object of an event (``pulse produce --file`` reads it back)."""
    obj: dict[str, Any] = {"messageId": event.message_id, "type": event.type}
    if event.event is not None:
        obj["event"] = _title(event.event)
    if event.anonymous_id is not None:
        obj["anonymousId"] = event.anonymous_id
    if event.user_id is not None:
        obj["userId"] = event.user_id
    obj["timestamp"] = event.timestamp_ms
    if event.type == "identify":
        obj["traits"] = dict(event.properties)
    elif event.properties:
        obj["properties"] = dict(event.properties)
    if event.context:
        obj["context"] = dict(event.context)
    return obj


def write_jsonl(events: Iterable[Event], handle: IO[str]) -> int:
    """Write events as JSON lines; returns the count."""
    n = 0
    dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode
    for event in events:
        handle.write(dumps(event_to_json(event)))
        handle.write("\n")
        n += 1
    return n


def write_labels(labels: dict[str, Any], path: Path) -> None:
    path.write_text(json.dumps(labels, indent=1, sort_keys=True) + "\n")


def labels_path_for(out: Path) -> Path:
    """``events.jsonl`` -> ``events.labels.json`` (labels live beside the events)."""
    return out.with_name(out.name.removesuffix(".jsonl").removesuffix(".json") + ".labels.json")
