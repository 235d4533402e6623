"""Which operators a worker runs.

The built-in topology is the first trigger Pulse shipped: checkout abandonment,
a ``checkout_started`` not followed by an ``order_completed`` of the same person
within 30 minutes of event time.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pipeline.core.absence import AbsenceRule
from pipeline.core.behavior import BehaviorOperator
from pipeline.core.engine import Operator

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


def person_traits(person: Mapping[str, Any], as_of_ms: int | None = None) -> Mapping[str, Any]:
    """The trait values predicates read as ``trait.<name>``: built-in and custom.

    Windowed traits (``counts_1d``, ...) are evaluated as of ``as_of_ms``: the
    event's time, or the watermark when time alone moves. Built-in traits are
    computed lazily (a predicate reads a few of them); custom traits, which see
    every built-in value, force them all.
    """
    from pipeline.core.extensions import TRAITS
    from pipeline.core.traits import traits_of

    builtin = traits_of(person, as_of_ms, lazy=True)
    if not TRAITS:
        return builtin
    values = dict(builtin)
    for name, fn in TRAITS.items():
        values[name] = fn(values)
    return values
