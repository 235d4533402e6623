"""Which operators a worker runs.

The built-in topology is the first trigger Pulse shipped: checkout abandonment,
a ``checkout_started`` not followed by an ``order_completed`` of the same person
within 30 minutes of event time.
"""

from __future__ import annotations

from pipeline.core.absence import AbsenceRule
from pipeline.core.engine import Operator

CHECKOUT_ABANDONED = AbsenceRule(
    name="checkout_abandoned",
    start="checkout_started",
    cancel="order_completed",
    within_ms=30 * 60_000,
)


def default_operators() -> list[Operator]:
    return [CHECKOUT_ABANDONED]
