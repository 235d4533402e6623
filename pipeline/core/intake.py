"""What happens to an event on its source partition, before it reaches its person.

The logic of :class:`pipeline.worker.source.SourcePartition` (documented
there), kept in the core so that the compiled core runs it: the worker and
``pulse replay`` call :meth:`SourcePartition.accept` once per event, and an
interpreted call with its verdict object was a tenth of a compiled replay.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any, Literal

from pipeline.core.clock import NEG_INF_MS
from pipeline.core.dedupe import Dedupe, DedupeWindow
from pipeline.core.events import Event
from pipeline.core.identity import IdentityRules
from pipeline.core.operator import late_record
from pipeline.core.outputs import LATE, Output
from pipeline.core.stitching import StitchAction, Stitcher

Kind = Literal["duplicate", "late", "route"]

#: The identity rules a partition uses unless told otherwise (immutable: shared).
_DEFAULT_RULES = IdentityRules()
_DEFAULT_WINDOW = DedupeWindow()
_NO_ACTIONS: tuple[StitchAction, ...] = ()


class Accepted:
    """The verdict on one event: drop it, route it to ``late``, or apply it to ``person``."""

    __slots__ = ("actions", "kind", "late", "person")

    def __init__(
        self,
        kind: Kind,
        person: str = "",
        actions: tuple[StitchAction, ...] = _NO_ACTIONS,
        late: Output | None = None,
    ) -> None:
        self.kind = kind
        self.person = person
        self.actions = actions
        self.late = late

    def __repr__(self) -> str:
        return (
            f"Accepted(kind={self.kind!r}, person={self.person!r}, "
            f"actions={self.actions!r}, late={self.late!r})"
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Accepted):
            return NotImplemented
        return (self.kind, self.person, self.actions, self.late) == (
            other.kind,
            other.person,
            other.actions,
            other.late,
        )

    def __hash__(self) -> int:
        return hash((self.kind, self.person, self.actions, self.late))


_DUPLICATE = Accepted("duplicate")


class SourcePartition:
    """Dedupe, stream time and identity routing of one ``pulse.events`` partition.

    ``identity`` None: no stitching (the event names its person); by default the
    default :class:`~pipeline.core.identity.IdentityRules`.
    """

    def __init__(
        self,
        allowed_lateness_ms: int,
        identity: IdentityRules | None = _DEFAULT_RULES,
        dedupe_window: DedupeWindow = _DEFAULT_WINDOW,
        links: MutableMapping[str, str] | None = None,
        stream_time_ms: int = NEG_INF_MS,
    ) -> None:
        self.allowed_lateness_ms = allowed_lateness_ms
        self.identity = identity
        self.dedupe_window = dedupe_window
        self.links = links
        self.stream_time_ms = stream_time_ms
        self.dedupe: Dedupe = dedupe_window.build()
        self.stitcher: Stitcher | None = (
            None if identity is None else Stitcher(identity, {} if links is None else links)
        )

    def __repr__(self) -> str:
        return (
            f"SourcePartition(allowed_lateness_ms={self.allowed_lateness_ms!r}, "
            f"identity={self.identity!r}, dedupe_window={self.dedupe_window!r}, "
            f"links={self.links!r}, stream_time_ms={self.stream_time_ms!r})"
        )

    def is_late(self, timestamp_ms: int) -> bool:
        """Below the partition's stream time minus the allowed lateness."""
        return (
            self.stream_time_ms > NEG_INF_MS
            and timestamp_ms < self.stream_time_ms - self.allowed_lateness_ms
        )

    def accept(self, event: Event) -> Accepted:
        """Decide what becomes of ``event`` (the next record of the partition)."""
        ts = event.timestamp_ms
        if not self.dedupe.offer(event.message_id, ts):
            return _DUPLICATE
        stream_time = self.stream_time_ms
        if stream_time > NEG_INF_MS and ts < stream_time - self.allowed_lateness_ms:
            watermark = stream_time - self.allowed_lateness_ms
            person = event.person_id
            return Accepted(
                "late", person, late=Output(LATE, person, late_record(event, watermark))
            )
        if ts > stream_time:
            self.stream_time_ms = ts
        stitcher = self.stitcher
        if stitcher is None:  # no identity rules: the event names its person
            return Accepted("route", event.user_id or event.anonymous_id or "")
        person, actions = stitcher.route(event)
        return Accepted("route", person, tuple(actions) if actions else _NO_ACTIONS)

    def snapshot(self) -> dict[str, Any]:
        """What the worker persists with the partition's offsets (the links live apart)."""
        return {"t": self.stream_time_ms}

    def restore(self, snapshot: dict[str, Any]) -> None:
        self.stream_time_ms = int(snapshot.get("t", NEG_INF_MS))
