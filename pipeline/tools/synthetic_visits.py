"""The synthetic shoppers' visits (:mod:`pipeline.tools.synthetic`): what they do.

One :class:`Generator` per run walks each person through their days: visits,
searches, product views, carts, checkouts, payments (some fail), orders,
logins that link their devices, and returns after an abandoned cart. Events
are appended in event time with a sequence number; arrival order is decided
by :func:`pipeline.tools.synthetic.generate`.
"""

from __future__ import annotations

import math
import random
import uuid
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from pipeline.core.events import Event
from pipeline.tools.synthetic_shoppers import (
    _CATEGORIES,
    _CATEGORY_NAMES,
    _DAY_HOURS,
    _DEVICES,
    _FAIL_REASONS,
    _LOCALES,
    _NIGHT,
    _NIGHT_HOURS,
    _ZONES,
    ABANDON_WITHIN_MS,
    DAY_MS,
    HOUR_MS,
    MINUTE_MS,
    Cart,
    Device,
    Person,
    local_midnight_ms,
)

if TYPE_CHECKING:
    from pipeline.tools.synthetic import SyntheticConfig


class Generator:
    def __init__(self, config: SyntheticConfig) -> None:
        self.cfg = config
        self.rng = random.Random(config.seed)
        self.rows: list[tuple[int, int, Event]] = []  # (event time, seq, event)
        self.cart = Cart()
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
        device: Device | None,
        person: Person,
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

    def person(self, index: int) -> Person:
        rng = self.rng
        has_account = rng.random() < self.cfg.account_share
        zone = rng.choice(_ZONES)
        n_devices = 1 + (has_account and rng.random() < 0.35) + (has_account and rng.random() < 0.1)
        devices = []
        for _ in range(n_devices):
            anon = self._uuid()
            dtype, os_name, channel, agent = rng.choice(_DEVICES)
            devices.append(Device(anon, {
                "channel": channel, "timezone": zone, "locale": _LOCALES.get(zone, "en-US"),
                "device_id": anon[:18], "device_type": dtype, "os_name": os_name,
                "user_agent": agent, "ip": f"198.51.100.{rng.randrange(1, 255)}",
            }))  # fmt: skip
        discount = rng.random() < 0.2
        return Person(
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

    def run_person(self, person: Person) -> None:
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
            midnight = local_midnight_ms(person.timezone, day_start)
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

    def session(self, person: Person, t: int, day: int, promo: bool) -> int:
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
        person: Person,
        device: Device,
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
        person: Person,
        device: Device,
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

    def _login(self, person: Person, device: Device, t: int, context: dict[str, Any]) -> int:
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
