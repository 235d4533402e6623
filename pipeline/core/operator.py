"""What the processor runs: per-person operators and a rule stage (protocols).

Both see time only as data: an operator buffers an event at or above the
watermark (``on_event``) and decides what is below it (``on_watermark``), in
event time; the rule stage does the same with the whole person state, moving
the operators along as it walks the person's timeline (``settle``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from pipeline.core.events import Event
from pipeline.core.outputs import Output
from pipeline.core.store import PersonState


class Operator(Protocol):
    """A rule, session window or trait computed per person (see ``absence.py``).

    ``on_event`` takes an event at or above ``watermark_ms`` (buffering it until
    final); ``on_watermark`` decides everything below the watermark, in event
    time. Calling ``on_watermark`` at ``t1`` then ``t2`` must equal calling it at
    ``t2`` alone (outputs concatenated): the rule stage drives operators through
    intermediate times.
    """

    @property
    def name(self) -> str: ...

    def on_event(
        self, state: Any, event: Event, person_id: str, watermark_ms: int
    ) -> tuple[Any, list[Output]]: ...

    def on_watermark(
        self, state: Any, person_id: str, watermark_ms: int
    ) -> tuple[Any, list[Output]]: ...

    def next_deadline_ms(self, state: Any) -> int | None: ...

    def merge(self, a: Any, b: Any) -> Any:
        """Both persons' snapshots as one (``a`` stays, ``b`` merges in); inputs untouched."""


class Stage(Protocol):
    """Runs with the whole person state, after the operators (rules read traits)."""

    def after_event(
        self, person: PersonState, event: Event, person_id: str, watermark_ms: int
    ) -> list[Output]:
        """Take an event at or above the watermark (buffered until final)."""

    def settle(
        self,
        person: PersonState,
        person_id: str,
        watermark_ms: int,
        operators: Sequence[Operator],
    ) -> list[Output]:
        """Decide everything below the watermark, moving ``operators`` along in event time."""

    def next_deadline_ms(self, person: PersonState) -> int | None: ...

    def merge(self, a: PersonState, b: PersonState, *, at_ms: int | None = None) -> PersonState:
        """The stage's keys of two merged person states (``a`` stays); inputs untouched.

        ``at_ms``: both were settled up to this time (the link's), where the
        merged person's derived decisions (segments) are made again.
        """


def late_record(event: Event, watermark_ms: int) -> dict[str, Any]:
    """The record written to the late-events output for an event below the watermark."""
    return {
        "message_id": event.message_id,
        "person_id": event.person_id,
        "timestamp_ms": event.timestamp_ms,
        "watermark_ms": watermark_ms,
        "reason": "beyond_allowed_lateness",
        "event": event.to_record(),
    }
