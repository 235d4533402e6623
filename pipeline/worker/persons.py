"""A person partition's side of a task: what reaches its persons, and what they emit.

Partition ``p``'s persons get events from their own source directly, from
the worker's other sources by hand-over, and from other workers' sources
through ``pulse.events.by-person[p]`` (data records, merges and clock
records, ``clocks.py``). Identity merges move an anonymous person's state
into its user: ``merge-in`` (the state, to the user's partition),
``merge-out`` (to the anonymous person's partition: extract it, then merge in)
and ``restore`` (a refused merge gives the state back).

**Hand-over.** When the worker owns the target person partition too, a record
for it is handed over in process instead of going through the broker: the
same call the broker route ends in, only sooner, in the same transaction (or
at_least_once commit) as the source's offsets. The loop allows it
(``Runtime._direct``) only once the target has read everything that was sent
to it through the broker by that source (a person's ``_src`` guard skips a
source's offsets at or below the last applied, so a source's records must
reach a person partition in offset order) and past the end its input had at
the assignment or the last abort.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from pipeline.contract.topics import encode_output
from pipeline.contract.wire import decode_trusted
from pipeline.core.engine import Processor
from pipeline.core.events import Event
from pipeline.core.identity import IDENTITIES
from pipeline.core.outputs import LATE, Output
from pipeline.errors import DecodeError
from pipeline.worker import metrics
from pipeline.worker.clocks import (
    ACTIVE,
    CLOCK,
    CONTROL_HEADER,
    SOURCE_HEADER,
    InputClocks,
    parse_clock,
    parse_source,
)
from pipeline.worker.partitioner import partition_for
from pipeline.worker.sink import ProcessingFailed, Record, Sink
from pipeline.worker.store import PersonStates

if TYPE_CHECKING:
    from pipeline.worker.partition import PartitionTask

log = logging.getLogger(__name__)

MERGE_OUT, MERGE_IN, RESTORE = b"merge-out", b"merge-in", b"restore"
#: On an event forwarded after a two-hop link: the anonymous id whose merge is on its way.
AWAITS_HEADER = "pulse-awaits-merge"


class History(Protocol):
    """The profile API's per-person trigger history (``pipeline/profiles/history.py``)."""

    def __call__(self, outputs: list[Output]) -> None: ...
    def take(self, person_id: str) -> list[Any]: ...
    def absorb(self, person_id: str, entries: list[Any]) -> None: ...


