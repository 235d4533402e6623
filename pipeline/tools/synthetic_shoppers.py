"""The synthetic shoppers (:mod:`pipeline.tools.synthetic`): who they are.

Their time zones, locales and devices, the catalog they shop from, the hours
their sessions start at, and the per-person bookkeeping the ground-truth labels
are built from. What they do is :mod:`pipeline.tools.synthetic_visits`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache
from typing import Any
from zoneinfo import ZoneInfo

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


@dataclass
class Device:
    anonymous_id: str
    context: dict[str, Any]
    logged_in: bool = False


@dataclass
class Person:
    index: int
    user_id: str | None
    registered: bool
    timezone: str
    devices: list[Device]
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
class Cart:
    """Bookkeeping for labels: checkouts and orders with both identities."""

    checkouts: list[tuple[int, str, str, str]] = field(default_factory=list)
    orders: list[tuple[int, str, str]] = field(default_factory=list)
    first_purchases: list[dict[str, Any]] = field(default_factory=list)
    payment_failures: list[dict[str, Any]] = field(default_factory=list)


@cache
def local_midnight_ms(zone: str, day_start_ms: int) -> int:
    """UTC ms of local midnight of the calendar day that starts at ``day_start_ms`` (UTC)."""
    day = datetime.fromtimestamp(day_start_ms / 1000, tz=UTC)
    local = datetime(day.year, day.month, day.day, tzinfo=ZoneInfo(zone))
    return int(local.timestamp() * 1000)


def title(name: str) -> str:
    """``checkout_started`` -> ``Checkout Started`` (Segment's spelling)."""
    return " ".join(part.capitalize() for part in name.split("_"))
