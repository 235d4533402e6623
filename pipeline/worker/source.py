"""What happens to an event on its source partition, before it reaches its person.

One :class:`SourcePartition` models one ``pulse.events`` partition. The worker
keeps one per assigned partition and ``pulse replay`` keeps one per partition of
the topic (it knows each event's key, so its partition), so both decide the
same things in the same order:

1. **duplicates**: a message id seen before on the partition (within the
   :class:`~pipeline.core.dedupe.DedupeWindow`) is dropped;
2. **lateness**: an event earlier than the partition's own stream time minus
   the allowed lateness is *late*. The partition's stream time is the largest
   event time among its earlier records (offset order), so whether an event is
   late depends on the data alone, never on how partitions interleave;
3. **identity**: the partition's :class:`~pipeline.core.stitching.Stitcher`
   (links keyed by anonymous id, which is how events are keyed) names the
   person and the identity actions (links, conflicts).

Example::

    >>> from pipeline.core.events import Event
    >>> src = SourcePartition(allowed_lateness_ms=1_000)
    >>> e = Event(message_id="m1", type="track", event="page_viewed", user_id="u",
    ...           timestamp_ms=5_000)
    >>> src.accept(e).kind, src.stream_time_ms
    ('route', 5000)
    >>> src.accept(e).kind
    'duplicate'
"""

from __future__ import annotations

from collections.abc import MutableMapping
from dataclasses import dataclass, field
from typing import Any, Literal

from pipeline.core.clock import NEG_INF_MS
from pipeline.core.dedupe import Dedupe, DedupeWindow
from pipeline.core.engine import late_record
from pipeline.core.events import Event
from pipeline.core.identity import IdentityRules
from pipeline.core.outputs import LATE, Output
from pipeline.core.stitching import StitchAction, Stitcher


@dataclass(frozen=True, slots=True)
class Accepted:
    """The verdict on one event: drop it, route it to ``late``, or apply it to ``person``."""

    kind: Literal["duplicate", "late", "route"]
    person: str = ""
    actions: tuple[StitchAction, ...] = ()
    late: Output | None = None


@dataclass
class SourcePartition:
    """Dedupe, stream time and identity routing of one ``pulse.events`` partition."""

    allowed_lateness_ms: int
    identity: IdentityRules | None = field(default_factory=IdentityRules)
    dedupe_window: DedupeWindow = field(default_factory=DedupeWindow)
    links: MutableMapping[str, str] | None = None
    stream_time_ms: int = NEG_INF_MS
    dedupe: Dedupe = field(init=False)
    stitcher: Stitcher | None = field(init=False)

    def __post_init__(self) -> None:
        self.dedupe = self.dedupe_window.build()
        links = {} if self.links is None else self.links
        self.stitcher = None if self.identity is None else Stitcher(self.identity, links)

    def is_late(self, timestamp_ms: int) -> bool:
        """Below the partition's stream time minus the allowed lateness."""
        return (
            self.stream_time_ms > NEG_INF_MS
            and timestamp_ms < self.stream_time_ms - self.allowed_lateness_ms
        )

    def accept(self, event: Event) -> Accepted:
        """Decide what becomes of ``event`` (the next record of the partition)."""
        if not self.dedupe.offer(event.message_id, event.timestamp_ms):
            return Accepted("duplicate")
        if self.is_late(event.timestamp_ms):
            watermark = self.stream_time_ms - self.allowed_lateness_ms
            person = event.person_id
            return Accepted(
                "late", person, late=Output(LATE, person, late_record(event, watermark))
            )
        self.stream_time_ms = max(self.stream_time_ms, event.timestamp_ms)
        if self.stitcher is None:  # no identity rules: the event names its person
            return Accepted("route", event.person_id)
        person, actions = self.stitcher.route(event)
        return Accepted("route", person, tuple(actions))

    def snapshot(self) -> dict[str, Any]:
        """What the worker persists with the partition's offsets (the links live apart)."""
        return {"t": self.stream_time_ms}

    def restore(self, snapshot: dict[str, Any]) -> None:
        self.stream_time_ms = int(snapshot.get("t", NEG_INF_MS))
