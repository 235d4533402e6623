"""One partition number's work: its source events, its persons, its clocks.

A :class:`PartitionTask` owns partition ``p`` of ``pulse.events`` (the source)
and of ``pulse.events.by-person`` (its persons), with their store. It is
driven record by record by the consumer loop (``loop.py``) and sends what it
produces through a :class:`Sink`, so it can be tested without a broker.

An event read on ``pulse.events[p]`` is decoded (undecodable: to the DLQ with
its reason and original bytes), judged by the source model (``source.py``:
duplicate, late, or its person and identity actions), then applied here if its
person lives on ``p`` or forwarded to the person's partition (handed over when
this worker owns it, ``persons.py``). An identity link
moves the anonymous person's state: it lives on ``p`` (events are keyed by
anonymous id), so it is taken out here and merged in here too when the user
lives on ``p``, else sent as a ``merge-in`` record to the user's partition.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from pipeline.contract.wire import decode_for_processing, encode_event
from pipeline.core.dedupe import DedupeWindow
from pipeline.core.engine import Operator, Processor, Stage
from pipeline.core.events import Event
from pipeline.core.identity import IDENTITIES, IdentityRules
from pipeline.core.outputs import Output
from pipeline.core.stitching import StitchAction
from pipeline.errors import DecodeError
from pipeline.worker import metrics
from pipeline.worker.clocks import ACTIVE, SOURCE_HEADER, InputClocks, SourceActivity, source_header
from pipeline.worker.partitioner import partition_for
from pipeline.worker.persons import AWAITS_HEADER, MERGE_IN, MERGE_OUT, RESTORE, PersonSide
from pipeline.worker.seen import StoredDedupe
from pipeline.worker.sink import Headers, ProcessingFailed, Record, Sink
from pipeline.worker.source import SourcePartition
from pipeline.worker.store import Links, PartitionStore, PersonStates, meta_key

log = logging.getLogger(__name__)

__all__ = [
    "MERGE_IN",
    "MERGE_OUT",
    "RESTORE",
    "Headers",
    "PartitionTask",
    "ProcessingFailed",
    "Record",
    "Sink",
    "Topology",
]


@dataclass
class Topology:
    """What a task runs: the compiled topology's operators, stage and identity rules."""

    operators: Sequence[Operator]
    stage: Stage | None = None
    identity: IdentityRules = field(default_factory=IdentityRules)
    dedupe_window: DedupeWindow = field(default_factory=DedupeWindow)


