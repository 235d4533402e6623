"""Hand-written events for the core's unit tests."""

from __future__ import annotations

from pipeline.core.absence import AbsenceRule
from pipeline.core.events import Event

MIN = 60_000
T0 = 1_790_000_000_000
CHECKOUT = AbsenceRule("checkout_abandoned", "checkout_started", "order_completed", 30 * MIN)


def ev(mid: str, name: str, at_min: int, **ids: str) -> Event:
    """An event ``at_min`` minutes after ``T0``; ``ids``: anonymous_id and/or user_id."""
    return Event(message_id=mid, type="track", event=name, timestamp_ms=T0 + at_min * MIN, **ids)  # type: ignore[arg-type]
