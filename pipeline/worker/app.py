"""The Pulse worker: two Faust agents over the pure core.

* **ingest** consumes ``pulse.events`` (keyed by device/anonymous id), decodes
  and validates each record, drops duplicate message ids, sends undecodable
  ones to ``pulse.events.dlq`` (original key, value and headers, plus
  ``pulse-dlq-*`` headers with the reason) and re-keys the rest by person onto
  ``pulse.events.by-person``. It also broadcasts each source partition's
  stream time to every by-person partition (see :mod:`pipeline.worker.clocks`).
* **behavior** consumes ``pulse.events.by-person`` and drives one
  :class:`~pipeline.core.engine.Processor` per partition, whose person state
  lives in a RocksDB-backed Faust table with a changelog topic. Its stream
  time is the minimum of the source partitions' reported stream times.

Identity stitching crosses partitions in three hops, all through
``pulse.events.by-person`` so each stays ordered with the person's events:
ingest (which owns the ``identity-links`` table, keyed like ``pulse.events`` by
anonymous id) decides a link and sends ``merge-out`` to the anonymous person's
partition; there behavior extracts the anonymous state and sends it as
``merge-in`` to the user's partition, which merges it (the folds' merge) and
evaluates it at its watermark, so a timer pending for the anonymous person
fires once, for the merged person. A refused merge (too many anonymous ids)
goes back as ``restore``.

Faust acks an event even when the agent raises, so an unexpected error while
processing a record would lose it: such records are parked in the DLQ with
reason ``processing_error`` instead, and the worker goes on.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator, Iterator, MutableMapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import faust
from faust.types import TP

from pipeline import metrics
from pipeline.config import Settings
from pipeline.core.dedupe import Dedupe, DedupeWindow
from pipeline.core.engine import Operator, PersonState, Processor, Stage
from pipeline.core.identity import IDENTITIES, IdentityRules
from pipeline.core.outputs import Output
from pipeline.core.stitching import Stitcher
from pipeline.errors import DecodeError
from pipeline.records import decode_state, encode_state
from pipeline.topics import BY_PERSON, DLQ, EVENTS, encode_output
from pipeline.wire import decode_for_forwarding, decode_trusted
from pipeline.worker.clocks import (
    CONTROL_HEADER,
    WATERMARK,
    InputWatermarks,
    SourceClock,
    parse_watermark,
    processed_all,
    watermark_record,
)
from pipeline.worker.offsets import OffsetGuard, Record, Verdict, partition_bounds, read_range
from pipeline.worker.partition import in_partition_of

log = logging.getLogger(__name__)

# Keys in the state table that are not persons: the offset Faust keeps in every
# RocksDB partition (and the partition clocks older versions kept there).
_INTERNAL_KEYS = (b"\x00", b"__faust\x00")
#: Report a source partition's new stream time at most this often.
WATERMARK_INTERVAL_S = 0.05
#: Ask whether an unreported source partition is empty at most this often.
CAUGHT_UP_INTERVAL_S = 1.0
#: A partition quiet this long with records left below its high watermark has a
#: hole at its end (no later record will reveal it): seek back to it.
TAIL_CHECK_S = 2.0
#: ... and sought there again this often while it stays stuck.
TAIL_RETRY_S = 10.0
#: How often to look up where newly assigned partitions' backlogs begin.
START_LOOKUP_S = 0.5


STATE_TABLE, LINKS_TABLE = "person-state", "identity-links"


def producer_settings(settings: Settings) -> dict[str, Any]:
    """The worker's Faust producer settings.

    Faust's default linger of 0 sends a produce request for almost every
    by-person record and changelog write (1.06 records per batch); 5 ms
    (``PULSE_LINGER_MS``) batches 2.5-3.3 per request and costs at most 5 ms per
    hop (bench/RESULTS.md: +25% events/s and -35% broker CPU in the trial).
    """
    return {"producer_linger": settings.linger_ms / 1000, "producer_max_batch_size": 256 * 1024}


def partitioned_topics(settings: Settings) -> list[str]:
    """The topics that must share one partition count: the inputs and the changelogs."""
    changelogs = [f"{settings.app_id}-{table}-changelog" for table in (STATE_TABLE, LINKS_TABLE)]
    return [settings.topic(EVENTS), settings.topic(BY_PERSON), *changelogs]


def _broker_url(bootstrap: str) -> str:
    return ";".join(f"kafka://{host.strip()}" for host in bootstrap.split(",") if host.strip())


def _headers(message: Any) -> list[tuple[str, bytes]]:
    raw = message.headers or []
    items = raw.items() if isinstance(raw, dict) else raw
    return [(str(k), bytes(v) if v is not None else b"") for k, v in items]


MERGE_OUT, MERGE_IN, RESTORE = b"merge-out", b"merge-in", b"restore"
AWAITS_HEADER = "pulse-awaits-merge"
#: ``partition:offset`` of the ``pulse.events`` record a by-person event came from.
SOURCE_HEADER = "pulse-source"


def _source(value: bytes | None) -> tuple[int, int] | None:
    """``partition:offset`` from the source header (None: an older ingest's record)."""
    if value is None:
        return None
    partition, _, offset = value.partition(b":")
    return int(partition), int(offset)


class _TableLinks(MutableMapping[str, str]):
    """The identity-links table as the ``MutableMapping`` the Stitcher reads and writes."""

    def __init__(self, table: Any) -> None:
        self.table = table

    def __getitem__(self, key: str) -> str:
        value = self.table.get(key.encode())
        if value is None:
            raise KeyError(key)
        return bytes(value).decode()

    def __setitem__(self, key: str, value: str) -> None:
        self.table[key.encode()] = value.encode()

    def __delitem__(self, key: str) -> None:
        del self.table[key.encode()]

    def __iter__(self) -> Iterator[str]:
        return (bytes(k).decode() for k in self.table if not bytes(k).startswith(b"__"))

    def items(self) -> Iterator[tuple[str, str]]:  # type: ignore[override]
        """Every link of the worker's active partitions, values read in the same pass.

        Not ``__iter__`` + ``__getitem__``: inside an agent Faust looks a key up
        only in the current record's partition, so the links of the worker's
        other partitions would raise ``KeyError``.
        """
        for key, value in self.table.items():
            name = bytes(key)
            if not name.startswith(b"__"):
                yield name.decode(), bytes(value).decode()

    def __len__(self) -> int:
        return sum(1 for _ in self)


class TableStore:
    """A :class:`~pipeline.core.engine.PersonStore` over the Faust table.

    Reads and writes happen under one of the partition's records (see
    :mod:`pipeline.worker.partition`), so Faust routes them to the partition's
    RocksDB and changelog partition.

    Between :meth:`begin` and :meth:`flush` (one batch) saves are kept here and a
    person is written once, however many of the batch's records changed them: one
    RocksDB write and one changelog record per person per batch. They are held
    encoded, so a load sees exactly what the last save stored, never a state an
    event that failed half-way left behind.
    """

    def __init__(self, table: Any, partition: int) -> None:
        self.table = table
        self.partition = partition
        self._pending: dict[str, bytes | None] | None = None

    def begin(self) -> None:
        """Keep saves until :meth:`flush`."""
        if self._pending is None:
            self._pending = {}

    def flush(self) -> None:
        """Write what the batch saved, once per person."""
        pending, self._pending = self._pending, None
        for person_id, raw in (pending or {}).items():
            self._write(person_id.encode(), raw)

    def load(self, person_id: str) -> PersonState | None:
        pending = self._pending
        if pending is not None and person_id in pending:
            raw = pending[person_id]
        else:
            raw = self.table.get(person_id.encode())
        return None if raw is None else decode_state(raw)

    def save(self, person_id: str, state: PersonState | None) -> None:
        raw = None if state is None else encode_state(state)
        if self._pending is not None:
            self._pending[person_id] = raw
        else:
            self._write(person_id.encode(), raw)

    def _write(self, key: bytes, raw: bytes | None) -> None:
        if raw is not None:
            self.table[key] = raw
        elif self.table.get(key) is not None:
            del self.table[key]

    def items(self) -> list[tuple[str, PersonState]]:
        store = self.table.data
        db_for = getattr(store, "_db_for_partition", None)
        pairs = db_for(self.partition).items() if db_for is not None else store.items()
        return [
            (bytes(k).decode(), decode_state(bytes(v)))
            for k, v in pairs
            if v is not None and not bytes(k).startswith(_INTERNAL_KEYS)
        ]


@dataclass
class _PartitionRuntime:
    processor: Processor
    inputs: InputWatermarks
    store: TableStore
    metrics_wall: float = 0.0


@dataclass
class PulseWorker:
    """Builds the Faust app and its agents for ``operators`` (and a rule ``stage``)."""

    settings: Settings
    operators: Sequence[Operator]
    stage: Stage | None = None
    partitions: int = 4
    store_url: str = "rocksdb://"
    dedupe_window: DedupeWindow = field(default_factory=DedupeWindow)
    identity: IdentityRules = field(default_factory=IdentityRules)
    app: faust.App = field(init=False)
    runtimes: dict[int, _PartitionRuntime] = field(init=False, default_factory=dict)
    sources: dict[int, SourceClock] = field(init=False, default_factory=dict)
    dedupe: dict[int, Dedupe] = field(init=False, default_factory=dict)
    events_guard: OffsetGuard = field(init=False, default_factory=OffsetGuard)
    by_person_guard: OffsetGuard = field(init=False, default_factory=OffsetGuard)

    def __post_init__(self) -> None:
        s = self.settings
        self.app_id = s.app_id
        data_dir = s.home / "worker" / self.app_id
        data_dir.mkdir(parents=True, exist_ok=True)
        self.app = faust.App(
            self.app_id,
            broker=_broker_url(s.bootstrap_servers),
            store=self.store_url,
            datadir=str(data_dir),
            topic_partitions=self.partitions,
            topic_replication_factor=s.replication_factor,
            topic_allow_declare=True,
            web_enabled=False,
            key_serializer="raw",
            value_serializer="raw",
            consumer_auto_offset_reset="earliest",
            producer_acks=-1,
            **producer_settings(s),
        )
        app = self.app
        self.events_topic = app.topic(s.topic(EVENTS), partitions=self.partitions)
        self.by_person = app.topic(s.topic(BY_PERSON), partitions=self.partitions)
        self.dlq = app.topic(s.topic(DLQ), partitions=self.partitions)
        self.state = app.Table(
            STATE_TABLE, partitions=self.partitions, key_type=bytes, value_type=bytes
        )
        # anonymous id -> user id; co-partitioned with pulse.events (same keys)
        self.links = app.Table(
            LINKS_TABLE, partitions=self.partitions, key_type=bytes, value_type=bytes
        )
        self._stitcher: Stitcher | None = None
        self._out_topics: dict[str, Any] = {}
        self._children: dict[tuple[int, str], Any] = {}
        self._delivered: dict[str, float] = {}  # when Faust last gave an agent a record
        # the offset a tail seek went back to, and when it may be sought again
        self._tail_sought: dict[TP, tuple[int, float]] = {}
        # where each assigned partition's backlog begins, and in which generation
        self._starts: dict[TP, tuple[int, int]] = {}
        app.agent(self.events_topic, name="ingest")(self._ingest)
        app.agent(self.by_person, name="behavior")(self._behavior)
        app.timer(WATERMARK_INTERVAL_S, name="source-watermarks")(self._report_sources)
        app.timer(TAIL_CHECK_S, name="tail-gaps")(self._check_tails)
        app.timer(START_LOOKUP_S, name="backlog-starts")(self._look_up_starts)
        app.on_partitions_revoked.connect(self._on_revoked)
        app.on_partitions_assigned.connect(self._on_assigned)

    @property
    def stitcher(self) -> Stitcher:
        """Built on first use, once the links table is recovered (it reads it)."""
        if self._stitcher is None:
            self._stitcher = Stitcher(self.identity, _TableLinks(self.links))
        return self._stitcher

    def _counter(self, metric: Any, label: str) -> Any:
        """A labelled metric child, looked up once (``labels()`` costs per call)."""
        child = self._children.get((id(metric), label))
        if child is None:
            child = self._children[(id(metric), label)] = metric.labels(label)
        return child

    # -- ingest -----------------------------------------------------------------

    async def _records(self, guard: OffsetGuard, ev: Any) -> list[Record]:
        """The records to process for Faust event ``ev``, in order (see ``offsets.py``).

        Usually just its own; none if it was processed already; and if the
        consumer skipped records of its partition, those first, read from the broker.
        """
        msg = ev.message
        record = Record(msg.topic, msg.partition, msg.offset, ev.key, ev.value, _headers(msg))
        self._delivered[msg.topic] = time.monotonic()
        if msg.partition not in guard.expected:
            # where the backlog begins: a first record beyond it means its start
            # was skipped
            start = await self._start_offset(msg.tp)
            if start is not None and msg.partition not in guard.expected:
                guard.expected[msg.partition] = start
        verdict = guard.check(msg.partition, msg.offset)
        if verdict is Verdict.PROCESS:
            return [record]
        if verdict is Verdict.SEEN:
            self._counter(metrics.RECORDS_READ_AGAIN, msg.topic).inc()
            return []
        missing = guard.expected[msg.partition]
        log.warning(
            "%s[%d]: offset %d arrived before %d: the consumer skipped records; "
            "reading %d..%d from the broker",
            msg.topic, msg.partition, msg.offset, missing, missing, msg.offset - 1,
        )  # fmt: skip
        self._counter(metrics.CONSUMER_GAPS, msg.topic).inc()
        try:
            filled = await self._read_range(msg.tp, missing, msg.offset)
        except Exception:
            log.exception(
                "%s[%d]: could not read offsets %d..%d; they are skipped",
                msg.topic, msg.partition, missing, msg.offset - 1,
            )  # fmt: skip
            filled = []
        if len(filled) != msg.offset - missing:
            log.info(
                "%s[%d]: %d of offsets %d..%d hold records (compaction or transaction markers)",
                msg.topic, msg.partition, len(filled), missing, msg.offset - 1,
            )  # fmt: skip
        guard.advance(msg.partition, msg.offset)
        # Faust never delivered these offsets, so they are never acked: book them as
        # a gap (as Faust does for holes it sees) or its commits stop before them
        add_gap = getattr(self.app.consumer, "_add_gap", None)
        if add_gap is not None:
            await add_gap(msg.tp, missing, msg.offset - 1)
        return [*filled, record]

    async def _read_range(self, tp: TP, start: int, end: int, **kw: Any) -> list[Record]:
        """:func:`read_range` for one of the worker's partitions, off the event loop."""
        servers, topic, partition = self.settings.bootstrap_servers, tp.topic, tp.partition
        return await asyncio.to_thread(read_range, servers, topic, partition, start, end, **kw)

    async def _batches(self, stream: Any) -> AsyncIterator[Sequence[Any]]:
        """The agent's Faust events, a batch at a time (see ``PULSE_BATCH_MAX``).

        Faust's per-record stream iteration costs more than Pulse's processing
        (bench/RESULTS.md); ``take_events`` gathers records in the background and
        acks them only after the agent has processed the whole batch.
        """
        s = self.settings
        if s.batch_max == 1:
            async for ev in stream.events():
                yield [ev]
        else:
            async for events in stream.take_events(s.batch_max, within=s.batch_wait_ms / 1000):
                yield events

    async def _ingest(self, stream: Any) -> None:
        async for batch in self._batches(stream):
            for ev in batch:
                with in_partition_of(ev):
                    for record in await self._records(self.events_guard, ev):
                        await self._ingest_one(record)

    async def _ingest_one(self, msg: Record) -> None:
        self._counter(metrics.EVENTS_IN, msg.topic).inc()
        src = self.sources.get(msg.partition)
        if src is None:
            src = self.sources[msg.partition] = SourceClock()
        try:
            event, forward = decode_for_forwarding(msg.value)
            seen = self.dedupe.get(msg.partition)
            if seen is None:
                seen = self.dedupe[msg.partition] = self.dedupe_window.build()
            if not seen.offer(event.message_id, event.timestamp_ms):
                metrics.EVENTS_DUPLICATE.inc()
                src.next_offset = msg.offset + 1
                return
            person, actions = self.stitcher.route(event)
            if not person:
                raise DecodeError("missing_id", "every id of the event is a blocked placeholder")
            # where the event was read, so behavior recognises a redelivery
            headers = [(SOURCE_HEADER, b"%d:%d" % (msg.partition, msg.offset))]
            for action in actions:
                await self._emit([Output(IDENTITIES, action.user_id, action.record)])
                if action.kind == "link":
                    # the user's partition holds timers until the merge arrives
                    headers.append((AWAITS_HEADER, action.anonymous_id.encode()))
                    await self._control(
                        action.anonymous_id,
                        MERGE_OUT,
                        {
                            "anon": action.anonymous_id,
                            "user": action.user_id,
                            "t": event.timestamp_ms,
                            "mid": event.message_id,
                        },
                    )
            await self.by_person.send(key=person.encode(), value=forward, headers=headers)
        except DecodeError as err:
            await self._dead_letter(msg, err)
            src.next_offset = msg.offset + 1
            return
        except Exception as exc:
            log.exception("ingesting %s[%d]@%d failed; record sent to the DLQ",
                          msg.topic, msg.partition, msg.offset)  # fmt: skip
            failure = DecodeError("processing_error", f"{type(exc).__name__}: {exc}")
            await self._dead_letter(msg, failure)
            src.next_offset = msg.offset + 1
            return
        src.next_offset = msg.offset + 1
        src.observe(event.timestamp_ms)
        now = time.monotonic()
        if src.due(now, WATERMARK_INTERVAL_S):
            await self._broadcast(msg.partition, src.stream_time_ms, src, now)

    async def _control(self, key: str, kind: bytes, body: dict[str, Any]) -> None:
        await self.by_person.send(
            key=key.encode(), value=json.dumps(body).encode(), headers=[(CONTROL_HEADER, kind)]
        )

    async def _broadcast(
        self, source: int, stream_time_ms: int | None, src: SourceClock, now: float
    ) -> None:
        """Tell every by-person partition how far source partition ``source`` got."""
        value = watermark_record(source, stream_time_ms)
        for partition in range(self.partitions):
            await self.by_person.send(
                key=b"", value=value, partition=partition, headers=[(CONTROL_HEADER, WATERMARK)]
            )
        src.reported_ms = stream_time_ms
        src.reported_wall = now
        src.reported_empty = stream_time_ms is None

    async def _report_sources(self) -> None:
        """Report new, idle (wall-clock advanced) and empty source partitions."""
        if self.app.rebalancing or self.app.in_recovery:
            return
        topic = self.settings.topic(EVENTS)
        assigned = [tp for tp in self.app.assignor.assigned_actives() if tp.topic == topic]
        now = time.monotonic()
        for tp in assigned:
            src = self.sources.get(tp.partition)
            if src is None:
                src = self.sources[tp.partition] = SourceClock()
            idle = src.idle_target(now, self.settings.idle_advance_ms)
            if idle is not None and idle != src.reported_ms:
                await self._broadcast(tp.partition, idle, src, now)
            elif src.due(now, 0.0):
                await self._broadcast(tp.partition, src.stream_time_ms, src, now)
            elif src.reported_ms is None and not src.reported_empty and await self._caught_up(tp):
                log.info(
                    "source partition %d: empty or fully processed; it does not hold back"
                    " stream time until it has a record",
                    tp.partition,
                )
                await self._broadcast(tp.partition, None, src, now)

    async def _caught_up(self, tp: TP) -> bool:
        """Ingest processed everything on ``tp`` (an empty source must not hold time back).

        Not the consumer's position: that counts records fetched but still queued
        for the agent, and reporting their partition empty would make them late.
        Asked at most once a second per partition (it may ask the broker).
        """
        src = self.sources[tp.partition]
        now = time.monotonic()
        if now < src.next_check:
            return False
        src.next_check = now + CAUGHT_UP_INTERVAL_S
        highwater = await self._highwater(tp)
        if highwater is None:
            return False
        # where ingest began matters only while it has processed nothing
        start = src.next_offset if src.next_offset is not None else await self._start_offset(tp)
        return start is not None and processed_all(src.next_offset, start, highwater)

    def _quiet_for(self, topic: str) -> float:
        """Seconds since the agent of ``topic`` was last given a record (0: unknown)."""
        now = time.monotonic()
        return now - self._delivered.get(topic, now)

    async def _highwater(self, tp: TP) -> int | None:
        """``tp``'s high watermark: as the consumer's last fetch saw it, else the broker's."""
        try:
            cached = self.app.consumer.highwater(tp)
        except Exception:  # not fetched yet, or not assigned
            cached = None
        if isinstance(cached, int) and cached >= 0:
            return cached
        try:
            return (await self._bounds(tp))[1]
        except Exception as exc:  # the broker did not answer: next time
            log.debug("%s: no high watermark yet (%s)", tp, exc)
            return None

    async def _bounds(self, tp: TP) -> tuple[int, int]:
        """``tp``'s earliest offset and high watermark, asked of the broker off the event loop."""
        servers = self.settings.bootstrap_servers
        return await asyncio.to_thread(partition_bounds, servers, tp.topic, tp.partition)

    async def _start_offset(self, tp: TP) -> int | None:
        """Where ``tp``'s backlog begins for this worker.

        The group's committed offset, else (nothing committed) the earliest
        offset, as ``auto_offset_reset`` says.

        Asked of the broker once per assignment; None when it cannot say yet:
        during a rebalance (Faust reads the committed offsets at its end), or
        when the generation changed while the broker was asked.
        """
        generation = self.app.consumer_generation_id
        cached = self._starts.get(tp)
        if cached is not None and cached[0] == generation:
            return cached[1]
        if self.app.rebalancing:
            return None
        start = self._committed(tp)
        if start is None:
            try:
                start = (await self._bounds(tp))[0]
            except Exception as exc:  # the broker did not answer: ask again later
                log.debug("%s: no earliest offset yet (%s)", tp, exc)
                return None
            if self.app.rebalancing or self.app.consumer_generation_id != generation:
                return None  # an answer for an assignment that is gone
        self._starts[tp] = (generation, start)
        return start

    async def _look_up_starts(self) -> None:
        """Learn where each newly assigned partition's backlog begins, ahead of its records.

        Else an agent's first record of a partition the group never committed
        waits while the broker is asked, and every record behind it waits too.
        """
        if self.app.rebalancing or self.app.in_recovery:
            return
        guards = self._guards()
        for tp in self.app.assignor.assigned_actives():
            guard = guards.get(tp.topic)
            if guard is not None and tp.partition not in guard.expected:
                await self._start_offset(tp)

    def _guards(self) -> dict[str, OffsetGuard]:
        """The offset guard of each agent, by its input topic."""
        return {
            self.settings.topic(EVENTS): self.events_guard,
            self.settings.topic(BY_PERSON): self.by_person_guard,
        }

    def _committed(self, tp: TP) -> int | None:
        """The group's committed offset of ``tp``, as Faust read it on assignment.

        A private attribute: faust-streaming has no public accessor (pinned in
        constraints.txt). It holds no entry for a partition the group never committed.
        """
        committed = getattr(self.app.consumer, "_committed_offset", {})
        offset = committed.get(tp) if hasattr(committed, "get") else None
        return offset if isinstance(offset, int) and offset >= 0 else None

    async def _check_tails(self) -> None:
        """Seek back to records a quiet partition never delivered (see ``offsets.py``).

        A skipped stretch in the middle is noticed when a later offset arrives;
        one at the end is not, until new records come. So when an agent has had
        no record for a few seconds (nothing is in flight, so a seek cannot race
        with delivery), each of its partitions whose next expected offset is
        below the high watermark is looked at. A partition that has delivered
        nothing since its assignment is expected at the start of its backlog:
        when Faust drops the first records of a partition the group never
        committed, its seek to the committed offset does not bring them back.

        If records are there (not only transaction markers or compacted-away
        offsets), the partition is resumed in Faust's fetch set and sought back
        to the expected offset; again every ``TAIL_RETRY_S`` while it stays stuck.
        """
        if self.app.rebalancing or self.app.in_recovery:
            return
        generation = self.app.consumer_generation_id
        guards = self._guards()
        for tp in self.app.assignor.assigned_actives():
            guard = guards.get(tp.topic)
            if guard is None or self._quiet_for(tp.topic) < TAIL_CHECK_S:
                continue  # the agent is busy: what it lacks may still be on its way
            expected = guard.expected.get(tp.partition)
            if expected is None:
                expected = await self._start_offset(tp)
                if expected is None:
                    continue
            last = self._tail_sought.get(tp)
            if last is not None and last[0] == expected and time.monotonic() < last[1]:
                continue  # sought there lately, or nothing but markers there
            highwater = await self._highwater(tp)
            if highwater is None or highwater <= expected:
                continue
            if last is None or last[0] != expected:
                try:
                    found = await self._read_range(tp, expected, highwater, timeout_s=5, limit=1)
                except Exception as exc:  # the broker did not answer: next time
                    log.warning("%s[%d]: could not look at offsets %d..%d (%s)",
                                tp.topic, tp.partition, expected, highwater - 1, exc)  # fmt: skip
                    continue
                if not found:  # transaction markers or compaction: nothing to read
                    self._tail_sought[tp] = (expected, float("inf"))
                    continue
            # the awaits above let the agents run: look again before seeking
            if (
                self.app.rebalancing
                or self.app.in_recovery
                or self.app.consumer_generation_id != generation
            ):
                return  # a rebalance began while we asked: the partition may be gone
            quiet = self._quiet_for(tp.topic)
            if quiet < TAIL_CHECK_S or guard.expected.get(tp.partition, expected) != expected:
                continue  # records came meanwhile
            log.warning(
                "%s[%d]: quiet for %.0f s with offsets %d..%d not delivered; seeking back to %d",
                tp.topic, tp.partition, quiet, expected, highwater - 1, expected,
            )  # fmt: skip
            self._counter(metrics.CONSUMER_GAPS, tp.topic).inc()
            self._tail_sought[tp] = (expected, time.monotonic() + TAIL_RETRY_S)
            try:
                # back in the fetch set: Faust drops a partition from it while its
                # stream buffer is full and, across a rebalance, may not add it back
                self.app.consumer.resume_partitions({tp})
                await self.app.consumer.seek_wait({tp: expected})
            except Exception as exc:  # revoked meanwhile: its next owner starts over
                log.warning("%s[%d]: seek not done (%s)", tp.topic, tp.partition, exc)
                return

    async def _dead_letter(self, msg: Record, err: DecodeError) -> None:
        metrics.EVENTS_DLQ.labels(err.reason).inc()
        headers = [
            *msg.headers,
            ("pulse-dlq-reason", err.reason.encode()),
            ("pulse-dlq-message", str(err).encode()),
            ("pulse-dlq-source-topic", str(msg.topic).encode()),
            ("pulse-dlq-source-partition", str(msg.partition).encode()),
            ("pulse-dlq-source-offset", str(msg.offset).encode()),
        ]
        await self.dlq.send(key=msg.key, value=msg.value, headers=headers)

    # -- behavior ---------------------------------------------------------------

    def _runtime(self, partition: int) -> _PartitionRuntime:
        rt = self.runtimes.get(partition)
        if rt is None:
            store = TableStore(self.state, partition)
            proc = Processor(
                self.operators,
                allowed_lateness_ms=self.settings.allowed_lateness_ms,
                store=store,
                stage=self.stage,
                identity=self.identity,
            )
            inputs = InputWatermarks(self.partitions)
            # Stream time is not restored from the table: after a restart, records
            # since the last committed offset come again, and a restored clock
            # would call them late. The sources report again as ingest re-reads.
            found = proc.rebuild_index()
            log.info(
                "partition %d: stream time %d, %d timers restored",
                partition,
                proc.clock.stream_time_ms,
                found,
            )
            rt = self.runtimes[partition] = _PartitionRuntime(proc, inputs, store)
        return rt

    async def _behavior(self, stream: Any) -> None:
        async for batch in self._batches(stream):
            # each store the batch saved to, with its partition's last record in the
            # batch (kept here: a rebalance during the batch replaces the runtime,
            # and what the old one kept must still be written)
            touched: dict[int, tuple[TableStore, Any]] = {}
            for ev in batch:
                store = self._runtime(ev.message.partition).store
                store.begin()
                touched[id(store)] = (store, ev)
                with in_partition_of(ev):
                    for record in await self._records(self.by_person_guard, ev):
                        await self._behave_one(record)
            # each person's state once per batch, before Faust acks the batch
            for store, ev in touched.values():
                with in_partition_of(ev):
                    store.flush()

    async def _behave_one(self, record: Record) -> None:
        started = time.perf_counter()
        try:
            await self._behave(record)
        except Exception as exc:
            log.exception("processing %s[%d]@%d failed; record sent to the DLQ",
                          record.topic, record.partition, record.offset)  # fmt: skip
            err = DecodeError("processing_error", f"{type(exc).__name__}: {exc}")
            await self._dead_letter(record, err)
        metrics.PROCESS_SECONDS.observe(time.perf_counter() - started)

    async def _behave(self, msg: Record) -> None:
        rt = self._runtime(msg.partition)
        proc = rt.processor
        headers = dict(msg.headers)
        control = headers.get(CONTROL_HEADER)
        if control == WATERMARK:
            source, stream_time = parse_watermark(msg.value or b"")
            rt.inputs.update(source, stream_time)
            outputs = proc.advance_to(rt.inputs.stream_time_ms())
        elif control == MERGE_OUT:
            body = json.loads(msg.value or b"")
            body["state"] = proc.extract(body["anon"]) or {}
            await self._control(body["user"], MERGE_IN, body)
            return
        elif control == MERGE_IN:
            body = json.loads(msg.value or b"")
            outputs = proc.merge_in(
                body["user"], body["state"], body["anon"], event_time_ms=body["t"],
                message_id=body["mid"],
            )  # fmt: skip
            refused = any(o.topic == IDENTITIES and o.record["kind"] == "conflict" for o in outputs)
            if refused and body["state"]:
                await self._control(body["anon"], RESTORE, body)
        elif control == RESTORE:
            body = json.loads(msg.value or b"")
            outputs = proc.restore(body["anon"], body["state"])
        elif control is not None:
            return  # a control record of another kind (e.g. an older worker's tick)
        else:
            self._counter(metrics.EVENTS_IN, msg.topic).inc()
            awaits = headers.get(AWAITS_HEADER)
            redelivered = proc.redelivered_count
            outputs = proc.process(
                decode_trusted(msg.value or b""),
                (msg.key or b"").decode(),
                advance_clock=False,
                awaits=None if awaits is None else awaits.decode(),
                source=_source(headers.get(SOURCE_HEADER)),
            )
            if proc.redelivered_count != redelivered:
                metrics.EVENTS_REDELIVERED.inc()
        await self._emit(outputs)
        now = time.monotonic()
        if now - rt.metrics_wall >= 1.0:
            rt.metrics_wall = now
            metrics.WATERMARK_LAG.labels(str(msg.partition)).set(
                max(0.0, time.time() - proc.watermark_ms / 1000)
            )
            metrics.TIMERS_PENDING.set(
                sum(r.processor.pending_timers for r in self.runtimes.values())
            )

    async def _emit(self, outputs: list[Output]) -> None:
        if not outputs:
            return
        emitted_at = str(int(time.time() * 1000)).encode()
        for out in outputs:
            topic = self._out_topics.get(out.topic)
            if topic is None:
                topic = self._out_topics[out.topic] = self.app.topic(
                    self.settings.topic(out.topic), partitions=self.partitions
                )
            if out.topic == "triggers":
                metrics.TRIGGERS.labels(out.record["rule"]).inc()
            elif out.topic == "events.late":
                metrics.EVENTS_LATE.inc()
            await topic.send(
                key=out.key.encode(),
                value=encode_output(out.topic, out.record),
                headers=[("pulse-emitted-at-ms", emitted_at)],
            )

    async def _on_assigned(self, app: Any, /, *args: Any, **kwargs: Any) -> None:
        # the agents are quiet from here until their first record: a partition
        # that never delivers one is seen by the tail check
        now = time.monotonic()
        for topic in (self.settings.topic(EVENTS), self.settings.topic(BY_PERSON)):
            self._delivered[topic] = now

    async def _on_revoked(self, app: Any, /, *args: Any, **kwargs: Any) -> None:
        revoked: set[TP] = args[0] if args else kwargs.get("revoked", set())
        if revoked:
            # its per-user index covers the links of the partitions it was built
            # on: rebuilt on first use after the new assignment
            self._stitcher = None
        for tp in revoked:
            self._tail_sought.pop(tp, None)
            self._starts.pop(tp, None)
            if tp.topic == self.settings.topic(BY_PERSON):
                self.runtimes.pop(tp.partition, None)
                self.by_person_guard.forget(tp.partition)
            elif tp.topic == self.settings.topic(EVENTS):
                self.sources.pop(tp.partition, None)
                self.dedupe.pop(tp.partition, None)
                self.events_guard.forget(tp.partition)