class PersonSide:
    """The persons of partition ``p`` (a base of ``partition.PartitionTask``)."""

    partition: int
    partitions: int
    prefix: str
    sink: Sink
    now: Callable[[], float]
    persons: PersonStates
    processor: Processor
    inputs: InputClocks
    history: History | None = None  # the profile API's, when it runs
    #: ``direct(source, target)``: the task to hand a record over to, if allowed (``loop.py``)
    direct: Callable[[int, int], PartitionTask | None] | None = None

    def merge_in(self, body: dict[str, Any]) -> None:
        """Merge here if the user lives here, else send it to the user's partition."""
        user_at = partition_for(body["user"].encode(), self.partitions)
        if user_at != self.partition:
            self.control(user_at, body["user"], MERGE_IN, body)
            return
        outputs = self.processor.merge_in(
            body["user"],
            body["state"],
            body["anon"],
            event_time_ms=body["t"],
            message_id=body["mid"],
        )
        self.emit(outputs)
        kinds = {o.record["kind"] for o in outputs if o.topic == IDENTITIES}
        refused = "conflict" in kinds
        if "merge" in kinds and self.history is not None:  # (not on a redelivered merge)
            self.history.absorb(body["user"], body.get("history") or [])
        if refused and (body["state"] or body.get("history")):
            anon_at = partition_for(body["anon"].encode(), self.partitions)
            if anon_at == self.partition:
                self.give_back(body)
            else:
                self.control(anon_at, body["anon"], RESTORE, body)

    def control(self, partition: int, key: str, kind: bytes, body: dict[str, Any]) -> None:
        """A merge record for person partition ``partition``: handed over, or through the broker."""
        peer = self.direct(self.partition, partition) if self.direct else None
        if peer is not None:
            metrics.HANDED_OVER.inc()
            peer.on_control(kind, body)
            return
        self.sink.send(
            "events.by-person",
            key.encode(),
            json.dumps(body).encode(),
            [(CONTROL_HEADER, kind)],
            partition,
            clock=self._clock(),
        )

    def _clock(self) -> tuple[int, int]:
        """What a clock record of this partition's source sent now would say (``forwards.py``)."""
        raise NotImplementedError

    # -- pulse.events.by-person[p] -----------------------------------------------------

    def on_person_record(self, rec: Record) -> None:
        """One record of ``pulse.events.by-person[p]``: data, a merge, or a clock."""
        try:
            self._behave(rec)
        except Exception as exc:
            if not self.persons.careful:
                raise ProcessingFailed(f"events.by-person[{rec.partition}]@{rec.offset}") from exc
            log.exception(
                "processing events.by-person[%d]@%d failed; record sent to the DLQ",
                rec.partition,
                rec.offset,
            )
            self.dead_letter(
                "events.by-person",
                rec,
                DecodeError("processing_error", f"{type(exc).__name__}: {exc}"),
            )

    def _behave(self, rec: Record) -> None:
        headers = dict(rec.headers)
        control = headers.get(CONTROL_HEADER)
        now = self.now()
        if control is None:
            src = headers.get(SOURCE_HEADER)
            source = None
            if src is not None:
                s, offset, stream_time = parse_source(src)
                self.inputs.observe(s, stream_time, ACTIVE, now)
                source = (s, offset)
            event = decode_trusted(rec.value or b"")
            awaits = headers.get(AWAITS_HEADER)
            self.emit(
                self.processor.process(
                    event,
                    (rec.key or b"").decode(),
                    advance_clock=False,
                    awaits=None if awaits is None else awaits.decode(),
                    source=source,
                )
            )
        elif control == CLOCK:
            for s, (stream_time, level) in parse_clock(rec.value or b"{}").items():
                if s != self.partition:
                    self.inputs.observe(s, stream_time, level, now)
        else:
            self.on_control(control, json.loads(rec.value or b""))

    def on_control(self, kind: bytes, body: dict[str, Any]) -> None:
        """A merge record (``MERGE_IN``, ``MERGE_OUT`` or ``RESTORE``), read or handed over."""
        if kind == MERGE_IN:
            self.merge_in(body)
        elif kind == MERGE_OUT:
            self.extract(body)
            self.merge_in(body)
        elif kind == RESTORE:
            self.give_back(body)

    def extract(self, body: dict[str, Any]) -> None:
        """Take the anonymous person out for a merge: their state, and their trigger history."""
        body["state"] = self.processor.extract(body["anon"]) or {}
        if self.history is not None:
            body["history"] = self.history.take(body["anon"])

    def give_back(self, body: dict[str, Any]) -> None:
        """A refused merge: the anonymous person gets their state and history back."""
        if body["state"]:
            self.emit(self.processor.restore(body["anon"], body["state"]))
        if self.history is not None:
            self.history.absorb(body["anon"], body.get("history") or [])

    def take(self, event: Event, person: str, awaits: str | None, source: tuple[int, int]) -> None:
        """An event handed over by a source partition of this worker (no broker hop)."""
        metrics.HANDED_OVER.inc()
        self.emit(
            self.processor.process(event, person, advance_clock=False, awaits=awaits, source=source)
        )

    # -- outputs ------------------------------------------------------------------------

    def emit(self, outputs: list[Output]) -> None:
        if not outputs:
            return
        if self.history is not None:
            self.history(outputs)
        emitted_at = [("pulse-emitted-at-ms", str(int(time.time() * 1000)).encode())]
        for out in outputs:
            if out.topic == "triggers":
                metrics.TRIGGERS.labels(out.record["rule"]).inc()
            elif out.topic == LATE:
                metrics.EVENTS_LATE.inc()
            self.sink.send(
                out.topic, out.key.encode(), encode_output(out.topic, out.record), emitted_at, None
            )

    def dead_letter(self, topic: str, rec: Record, err: DecodeError) -> None:
        metrics.EVENTS_DLQ.labels(err.reason).inc()
        headers = [
            *rec.headers,
            ("pulse-dlq-reason", err.reason.encode()),
            ("pulse-dlq-message", str(err).encode()),
            ("pulse-dlq-source-topic", (self.prefix + topic).encode()),
            ("pulse-dlq-source-partition", str(rec.partition).encode()),
            ("pulse-dlq-source-offset", str(rec.offset).encode()),
        ]
        self.sink.send("events.dlq", rec.key or b"", rec.value, headers, None)
