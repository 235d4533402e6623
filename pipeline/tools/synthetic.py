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
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from pipeline.core.events import Event
from pipeline.tools.synthetic_shoppers import (
    ABANDON_WITHIN_MS,
    DAY_MS,
    DEFAULT_START_MS,
    HOUR_MS,
    MINUTE_MS,
    Person,
    title,
)
from pipeline.tools.synthetic_visits import Generator

__all__ = [
    "ABANDON_WITHIN_MS",
    "DAY_MS",
    "DEFAULT_START_MS",
    "HOUR_MS",
    "MINUTE_MS",
    "Synthetic",
    "SyntheticConfig",
    "event_to_json",
    "generate",
    "labels_path_for",
    "write_jsonl",
    "write_labels",
]


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
    gen = Generator(config)
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
    gen: Generator,
    people: list[Person],
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
        obj["event"] = title(event.event)
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