class PartitionTask(PersonSide):
    """Source ``p``, persons of ``p``, and ``p``'s watermark (see the module docs)."""

    def __init__(
        self,
        partition: int,
        partitions: int,
        store: PartitionStore,
        topology: Topology,
        sink: Sink,
        *,
        allowed_lateness_ms: int,
        idle_timeout_s: float,
        prefix: str = "pulse.",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.partition = partition
        self.prefix = prefix
        self.partitions = partitions
        self.store = store
        self.sink = sink
        self.now = clock
        self.persons = PersonStates(store)
        self.processor = Processor(
            topology.operators,
            allowed_lateness_ms=allowed_lateness_ms,
            store=self.persons,
            stage=topology.stage,
            identity=topology.identity,
        )
        self.source = SourcePartition(
            allowed_lateness_ms, topology.identity, topology.dedupe_window, Links(store)
        )
        self.source.dedupe = self.seen = StoredDedupe(topology.dedupe_window, store)
        self.seen_restored = False  # whether the store held it (else the loop refills it)
        self.inputs = InputClocks(partitions, idle_timeout_s)
        self.activity = SourceActivity(last_record=clock())
        self.forwarded = 0
        #: per person partition, the source time the last forwarded record carried
        self.told: dict[int, int] = {}
        #: whether ``pulse.events.by-person[p]`` was read to its end (the loop says)
        self.caught_up = False
        #: the offset after the last ``pulse.events[p]`` record applied (kept with the clocks)
        self.read_to = -1
        self.skipping = False
        self._load_meta()
        self.timers_restored = self.processor.rebuild_index()

    # -- persistence of the clocks --------------------------------------------------

    def _load_meta(self) -> None:
        raw = self.store.get(meta_key("clocks"))
        meta = {} if raw is None else json.loads(raw)
        self.seen_restored = self.seen.load(meta.get("seen"))
        if raw is None:
            return
        self.source.restore(meta.get("source", {}))
        self.read_to = int(meta.get("read_to", -1))
        self.inputs.restore(meta.get("inputs", {}), self.now())
        self.processor.clock.observe(
            int(meta.get("stream_time", self.processor.clock.stream_time_ms))
        )

    def save_meta(self) -> None:
        """Written with every commit (with the persons), so clocks and offsets always agree."""
        self.persons.flush()
        meta = {
            "source": self.source.snapshot(),
            "inputs": self.inputs.snapshot(),
            "stream_time": self.processor.clock.stream_time_ms,
            "read_to": self.read_to,
            "seen": self.seen.save(),
        }
        self.store.put(meta_key("clocks"), json.dumps(meta, separators=(",", ":")).encode())

    # -- pulse.events[p] ------------------------------------------------------------

    def on_event_record(self, rec: Record) -> None:
        """One source record (the next offset of ``pulse.events[p]``)."""
        if rec.offset < self.read_to:
            # read again after an at_least_once crash: its effects are durable already
            if not self.skipping:
                self.skipping = True
                log.info("events[%d]: offsets below %d were applied already; skipping them",
                         rec.partition, self.read_to)  # fmt: skip
            metrics.EVENTS_REDELIVERED.inc()
            return
        self.read_to = rec.offset + 1
        if self.activity.saw_record(self.now()):
            self.woke = True
        if self.partition in self.inputs.idle:  # its persons see it active again at once
            self.inputs.observe(self.partition, self.source.stream_time_ms, ACTIVE, self.now())
        try:
            self._ingest(rec)
        except DecodeError as err:
            self.dead_letter("events", rec, err)
        except Exception as exc:
            if not self.persons.careful:
                raise ProcessingFailed(f"events[{rec.partition}]@{rec.offset}") from exc
            log.exception(
                "ingesting events[%d]@%d failed; record sent to the DLQ", rec.partition, rec.offset
            )
            self.dead_letter(
                "events", rec, DecodeError("processing_error", f"{type(exc).__name__}: {exc}")
            )

    woke = False

    def _ingest(self, rec: Record) -> None:
        event, forward = decode_for_processing(rec.value)
        verdict = self.source.accept(event)
        if verdict.kind == "duplicate":
            metrics.EVENTS_DUPLICATE.inc()
            return
        if verdict.kind == "late":
            assert verdict.late is not None
            self.emit([verdict.late])
            return
        person = verdict.person
        if not person:
            raise DecodeError("missing_id", "every id of the event is a blocked placeholder")
        awaits = None
        for action in verdict.actions:
            self.emit([Output(IDENTITIES, action.user_id, action.record)])
            if action.kind == "link" and not self._link(action, event):
                awaits = action.anonymous_id
        target = partition_for(person.encode(), self.partitions)
        if target == self.partition:
            self.emit(
                self.processor.process(
                    event,
                    person,
                    advance_clock=False,
                    awaits=awaits,
                    source=(self.partition, rec.offset),
                )
            )
            return
        peer = self.direct(self.partition, target) if self.direct else None
        if peer is not None:  # the worker owns the person partition too (persons.py)
            peer.take(event, person, awaits, (self.partition, rec.offset))
            return
        if forward is None:
            forward = encode_event(event)
        header = source_header(self.partition, rec.offset, self.source.stream_time_ms)
        headers = [(SOURCE_HEADER, header)]
        if awaits is not None:
            headers.append((AWAITS_HEADER, awaits.encode()))
        self.sink.send(
            "events.by-person", person.encode(), forward, headers, target, clock=self._clock()
        )
        self.forwarded += 1
        self.told[target] = self.source.stream_time_ms

    def _clock(self) -> tuple[int, int]:
        return self.partition, self.source.stream_time_ms

    def _link(self, action: StitchAction, event: Event) -> bool:
        """Move the anonymous person into the user; False if that takes two hops.

        The anonymous person lives on its id's partition, which is this one when
        events are keyed by anonymous id (Pulse's SDK and CLI key them so): then
        its state is taken here and merged here or sent ahead of the event to
        the user's partition. Otherwise a ``merge-out`` goes to its partition,
        and the event tells the user's partition to hold the user at the link's
        time until the merge arrives (``awaits``), so the outcome is the same.
        """
        anon, user = action.anonymous_id, action.user_id
        body: dict[str, Any] = {
            "anon": anon,
            "user": user,
            "t": event.timestamp_ms,
            "mid": event.message_id,
        }
        anon_at = partition_for(anon.encode(), self.partitions)
        if anon_at != self.partition:
            # the event was not keyed by its anonymous id: its state lives elsewhere
            self.control(anon_at, anon, MERGE_OUT, body)
            return False
        self.extract(body)
        self.merge_in(body)
        return True

    # -- time ---------------------------------------------------------------------------

    def advance(self) -> None:
        """Move the persons' stream time to the minimum over sources; fire what is due."""
        # the source's own events reach its persons without a hop: its clock is direct
        self.inputs.raise_time(self.partition, self.source.stream_time_ms)
        target = self.inputs.stream_time_ms(self.now(), self.caught_up)
        if target > self.processor.clock.stream_time_ms:
            self.emit(self.processor.advance_to(target))
