"""What sessions and traits read from an event, extracted once per event.

An :class:`Event` carries free-form properties; the behavioral folds need a
handful of them. :func:`fact_of` pulls them out in one pass into a
:class:`Fact`, which the traits operator buffers in person state (as a list,
:meth:`Fact.to_list`) until the watermark makes it final.

Conventions (the Segment e-commerce spec's names, canonical snake_case):

* **cart value** of a *cart event* (:data:`CART_EVENTS`): the first finite
  number among ``cart_value``, ``total``, ``value``, ``revenue``.
* **revenue** of an order (:data:`ORDER_EVENT`): the first finite number among
  ``revenue``, ``total``, ``value``.
* **coupon**: a non-empty ``coupon`` property (string or number) or a
  ``coupon_applied`` event.
* **items**: ``(product_id, category)`` pairs from ``product_id``/``sku`` and
  ``category`` of the event itself and of each entry of ``products``.

    >>> from pipeline.core.events import Event
    >>> e = Event(message_id="m1", type="track", event="product_viewed", user_id="u",
    ...           timestamp_ms=1_000, properties={"product_id": "p1", "category": "shoes"})
    >>> fact_of(e).items
    (('p1', 'shoes'),)
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pipeline.core.events import Event

ORDER_EVENT = "order_completed"
CHECKOUT_EVENT = "checkout_started"
COUPON_EVENT = "coupon_applied"
CART_EVENTS = frozenset({
    "product_added", "product_removed", "cart_viewed", "checkout_started",
    "checkout_step_viewed", "checkout_step_completed", "payment_info_entered", ORDER_EVENT,
})  # fmt: skip

_CART_KEYS = ("cart_value", "total", "value", "revenue")
_REVENUE_KEYS = ("revenue", "total", "value")
#: At most this many items are read from one event's ``products`` list.
MAX_ITEMS_PER_EVENT = 20


@dataclass(slots=True, init=False)
class Fact:
    """The part of one event that sessions and traits use. Times in epoch ms.

    A native class in the compiled core (reading a field is a C struct access,
    where a named tuple's went through a generic attribute lookup); treat it as
    immutable. Buffered in person state as a list: :meth:`to_list` and
    :meth:`from_list`.
    """

    ts: int
    mid: str
    name: str
    tz: str | None
    cart: float | None
    revenue: float | None
    coupon: bool
    #: ``(product, category)`` pairs: tuples from :func:`fact_of`, lists when read
    #: back from stored state (typed loosely so the compiled core accepts both)
    items: Sequence[Sequence[str | None]]
    page: str | None

    def __init__(  # noqa: PLR0917 (written out: mypyc compiles it, not a generated one)
        self,
        ts: int,
        mid: str,
        name: str,
        tz: str | None,
        cart: float | None,
        revenue: float | None,
        coupon: bool,
        items: Sequence[Sequence[str | None]],
        page: str | None,
    ) -> None:
        self.ts = ts
        self.mid = mid
        self.name = name
        self.tz = tz
        self.cart = cart
        self.revenue = revenue
        self.coupon = coupon
        self.items = items
        self.page = page

    def to_list(self) -> list[Any]:
        """The stored form: ``[ts, mid, name, tz, cart, revenue, coupon, items, page]``."""
        return [self.ts, self.mid, self.name, self.tz, self.cart, self.revenue, self.coupon,
                self.items, self.page]  # fmt: skip

    @staticmethod
    def from_list(item: Sequence[Any]) -> Fact:
        """The fact a stored list (:meth:`to_list`) stands for."""
        return Fact(item[0], item[1], item[2], item[3], item[4], item[5], item[6], item[7],
                    item[8])  # fmt: skip


def _number(props: dict[str, Any], keys: tuple[str, ...]) -> float | None:
    for key in keys:
        value = props.get(key)
        if isinstance(value, int | float) and not isinstance(value, bool):
            number = float(value)
            if math.isfinite(number):
                return number
    return None


def _plain(mapping: Mapping[str, Any]) -> dict[str, Any]:
    """``mapping`` as a dict: itself when it is one (the usual case).

    The compiled core reads a dict directly, a ``Mapping`` through a generic method call.
    """
    return mapping if isinstance(mapping, dict) else dict(mapping)


def _text(value: Any) -> str | None:
    if type(value) is str:  # the common case first
        return value or None
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, str | int | float):
        return str(value) or None
    return None


def _items(props: dict[str, Any]) -> tuple[tuple[str | None, str | None], ...]:
    found: list[tuple[str | None, str | None]] = []
    own = (_text(props.get("product_id") or props.get("sku")), _text(props.get("category")))
    if own != (None, None):
        found.append(own)
    products = props.get("products")
    if isinstance(products, list):
        for entry in products[:MAX_ITEMS_PER_EVENT]:
            if isinstance(entry, dict) or isinstance(entry, Mapping):  # noqa: SIM101 (dict: fast)
                plain = _plain(entry)
                item = (_text(plain.get("product_id") or plain.get("sku")),
                        _text(plain.get("category")))  # fmt: skip
                if item != (None, None) and item not in found:
                    found.append(item)
    return tuple(found)


def event_name(event: Event) -> str:
    """The name folds count an event under: its event name, else its type (``identify``)."""
    return event.event or event.type


def fact_of(event: Event) -> Fact:
    """Extract the :class:`Fact` of ``event`` (pure; reads each property once)."""
    props = _plain(event.properties)
    context = _plain(event.context)
    name = event_name(event)
    coupon = name == COUPON_EVENT or _text(props.get("coupon")) is not None
    page = context.get("page_path") or _text(props.get("path"))
    if page is None and event.type == "page":
        page = context.get("page_url") or _text(props.get("url"))
    return Fact(  # positional (ts, mid, name, tz, cart, revenue, coupon, items, page): faster
        event.timestamp_ms,
        event.message_id,
        name,
        context.get("timezone"),
        _number(props, _CART_KEYS) if name in CART_EVENTS else None,
        _number(props, _REVENUE_KEYS) if name == ORDER_EVENT else None,
        coupon,
        _items(props) if props else (),
        page,
    )
