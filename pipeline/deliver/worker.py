"""``pulse deliver``: the delivery worker.

One consumer (group ``<app>-deliver``, range assignment so that partition *n*
of a destination's input and retry topics always go to the same worker) reads
every configured destination's ``pulse.activations.<dest>`` and
``pulse.deliver.<dest>.retry``; each destination has its own
:class:`~pipeline.deliver.book.Book`, its own HTTP session and its own
dispatcher task, so a slow or failing endpoint only ever holds up itself (its
input partitions pause once it holds ``max_pending`` activations, the others
go on). Everything runs on one asyncio loop: the consumer is polled without
blocking, and its rebalance and the producer's delivery callbacks run on the
loop's thread, so the books need no locks.

Offsets are committed every ``commit_interval_s`` up to the first record that
is neither delivered, dead-lettered (acknowledged by the broker) nor written to
the retry topic (acknowledged): a worker killed at any point re-reads what
might not be done, and sends it again with the same ``webhook-id``.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import signal
import time
from typing import Any

from pipeline.config import Settings
from pipeline.contract.topics import ACTIVATIONS, decode_output
from pipeline.deliver import metrics, records
from pipeline.deliver.config import Destinations
from pipeline.deliver.dispatch import Dispatcher, now_ms
from pipeline.deliver.entries import Kind, Read, Write
from pipeline.deliver.state import StateReader, ensure_delivery_topics, watermarks, write_state
from pipeline.errors import PulseError

log = logging.getLogger("pulse.deliver")


class DeliveryWorker:
    """Delivers the activations of ``destinations`` until :meth:`stop` (or SIGTERM/SIGINT)."""

    def __init__(
        self, settings: Settings, destinations: Destinations, *, group_id: str | None = None,
        max_pending: int = 20_000, commit_interval_s: float = 0.2, poll_batch: int = 1000,
    ) -> None:  # fmt: skip
        self.settings = settings
        self.destinations = destinations
        self.group_id = group_id or f"{settings.app_id}-deliver"
        self.max_pending = max_pending
        self.commit_interval_s = commit_interval_s
        self.poll_batch = poll_batch
        self.dests: dict[str, Dispatcher] = {}
        self.by_topic: dict[str, tuple[Dispatcher, Kind]] = {}
        self.catching: dict[tuple[str, int], int] = {}
        self.committed: dict[tuple[str, int], int] = {}
        self.consumer: Any = None
        self.producer: Any = None
        self.state: StateReader | None = None
        self._stop: asyncio.Event | None = None
        for dest in destinations:
            d = Dispatcher(dest, records.input_topic(settings, dest.name),
                           records.retry_topic(settings, dest.name), self._flush_outboxes,
                           self._disable)  # fmt: skip
            self.dests[dest.name] = d
            self.by_topic[d.input_topic] = (d, "main")
            self.by_topic[d.retry_topic] = (d, "retry")

    # -- lifecycle ----------------------------------------------------------------------

    def setup(self, partitions: int = 4) -> None:
        """Create missing topics and read which destinations are disabled (blocking)."""
        ensure_delivery_topics(self.settings, [d.name for d in self.destinations],
                               partitions=partitions)  # fmt: skip
        self.state = StateReader(self.settings)
        states = self.state.read_to_end()
        for name, d in self.dests.items():
            disabled = bool(states.get(name, {}).get("disabled"))
            d.book.disabled = disabled
            metrics.DELIVER_DISABLED.labels(name).set(int(disabled))
            if disabled:
                log.error("destination %s is disabled (%s): its activations wait; "
                          "`pulse deliver enable %s` resumes it", name,
                          states[name].get("reason", ""), name)  # fmt: skip

    def stop(self) -> None:
        if self._stop is not None:
            self._stop.set()

    async def run(self) -> None:
        from confluent_kafka import Consumer, Producer

        if self.state is None:
            self.setup()
        assert self.state is not None
        self._stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, self.stop)
        self.producer = Producer({
            "bootstrap.servers": self.settings.bootstrap_servers, "acks": "all",
            "enable.idempotence": True, "linger.ms": 5,
        })  # fmt: skip
        self.consumer = Consumer({
            "bootstrap.servers": self.settings.bootstrap_servers, "group.id": self.group_id,
            "enable.auto.commit": False, "auto.offset.reset": "earliest",
            "isolation.level": "read_committed", "partition.assignment.strategy": "range",
            "session.timeout.ms": 10_000, "on_commit": self._on_commit,
        })  # fmt: skip
        self.consumer.subscribe(list(self.by_topic), on_assign=self._on_assign,
                                on_revoke=self._on_revoke, on_lost=self._on_lost)  # fmt: skip
        stop = self._stop
        dispatchers = [asyncio.create_task(d.run(stop)) for d in self.dests.values()]
        try:
            await self._poll_loop()
        finally:
            for task in dispatchers:
                task.cancel()
            await self._drain()

    async def _drain(self) -> None:
        """Let requests in flight finish (10 s at most), write what they ask, commit, close."""
        await asyncio.gather(*(d.drain(10) for d in self.dests.values()))
        self.producer.poll(0)
        self._flush_outboxes()
        self.producer.flush(10)
        self._commit(sync=True)
        self.consumer.close()
        if self.state is not None:
            self.state.close()
        for d in self.dests.values():
            await d.sender.close()

    # -- the poll loop --------------------------------------------------------------------

    async def _poll_loop(self) -> None:
        assert self._stop is not None
        next_commit = next_state = next_gauges = 0.0
        while not self._stop.is_set():
            messages = self.consumer.consume(self.poll_batch, timeout=0)
            now = now_ms()
            for msg in messages:
                self._on_message(msg, now)
            if self.catching:
                self._check_caught_up(now)
            self.producer.poll(0)
            self._flush_outboxes()
            tick = time.monotonic()
            if tick >= next_commit:
                self._commit()
                self._backpressure()
                next_commit = tick + self.commit_interval_s
            if tick >= next_state:
                self._follow_state(now)
                next_state = tick + 1.0
            if tick >= next_gauges:
                for d in self.dests.values():
                    metrics.DELIVER_PENDING.labels(d.config.name).set(d.book.pending)
                    metrics.DELIVER_IN_FLIGHT.labels(d.config.name).set(d.records_in_flight)
                next_gauges = tick + 1.0
            if messages:
                for d in self.dests.values():
                    d.wake.set()
                await asyncio.sleep(0)
            else:
                await asyncio.sleep(0.005)

    def _on_message(self, msg: Any, now: int) -> None:
        if msg.error() is not None:
            log.warning("consumer: %s", msg.error())
            return
        d, kind = self.by_topic[msg.topic()]
        headers = [(k, v if v is not None else b"") for k, v in (msg.headers() or [])]
        value = msg.value() or b""
        emitted = records.emitted_ms(headers, msg.timestamp()[1])
        if kind == "main":
            rec = Read(msg.partition(), msg.offset(), msg.key(), value, headers,
                       self._decode(value), emitted)  # fmt: skip
            d.book.add_main(rec, now)
            return
        meta = records.retry_meta(headers)
        if "origin" not in meta or "gen" not in meta:
            meta = {"origin": -1, "gen": 0, "marker": 1}  # not ours: skip it
        activation = None if meta.get("marker") else self._decode(value)
        rec = Read(msg.partition(), msg.offset(), msg.key(), value, records.original(headers),
                   activation, emitted)  # fmt: skip
        d.book.add_retry(rec, meta, now)

    @staticmethod
    def _decode(value: bytes) -> dict[str, Any] | None:
        try:
            decoded = decode_output(ACTIVATIONS + "any", value)
        except (PulseError, ValueError, TypeError, KeyError):
            return None
        return decoded if isinstance(decoded, dict) else None

    def _check_caught_up(self, now: int) -> None:
        from confluent_kafka import TopicPartition

        tps = [TopicPartition(t, p) for t, p in self.catching]
        for tp in self.consumer.position(tps):
            high = self.catching[(tp.topic, tp.partition)]
            if tp.offset >= high:
                del self.catching[(tp.topic, tp.partition)]
                d, _ = self.by_topic[tp.topic]
                d.book.set_caught_up(tp.partition, now)
                d.wake.set()

    # -- writes -------------------------------------------------------------------------

    def _flush_outboxes(self) -> None:
        for d in self.dests.values():
            if not d.book.outbox:
                continue
            writes, d.book.outbox = d.book.outbox, []
            for i, write in enumerate(writes):
                try:
                    self._produce(d, write)
                except BufferError:
                    d.book.outbox[:0] = writes[i:]  # the producer's queue is full: next round
                    self.producer.poll(0.01)
                    break

    def _produce(self, d: Dispatcher, write: Write) -> None:
        entry = write.entry
        callback = functools.partial(self._written, d, write)
        if write.kind == "dlq":
            headers = records.dlq_headers(entry, write.reason, d.input_topic, d.config.name)
            topic = self.settings.topic(records.DLQ)
            self.producer.produce(topic, key=entry.key, value=entry.value, headers=headers,
                                  on_delivery=callback)  # fmt: skip
            return
        if write.kind == "retry":
            value, headers = entry.value, records.retry_headers(entry, write.gen)
        else:
            value, headers = b"", records.marker_headers(entry, write.gen)
        self.producer.produce(d.retry_topic, key=entry.key, value=value, headers=headers,
                              partition=entry.partition, on_delivery=callback)  # fmt: skip

    def _written(self, d: Dispatcher, write: Write, err: Any, _msg: Any) -> None:
        error = None if err is None else str(err)
        if error is not None:
            log.warning("%s: writing a %s record failed (%s); trying again", d.config.name,
                        write.kind, error)  # fmt: skip
        elif write.kind == "dlq" and write.entry.state == "dlq":
            metrics.DELIVER_DEAD_LETTERED.labels(d.config.name, write.reason).inc()
            log.info("%s: dead-lettered %s (%s: %s)", d.config.name, write.entry.activation_id,
                     write.reason, write.entry.last_error)  # fmt: skip
        d.book.written(write, error, now_ms())
        d.wake.set()

    # -- commits, rebalances, back-pressure, state -----------------------------------------

    def _positions(self, only: set[tuple[str, int]] | None = None) -> list[Any]:
        from confluent_kafka import TopicPartition

        out = []
        for d in self.dests.values():
            for (kind, partition), position in d.book.positions().items():
                topic = d.input_topic if kind == "main" else d.retry_topic
                ident = (topic, partition)
                if (only is None or ident in only) and self.committed.get(ident) != position:
                    out.append(TopicPartition(topic, partition, position))
                    self.committed[ident] = position
        return out

    def _commit(self, *, sync: bool = False, only: set[tuple[str, int]] | None = None) -> None:
        from confluent_kafka import KafkaException

        offsets = self._positions(only)
        if not offsets:
            return
        try:
            self.consumer.commit(offsets=offsets, asynchronous=not sync)
        except KafkaException as exc:
            log.warning("commit failed (%s); will try again", exc)
            self.committed.clear()

    def _on_commit(self, err: Any, _partitions: Any) -> None:
        if err is not None:
            self.committed.clear()  # commit everything again next time

    def _on_assign(self, consumer: Any, partitions: list[Any]) -> None:
        now = now_ms()
        for tp in partitions:
            d, kind = self.by_topic[tp.topic]
            if kind != "retry":
                continue
            low, high = watermarks(consumer, tp)
            if high <= low:
                d.book.set_caught_up(tp.partition, now)
            else:
                self.catching[(tp.topic, tp.partition)] = high
        log.info("assigned %s", ", ".join(f"{tp.topic}[{tp.partition}]" for tp in partitions))

    def _on_revoke(self, _consumer: Any, partitions: list[Any]) -> None:
        self.producer.flush(10)  # delivery callbacks settle what was written
        self._flush_outboxes()
        self.producer.flush(10)
        self._commit(sync=True, only={(tp.topic, tp.partition) for tp in partitions})
        self._forget(partitions)

    def _on_lost(self, _consumer: Any, partitions: list[Any]) -> None:
        self._forget(partitions)

    def _forget(self, partitions: list[Any]) -> None:
        for tp in partitions:
            d, _ = self.by_topic[tp.topic]
            d.book.drop_partition(tp.partition)
            d.paused.discard(tp.partition)
            self.catching.pop((tp.topic, tp.partition), None)
            self.committed.pop((tp.topic, tp.partition), None)

    def _backpressure(self) -> None:
        from confluent_kafka import TopicPartition

        mine = list(self.consumer.assignment())
        for d in self.dests.values():
            parts = [tp.partition for tp in mine if tp.topic == d.input_topic]
            if d.book.pending > self.max_pending:
                new = [p for p in parts if p not in d.paused]
                if new:
                    self.consumer.pause([TopicPartition(d.input_topic, p) for p in new])
                    d.paused.update(new)
            elif d.paused and d.book.pending < self.max_pending // 2:
                self.consumer.resume([TopicPartition(d.input_topic, p) for p in d.paused])
                d.paused.clear()

    def _follow_state(self, now: int) -> None:
        assert self.state is not None
        for name, state in self.state.poll(0).items():
            d = self.dests.get(name)
            if d is None or bool(state.get("disabled")) == d.book.disabled:
                continue
            if state.get("disabled"):
                d.book.disabled = True
                log.error("destination %s was disabled (%s)", name, state.get("reason", ""))
            else:
                d.book.enable(now)
                log.warning("destination %s is enabled again: delivering", name)
            metrics.DELIVER_DISABLED.labels(name).set(int(d.book.disabled))
            d.wake.set()

    def _disable(self, d: Dispatcher, reason: str, status: int | None) -> None:
        name = d.config.name
        log.error("DESTINATION DISABLED: %s answered %s at %s. Its activations are parked (kept, "
                  "not committed) until `pulse deliver enable %s`.", name, reason, d.config.url,
                  name)  # fmt: skip
        metrics.DELIVER_DISABLED.labels(name).set(1)
        write_state(self.settings, name, disabled=True, reason=reason, status=status,
                    producer=self.producer)  # fmt: skip


def run(settings: Settings, destinations: Destinations, *, partitions: int = 4,
        metrics_port: int = 0, group_id: str | None = None) -> None:  # fmt: skip
    """Create the topics, serve metrics and deliver until SIGTERM/SIGINT."""
    worker = DeliveryWorker(settings, destinations, group_id=group_id)
    worker.setup(partitions)
    metrics.serve(metrics_port)
    log.info("delivering to %s", ", ".join(d.name for d in destinations))
    asyncio.run(worker.run())
