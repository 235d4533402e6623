"""The consumer loop: assignment, batches, clocks and commits.

One confluent-kafka consumer in the group reads ``pulse.events`` and
``pulse.events.by-person``. The ``range`` assignor gives one worker the same
partition number of both topics, so partition ``p``'s source events, persons
and store live together in one :class:`~pipeline.worker.partition.PartitionTask`.

Each loop turn takes a batch (``PULSE_BATCH_MAX`` / ``PULSE_BATCH_WAIT_MS``),
hands each record to its task, reports source clocks, moves every task's
watermark, and every ``PULSE_COMMIT_INTERVAL_MS`` commits (``commit.py``).
Rebalance callbacks run inside ``consume()``, on this thread: a revoke commits
what was processed, then closes the tasks; an assignment restores each store
from its changelog before its partition is processed; a lost assignment
discards uncommitted work.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from confluent_kafka import Consumer, KafkaError, TopicPartition

from pipeline.config import Settings
from pipeline.contract.topics import BY_PERSON, EVENTS
from pipeline.worker import metrics
from pipeline.worker.clients import changelog_topic, consumer_config
from pipeline.worker.clocks import CLOCK, CONTROL_HEADER, QUIET, clock_record
from pipeline.worker.commit import Committer, FatalKafkaError
from pipeline.worker.forwards import tell_local
from pipeline.worker.partition import PartitionTask, ProcessingFailed, Record, Topology
from pipeline.worker.restore import refill_duplicate_windows, restore
from pipeline.worker.store import PartitionStore

if TYPE_CHECKING:
    from pipeline.profiles.lookups import Lookups

log = logging.getLogger(__name__)
#: How often the worker logs its progress (at a commit), seconds.
PROGRESS_S = 30.0


class Runtime:
    """A worker's consumer loop over its assigned partitions."""

    def __init__(
        self,
        settings: Settings,
        topology: Topology,
        partitions: int,
        instance_id: str,
        state_dir: Path,
        *,
        stop: threading.Event | None = None,
        lookups: Lookups | None = None,
    ) -> None:
        self.settings = settings
        self.topology = topology
        self.partitions = partitions
        self.instance_id = instance_id
        self.state_dir = state_dir
        self.events_topic = settings.topic(EVENTS)
        self.by_person_topic = settings.topic(BY_PERSON)
        self.changelog = changelog_topic(settings)
        self.stores: dict[int, PartitionStore] = {}
        self.tasks: dict[int, PartitionTask] = {}
        self.consumer = Consumer(consumer_config(settings, instance_id))
        self.committer = Committer(settings, self.consumer, instance_id, self.changelog)
        self.stop = threading.Event() if stop is None else stop
        self.ready = threading.Event()
        #: the profile API's lookups, which read committed state (pipeline/profiles/lookups.py)
        self.lookups = lookups
        self.told: dict[tuple[int, int], tuple[int, int]] = {}  # (dest, source) -> report
        self.starts: dict[tuple[str, int], int] = {}  # where each input began at assignment
        #: per person partition: the end of its input to read before local sources tell
        #: it their time directly (``forwards.py``); -1 once read, None while unknown
        self.barriers: dict[int, int | None] = {}
        self.last_wake = 0.0
        self.next_clock = 0.0
        self.timeout_s = settings.idle_timeout_ms / 1000
        self.processed = 0
        self.in_batch: dict[str, int] = {}  # records per input topic in this batch
        self.first_commit_after: float | None = None
        self.next_progress = 0.0

    # -- assignment -----------------------------------------------------------------

    def _on_assign(self, consumer: Any, tps: list[TopicPartition]) -> None:
        numbers = sorted({tp.partition for tp in tps})
        started = time.monotonic()
        if self.lookups is not None:
            self.lookups.unready()  # restoring: the API answers 503
        for p in list(self.stores):
            if p not in numbers:
                self.stores.pop(p).close()
        for p in numbers:
            if p not in self.stores:
                self.stores[p] = PartitionStore(self.state_dir / f"p{p}", p)
        read = restore(self.settings.bootstrap_servers, self.changelog, self.stores)
        inputs = [TopicPartition(t, p) for t in (self.events_topic, self.by_person_topic)
                  for p in numbers]  # fmt: skip
        self.starts = {}
        for tp in consumer.committed(inputs, timeout=30):
            if tp.offset < 0:  # never committed: the backlog begins at the earliest offset
                tp.offset = consumer.get_watermark_offsets(tp, timeout=30, cached=False)[0]
            self.starts[(tp.topic, tp.partition)] = tp.offset
        self._build_tasks()
        self._refill_duplicate_windows()
        self.first_commit_after = time.monotonic()
        log.info(
            "assigned partitions %s; restored %d changelog records in %.2f s; %d timers pending",
            numbers,
            sum(read.values()),
            time.monotonic() - started,
            sum(t.timers_restored for t in self.tasks.values()),
        )
        if self.lookups is not None:
            self.lookups.assigned(numbers)
        self.ready.set()

    def _build_tasks(self) -> None:
        s = self.settings
        self.tasks = {
            p: PartitionTask(
                p,
                self.partitions,
                store,
                self.topology,
                self.committer,
                allowed_lateness_ms=s.allowed_lateness_ms,
                idle_timeout_s=self.timeout_s,
                prefix=s.topic_prefix,
            )
            for p, store in sorted(self.stores.items())
        }
        self.told.clear()
        self.last_wake = time.monotonic()
        self.committer.forwards.keep(set(self.tasks))
        self.barriers = {p: self._input_end(p) for p in self.tasks}
        for task in self.tasks.values():
            task.direct = self._direct
        if self.lookups is not None:
            self.lookups.attach(self.stores, self.tasks)

    def _refill_duplicate_windows(self) -> None:
        refill_duplicate_windows(
            self.settings.bootstrap_servers, self.events_topic, self.tasks, self.starts
        )

    def _direct(self, source: int, target: int) -> PartitionTask | None:
        """``target``'s task, if ``source`` may hand it records over (``persons.py``)."""
        if self.barriers.get(target) != -1 or self.committer.forwards.pending(target, source):
            return None
        return self.tasks.get(target)

    def _on_revoke(self, consumer: Any, tps: list[TopicPartition]) -> None:
        if self.lookups is not None:
            self.lookups.revoked()
        if self.tasks:
            self._commit()
        self.tasks, self.barriers = {}, {}
        log.info("partitions revoked: %s", sorted({tp.partition for tp in tps}))

    def _on_lost(self, consumer: Any, tps: list[TopicPartition]) -> None:
        log.warning(
            "assignment lost (%s): uncommitted work is discarded",
            sorted({tp.partition for tp in tps}),
        )
        if self.lookups is not None:
            self.lookups.revoked()
        self.committer.abort(self.stores.values())
        self.tasks, self.barriers = {}, {}

    # -- the loop -------------------------------------------------------------------------

    def run(self) -> None:
        self.committer.start()
        self.consumer.subscribe(
            [self.events_topic, self.by_person_topic],
            on_assign=self._on_assign,
            on_revoke=self._on_revoke,
            on_lost=self._on_lost,
        )
        s = self.settings
        next_commit = time.monotonic() + s.commit_interval_ms / 1000
        try:
            while not self.stop.is_set():
                msgs = self.consumer.consume(s.batch_max, timeout=s.batch_wait_ms / 1000)
                started = time.perf_counter()
                try:
                    for msg in msgs:
                        self._dispatch(msg)
                except ProcessingFailed as exc:
                    self._reprocess_carefully(exc)
                    continue
                now = time.monotonic()
                if now >= self.next_clock:
                    self._clocks(now)
                self._local_clocks()
                for task in self.tasks.values():
                    task.advance()
                if msgs:
                    self.committer.touch()
                    for topic, n in self.in_batch.items():
                        metrics.events_in(topic).inc(n)
                    self.in_batch.clear()
                    metrics.PROCESS_SECONDS.observe(time.perf_counter() - started)
                if now >= next_commit:
                    self._commit()
                    next_commit = time.monotonic() + s.commit_interval_ms / 1000
            self._commit()
        finally:
            self._close()

    def _dispatch(self, msg: Any) -> None:
        err = msg.error()
        if err is not None:
            if err.fatal() or err.code() == KafkaError._FATAL:
                raise FatalKafkaError(f"the worker's consumer hit a fatal error: {err}")
            if err.code() != KafkaError._PARTITION_EOF:
                log.warning("consumer: %s", err)
            return
        task = self.tasks.get(msg.partition())
        if task is None:
            return  # not ours any more (a rebalance is on its way)
        self.processed += 1
        topic = msg.topic()
        self.in_batch[topic] = self.in_batch.get(topic, 0) + 1
        if topic == self.events_topic:
            task.on_event_record(Record.of(msg))
            if task.woke:
                task.woke = False
                self.last_wake = time.monotonic()
        else:
            task.on_person_record(Record.of(msg))

    def _commit(self) -> None:
        for task in self.tasks.values():
            task.save_meta()
        started = time.monotonic()
        had_work = self.committer.dirty
        committed = self.committer.commit(self.stores)
        if not committed:
            self._rewind()
            return
        now = time.monotonic()
        metrics.COMMIT_SECONDS.observe(now - started)
        if had_work and self.first_commit_after is not None:
            log.info("first commit %.2f s after the assignment", now - self.first_commit_after)
            self.first_commit_after = None
        for task in self.tasks.values():
            task.persons.careful = False
        if now >= self.next_progress:
            self.next_progress = now + PROGRESS_S
            log.info(
                "processed %d records in %d commits so far; watermarks %s",
                self.processed,
                self.committer.commits,
                {p: t.processor.clock.stream_time_ms for p, t in self.tasks.items()},
            )

    def _reprocess_carefully(self, exc: ProcessingFailed) -> None:
        """A record failed half-way: back to the last commit, then record by record.

        Its partial change to a person must not survive, so the transaction is
        aborted and the records since the last commit are processed again with
        every save encoded at once; the failing record then goes to the DLQ
        (reason ``processing_error``) and the state is exactly as before it.
        """
        log.warning("processing %s failed (%s); going back to the last commit to process "
                    "again record by record", exc, exc.__cause__)  # fmt: skip
        self.committer.abort(self.stores.values())
        self._rewind()
        for task in self.tasks.values():
            task.persons.careful = True

    def _rewind(self) -> None:
        """After an aborted transaction: back to the last commit, state and offsets."""
        log.warning("transaction aborted: going back to the last committed offsets")
        self._build_tasks()
        assignment = self.consumer.assignment()
        for tp in self.consumer.committed(assignment, timeout=30):
            if tp.offset >= 0:
                self.starts[(tp.topic, tp.partition)] = tp.offset
            offset = self.starts.get((tp.topic, tp.partition), -2)  # else the earliest
            self.consumer.seek(TopicPartition(tp.topic, tp.partition, offset))
        self._refill_duplicate_windows()

    # -- source clocks ----------------------------------------------------------------------

    def _clocks(self, now: float) -> None:
        """Idleness of this worker's sources, and their clocks told where data did not."""
        self.next_clock = now + self.settings.clock_interval_ms / 1000
        if not self.tasks:
            return
        for p, barrier in self.barriers.items():
            if barrier is None:  # the broker did not say at the assignment: ask again
                self.barriers[p] = self._input_end(p)
        reports: dict[int, tuple[int, int]] = {}
        for p, task in self.tasks.items():
            task.caught_up = self._caught_up(self.by_person_topic, p)
            caught_up = self._caught_up(self.events_topic, p)
            advance = self.settings.idle_advance_ms
            level = task.activity.check(
                now, caught_up, self.last_wake, self.timeout_s, advance / 1000
            )
            stream_time = task.source.stream_time_ms
            quiet_ms = int((now - task.activity.last_record) * 1000) - advance
            if level == QUIET and stream_time > -(2**62) and quiet_ms > 0:
                # time goes on in a quiet system, so its timers still fire (live only);
                # from the moment it went quiet, in whole seconds (a quiet worker tells
                # other partitions at most once a second)
                stream_time += quiet_ms - quiet_ms % 1000
            reports[p] = (stream_time, level)
            task.inputs.observe(p, stream_time, level, now)
            watermark = task.processor.watermark_ms
            if watermark > -(2**62):
                lag = max(0.0, time.time() - watermark / 1000)
                metrics.WATERMARK_LAG.labels(str(p)).set(lag)
        metrics.TIMERS_PENDING.set(sum(t.processor.pending_timers for t in self.tasks.values()))
        pending = self.committer.forwards.pending
        for dest in range(self.partitions):
            changed = {}
            ours = self.tasks.get(dest) if self.barriers.get(dest) == -1 else None
            for source, report in reports.items():
                if source == dest or self.told.get((dest, source)) == report:
                    continue
                if ours is not None and not pending(dest, source):
                    ours.inputs.observe(source, *report, now)  # no record needed (forwards.py)
                    continue
                by_data = self.tasks[source].told.get(dest)  # what its last forward said
                if report[1] or by_data is None or by_data < report[0]:
                    changed[source] = report
            if changed:
                self.committer.send(
                    "events.by-person", b"", clock_record(changed), [(CONTROL_HEADER, CLOCK)], dest
                )
                self.told.update({(dest, s): r for s, r in changed.items()})

    def _local_clocks(self) -> None:
        """Tell this worker's person partitions its sources' times directly (``forwards.py``).

        Only those whose ``barrier`` was read: until then (records of a
        previous owner, or read again after an abort) the broker route does.
        """
        ready = [p for p, barrier in self.barriers.items() if barrier is not None]
        if len(self.tasks) < 2 or not ready:
            return
        positions = {}
        for tp in self.consumer.position([TopicPartition(self.by_person_topic, p) for p in ready]):
            p = tp.partition
            position = tp.offset if tp.offset >= 0 else self.starts.get((tp.topic, p), -1)
            if position >= (self.barriers[p] or 0):
                self.barriers[p] = -1
                positions[p] = position
        tell_local(self.tasks, positions, self.committer.forwards)

    def _input_end(self, p: int) -> int | None:
        """The end of ``pulse.events.by-person[p]`` at the broker now (None: not known)."""
        try:
            tp = TopicPartition(self.by_person_topic, p)
            _low, high = self.consumer.get_watermark_offsets(tp, timeout=2, cached=False)
        except Exception as exc:
            log.debug("the end of %s[%d] is not known yet: %s", self.by_person_topic, p, exc)
            return None
        return int(high) if high is not None and high >= 0 else None

    def _caught_up(self, topic: str, p: int) -> bool:
        """Everything the broker holds for ``topic[p]`` (as last fetched) is processed."""
        tp = TopicPartition(topic, p)
        try:
            _low, high = self.consumer.get_watermark_offsets(tp, cached=True)
            position = self.consumer.position([tp])[0].offset
        except Exception:  # not fetched yet
            return False
        if high is None or high < 0:
            return False
        if position < 0:  # nothing consumed since the assignment: where it began
            position = self.starts.get((topic, p), -1)
        return bool(position >= high)

    def _close(self) -> None:
        if self.lookups is not None:
            self.lookups.revoked()  # the API reads no store from here on
        for close in (self.committer.close, self.consumer.close):
            try:
                close()
            except Exception as exc:  # a fatal client still has to let go of the stores
                log.warning("closing the Kafka clients: %s", exc)
        for store in self.stores.values():
            store.close()
        self.stores = {}
