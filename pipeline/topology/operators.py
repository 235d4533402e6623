"""Which operators a worker runs.

The built-in topology is the first trigger Pulse shipped: checkout abandonment,
a ``checkout_started`` not followed by an ``order_completed`` of the same person
within 30 minutes of event time.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from pipeline.core.absence import AbsenceRule
from pipeline.core.behavior import BehaviorOperator
from pipeline.core.engine import Operator
from pipeline.core.traits import Traits, TraitsConfig

CHECKOUT_ABANDONED = AbsenceRule(
    name="checkout_abandoned",
    start="checkout_started",
    cancel="order_completed",
    within_ms=30 * 60_000,
)


def default_operators() -> list[Operator]:
    """Checkout abandonment, then sessions + traits + idle TTL (``core/behavior.py``)."""
    return [CHECKOUT_ABANDONED, BehaviorOperator()]


def base_operators() -> list[Operator]:
    """The always-on operators (sessions, traits, ...), without built-in trigger rules.

    A topology file brings its own triggers, so the worker runs these plus the
    file's rule stage.
    """
    return [op for op in default_operators() if not isinstance(op, AbsenceRule)]


def predictive_operators(traits: Traits) -> list[Operator]:
    """:func:`base_operators` with the traits a ``predictions:`` section asks for."""
    return [BehaviorOperator(traits=traits)]


def predictive_traits(send_channels: tuple[str, ...], recs: bool) -> Traits:
    """The traits with the folds of best send time and next best product, as configured."""
    return Traits(TraitsConfig(send_channels=send_channels, recent_products=recs))


class TraitsReader:
    """:func:`person_traits` over a topology's own :class:`Traits` (a ``predictions:`` section)."""

    def __init__(self, traits: Traits) -> None:
        self.traits = traits

    def __call__(self, person: Mapping[str, Any], as_of_ms: int | None = None) -> Mapping[str, Any]:
        return person_traits(person, as_of_ms, traits=self.traits)


def person_traits(
    person: Mapping[str, Any], as_of_ms: int | None = None, *, traits: Traits | None = None
) -> Mapping[str, Any]:
    """The trait values predicates read as ``trait.<name>``: built-in and custom.

    Windowed traits (``counts_1d``, ...) are evaluated as of ``as_of_ms``: the
    event's time, or the watermark when time alone moves. Built-in traits are
    computed lazily (a predicate reads a few of them); custom traits, which see
    every built-in value, force them all.
    """
    from pipeline.core.extensions import TRAITS
    from pipeline.core.predictions import order_traits
    from pipeline.core.traits import traits_of

    if traits is None:
        builtin = traits_of(person, as_of_ms, lazy=True)
    else:
        builtin = traits_of(person, as_of_ms, traits=traits, lazy=True)
    orders = order_traits(person) if builtin else {}  # (with a predictions: section)
    if orders:
        builtin = _WithOrders(builtin, orders)
    if not TRAITS:
        return builtin
    values = dict(builtin)
    for name, fn in TRAITS.items():
        values[name] = fn(values)
    return values


class _WithOrders(Mapping[str, Any]):
    """The built-in traits plus ``first_order_ms`` and ``order_days`` (predictions' order facts).

    Those two live in the rule stage's slice (``pipeline.core.predictions``):
    the features of training examples and of online scores read them alike.
    """

    def __init__(self, traits: Mapping[str, Any], orders: Mapping[str, Any]) -> None:
        self._traits = traits
        self._orders = orders

    def __getitem__(self, name: str) -> Any:
        if name in self._orders:
            return self._orders[name]
        return self._traits[name]

    def __iter__(self) -> Iterator[str]:
        yield from self._traits
        yield from self._orders

    def __len__(self) -> int:
        return len(self._traits) + len(self._orders)
