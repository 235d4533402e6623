"""The Pulse worker: two Faust agents over the pure core.

* **ingest** consumes ``pulse.events`` (keyed by device/anonymous id), decodes
  and validates each record, sends undecodable ones to ``pulse.events.dlq``
  (original key, value and headers, plus ``pulse-dlq-*`` headers with the
  reason) and re-keys the rest by person onto ``pulse.events.by-person``.
* **behavior** consumes ``pulse.events.by-person`` and drives one
  :class:`~pipeline.core.engine.Processor` per partition, whose person state
  lives in a RocksDB-backed Faust table with a changelog topic.

So that timers fire on a quiet partition, a once-a-second timer sends a *tick*
(a control record, header ``pulse-control: tick``) to each of this worker's
by-person partitions that has been idle for ``PULSE_IDLE_ADVANCE_MS``: the
tick moves that partition's stream time forward by the wall-clock time that
has passed since its last record. Ticks travel through the partition itself,
so they are ordered with its events and table writes stay in stream context.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import faust
from faust.types import TP

from pipeline import metrics
from pipeline.config import Settings
from pipeline.core.clock import NEG_INF_MS
from pipeline.core.engine import Operator, PersonState, Processor, Stage
from pipeline.core.outputs import Output
from pipeline.errors import DecodeError
from pipeline.records import decode_state, encode_state
from pipeline.topics import BY_PERSON, DLQ, EVENTS, encode_output
from pipeline.wire import decode_event, encode_event

log = logging.getLogger(__name__)

CONTROL_HEADER = "pulse-control"
CLOCK_KEY_PREFIX = b"\x00clock/"
# Keys in the state table that are not persons: our partition clocks and the
# offset Faust keeps in every RocksDB partition.
_INTERNAL_KEYS = (b"\x00", b"__faust\x00")


def _broker_url(bootstrap: str) -> str:
    return ";".join(f"kafka://{host.strip()}" for host in bootstrap.split(",") if host.strip())


def _headers(message: Any) -> list[tuple[str, bytes]]:
    raw = message.headers or []
    items = raw.items() if isinstance(raw, dict) else raw
    return [(str(k), bytes(v) if v is not None else b"") for k, v in items]


class TableStore:
    """A :class:`~pipeline.core.engine.PersonStore` over the Faust table.

    Reads and writes happen inside stream iteration, so Faust routes them to the
    current partition's RocksDB and changelog partition.
    """

    def __init__(self, table: Any, partition: int) -> None:
        self.table = table
        self.partition = partition

    def load(self, person_id: str) -> PersonState | None:
        raw = self.table.get(person_id.encode())
        return None if raw is None else decode_state(raw)

    def save(self, person_id: str, state: PersonState | None) -> None:
        key = person_id.encode()
        if state is None:
            if self.table.get(key) is not None:
                del self.table[key]
        else:
            self.table[key] = encode_state(state)

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
    last_record_wall: float = field(default_factory=time.monotonic)
    #: stream time when the last real record arrived; ticks add idle time to it
    stream_time_at_record: int = 0
    clock_saved_wall: float = 0.0


@dataclass
class PulseWorker:
    """Builds the Faust app and its agents for ``operators``."""

    settings: Settings
    operators: Sequence[Operator]
    stage: Stage | None = None
    partitions: int = 4
    store_url: str = "rocksdb://"
    app: faust.App = field(init=False)
    runtimes: dict[int, _PartitionRuntime] = field(init=False, default_factory=dict)

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
            topic_replication_factor=1,
            topic_allow_declare=True,
            web_enabled=False,
            key_serializer="raw",
            value_serializer="raw",
            consumer_auto_offset_reset="earliest",
            producer_acks=-1,
            # Faust's default linger of 0 sends a produce request for almost every
            # by-person record and changelog write (1.06 records per batch); 5 ms
            # batches 2.5-3.3 per request and costs at most 5 ms per hop
            # (bench/RESULTS.md: +25% events/s and -35% broker CPU in the trial).
            producer_linger=0.005,
            producer_max_batch_size=256 * 1024,
        )
        app = self.app
        self.events_topic = app.topic(s.topic(EVENTS), partitions=self.partitions)
        self.by_person = app.topic(s.topic(BY_PERSON), partitions=self.partitions)
        self.dlq = app.topic(s.topic(DLQ), partitions=self.partitions)
        self.state = app.Table(
            "person-state", partitions=self.partitions, key_type=bytes, value_type=bytes
        )
        self._out_topics: dict[str, Any] = {}
        app.agent(self.events_topic, name="ingest")(self._ingest)
        app.agent(self.by_person, name="behavior")(self._behavior)
        app.timer(1.0, name="idle-ticker")(self._idle_tick)
        app.on_partitions_revoked.connect(self._on_revoked)

    # -- ingest -----------------------------------------------------------------

    async def _ingest(self, stream: Any) -> None:
        async for ev in stream.events():
            msg = ev.message
            metrics.EVENTS_IN.labels(msg.topic).inc()
            try:
                event = decode_event(ev.value)
                await self.by_person.send(key=event.person_id.encode(), value=encode_event(event))
            except DecodeError as err:
                await self._dead_letter(msg, ev.key, ev.value, err)
            except Exception as exc:
                log.exception("ingesting %s failed; record sent to the DLQ", msg)
                failure = DecodeError("processing_error", f"{type(exc).__name__}: {exc}")
                await self._dead_letter(msg, ev.key, ev.value, failure)

    async def _dead_letter(self, msg: Any, key: Any, value: Any, err: DecodeError) -> None:
        metrics.EVENTS_DLQ.labels(err.reason).inc()
        headers = [
            *_headers(msg),
            ("pulse-dlq-reason", err.reason.encode()),
            ("pulse-dlq-message", str(err).encode()),
            ("pulse-dlq-source-topic", str(msg.topic).encode()),
            ("pulse-dlq-source-partition", str(msg.partition).encode()),
            ("pulse-dlq-source-offset", str(msg.offset).encode()),
        ]
        await self.dlq.send(key=key, value=value, headers=headers)

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
            )
            clock = self.state.get(CLOCK_KEY_PREFIX + str(partition).encode())
            if clock is not None:
                proc.clock.observe(int(clock))
            found = proc.rebuild_index()
            log.info("partition %d: stream time %s, %d timers restored", partition, clock, found)
            rt = self.runtimes[partition] = _PartitionRuntime(
                proc, stream_time_at_record=proc.clock.stream_time_ms
            )
        return rt

    async def _behavior(self, stream: Any) -> None:
        async for ev in stream.events():
            started = time.perf_counter()
            try:
                await self._behave(ev)
            except Exception as exc:
                # Faust acks an event even when the agent raises, so re-raising
                # would lose it: park it in the DLQ with the error instead.
                log.exception("processing %s failed; record sent to the DLQ", ev.message)
                err = DecodeError("processing_error", f"{type(exc).__name__}: {exc}")
                await self._dead_letter(ev.message, ev.key, ev.value, err)
            metrics.PROCESS_SECONDS.observe(time.perf_counter() - started)

    async def _behave(self, ev: Any) -> None:
        msg = ev.message
        rt = self._runtime(msg.partition)
        proc = rt.processor
        control = dict(_headers(msg)).get(CONTROL_HEADER)
        if control == b"tick":
            idle_ms = int((time.monotonic() - rt.last_record_wall) * 1000)
            if idle_ms < self.settings.idle_advance_ms:
                return  # a real record arrived meanwhile: its time rules
            outputs = proc.advance_to(json.loads(ev.value)["stream_time_ms"])
        else:
            metrics.EVENTS_IN.labels(msg.topic).inc()
            rt.last_record_wall = time.monotonic()
            outputs = proc.process(decode_event(ev.value), ev.key.decode())
            rt.stream_time_at_record = proc.clock.stream_time_ms
        await self._emit(outputs)
        now = time.monotonic()
        if now - rt.clock_saved_wall >= 1.0:
            clock_key = CLOCK_KEY_PREFIX + str(msg.partition).encode()
            self.state[clock_key] = str(proc.clock.stream_time_ms).encode()
            rt.clock_saved_wall = now
            metrics.WATERMARK_LAG.labels(str(msg.partition)).set(
                max(0.0, time.time() - proc.watermark_ms / 1000)
            )
            metrics.TIMERS_PENDING.set(
                sum(r.processor.pending_timers for r in self.runtimes.values())
            )

    async def _emit(self, outputs: list[Output]) -> None:
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

    async def _idle_tick(self) -> None:
        if self.settings.idle_advance_ms <= 0:
            return
        if self.app.rebalancing or self.app.in_recovery:
            return
        assigned = self.app.assignor.assigned_actives()
        topic = self.settings.topic(BY_PERSON)
        now = time.monotonic()
        for tp in assigned:
            if tp.topic != topic:
                continue
            # Reading the table outside stream iteration is fine (writes are not):
            # a partition restored after a restart gets its timers indexed here.
            rt = self._runtime(tp.partition)
            if rt.stream_time_at_record <= NEG_INF_MS:
                continue  # nothing seen yet: there is no event time to advance from
            idle_ms = int((now - rt.last_record_wall) * 1000)
            if idle_ms < self.settings.idle_advance_ms:
                continue
            target = rt.stream_time_at_record + idle_ms
            await self.by_person.send(
                key=b"",
                value=json.dumps({"stream_time_ms": target}).encode(),
                partition=tp.partition,
                headers=[(CONTROL_HEADER, b"tick")],
            )

    async def _on_revoked(self, app: Any, /, *args: Any, **kwargs: Any) -> None:
        revoked: set[TP] = args[0] if args else kwargs.get("revoked", set())
        for tp in revoked:
            if tp.topic == self.settings.topic(BY_PERSON):
                self.runtimes.pop(tp.partition, None)
