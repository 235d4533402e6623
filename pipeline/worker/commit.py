"""Commits: a batch's outputs, state and input offsets land together, or not at all.

With ``PULSE_PROCESSING_GUARANTEE=exactly_once`` (the default) every record the
worker produces (outputs, re-keyed events, clock and merge records, changelog
writes) goes into one Kafka transaction with the consumed offsets
(``send_offsets_to_transaction`` with the consumer's group metadata, KIP-447):
after a crash, the next owner of a partition sees either all of a batch's
effects or none, and ``read_committed`` consumers never see an aborted one.
The local RocksDB stores are written only after the transaction committed.

With ``at_least_once`` the outputs are not in a transaction. A commit
delivers, in order and each waited for: the outputs and forwarded records,
then the changelog (person states, links, duplicate window and each
partition's ``m`` record, which says how far its source was read) as one
small transaction of a second, state-only producer, then the input offsets;
RocksDB is written last. A crash anywhere repeats work but loses none: a state
is never durable before the outputs it implies, a restore never sees part of
a commit's states (a person's new state beside the old read position would
apply its records twice, and a link without the extraction it caused would
leave an orphan), and a redelivered record is recognised (below the source's
read position, or by the person's ``_src`` offsets) and changes nothing, so
outputs may repeat with the same deterministic ids.

A transaction that must be aborted (a broker outage longer than the
transaction timeout, a produce error) is aborted, its cached state dropped,
and the caller goes back to the last committed offsets. A fatal error (another
process took this instance's transactional id, a static member fenced after
an outage) raises :class:`FatalKafkaError`: the worker builds new clients.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping
from functools import partial
from typing import Any

from confluent_kafka import KafkaException, Producer

from pipeline.config import Settings
from pipeline.contract.topics import BY_PERSON
from pipeline.errors import PulseError
from pipeline.worker.clients import producer_config, state_producer_config
from pipeline.worker.forwards import Forwards, Sent
from pipeline.worker.kafkalog import RateLimitedLog
from pipeline.worker.partition import Headers
from pipeline.worker.store import PartitionStore

log = logging.getLogger(__name__)


class FatalKafkaError(PulseError):
    """The consumer or producer can no longer be used: the worker builds new ones."""


class Committer:
    """The worker's producer, and its commit protocol (see the module docs)."""

    def __init__(self, settings: Settings, consumer: Any, instance_id: str, changelog: str) -> None:
        self.settings = settings
        self.consumer = consumer
        self.changelog = changelog
        self.eos = settings.processing_guarantee == "exactly_once"
        config = producer_config(settings, instance_id)
        config["logger"] = RateLimitedLog(logging.getLogger("pipeline.worker.kafka"))
        self.producer = Producer(config)
        #: where changelog records go: the same transaction, or (at_least_once) their own
        self.states = self.producer
        if not self.eos:
            config = state_producer_config(settings, instance_id)
            config["logger"] = RateLimitedLog(logging.getLogger("pipeline.worker.kafka"))
            self.states = Producer(config)
        self.in_txn = False
        self.dirty = False
        self.errors: list[str] = []
        self.changelog_offsets: dict[int, int] = {}
        self.commits = 0
        #: what was sent to pulse.events.by-person and where it landed (forwards.py)
        self.forwards = Forwards()

    def start(self) -> None:
        self.states.init_transactions(60)  # fences a previous incarnation, aborts its open one

    def touch(self) -> None:
        """Something was consumed: its offset needs committing."""
        self.dirty = True

    def send(
        self,
        topic: str,
        key: bytes,
        value: bytes | None,
        headers: Headers,
        partition: int | None,
        *,
        clock: tuple[int, int] | None = None,
    ) -> None:
        """Produce to logical ``topic`` (the changelog by its full name) in the open transaction.

        ``clock``: on a record for ``pulse.events.by-person``, its sender's
        source partition and stream time (``forwards.py``); None for a record
        that carries no data.
        """
        on_delivery = self._delivered
        if topic == BY_PERSON and partition is not None:
            entry = self.forwards.sent(partition, *(clock or (-1, 0)))
            if entry is not None:  # one of this worker's person partitions
                on_delivery = partial(self._forwarded, entry)
        changelog = topic == self.changelog
        producer = self.states if changelog else self.producer
        if producer is self.states and not self.in_txn:
            self.states.begin_transaction()
            self.in_txn = True
        full = topic if changelog else self.settings.topic(topic)
        kwargs: dict[str, Any] = {
            "key": key,
            "value": value,
            "headers": headers,
            "on_delivery": on_delivery,
        }
        if partition is not None:
            kwargs["partition"] = partition
        self.dirty = True
        while True:
            try:
                producer.produce(full, **kwargs)
                return
            except BufferError:  # the local queue is full: let it drain
                producer.poll(0.05)

    def _forwarded(self, entry: Sent, err: Any, msg: Any) -> None:
        entry.offset = -1 if err is not None else msg.offset()
        self._delivered(err, msg)

    def _delivered(self, err: Any, msg: Any) -> None:
        if err is not None:
            self.errors.append(f"{msg.topic()}[{msg.partition()}]: {err}")
        elif msg.topic() == self.changelog:
            p = msg.partition()
            self.changelog_offsets[p] = max(msg.offset(), self.changelog_offsets.get(p, -1))

    def commit(self, stores: Mapping[int, PartitionStore]) -> bool:
        """Commit what the batch did; False if it was aborted (the caller rewinds)."""
        self.producer.poll(0)
        if not self.dirty:
            return True
        offsets = [
            tp for tp in self.consumer.position(self.consumer.assignment()) if tp.offset >= 0
        ]
        if self.eos:
            self._send_changelog(stores)
            ok = self._commit_transaction(offsets)
        else:  # outputs delivered, then the states in one transaction, then the offsets
            ok = self._flushed()
            if ok:
                self._send_changelog(stores)
                ok = self._commit_transaction(None) and self._commit_alo(offsets)
        if not ok:
            self.abort(stores.values())
            return False
        for p, store in stores.items():
            store.applied(self.changelog_offsets.get(p))
        self.changelog_offsets.clear()
        self.dirty = False
        self.commits += 1
        return True

    def _commit_transaction(self, offsets: list[Any] | None) -> bool:
        """Commit the open transaction, with the input ``offsets`` (exactly_once) or without."""
        if offsets is None and not self.in_txn:
            return True  # at_least_once and no state changed
        try:
            if not self.in_txn:
                self.states.begin_transaction()
                self.in_txn = True
            if offsets is not None:
                group = self.consumer.consumer_group_metadata()
                self.states.send_offsets_to_transaction(offsets, group, 30)
            for attempt in range(10):
                try:
                    self.states.commit_transaction(30)
                    break
                except KafkaException as exc:
                    if not exc.args[0].retriable() or attempt == 9:
                        raise
                    time.sleep(0.5)
        except KafkaException as exc:
            err = exc.args[0]
            if err.fatal():
                raise FatalKafkaError(f"the worker's producer hit a fatal error: {err}") from exc
            log.warning("commit failed (%s); the transaction is aborted", err)
            return False
        self.in_txn = False
        self.errors.clear()
        return True

    def _send_changelog(self, stores: Mapping[int, PartitionStore]) -> None:
        """The stores' writes since the last commit, to the changelog (in the open transaction)."""
        for p, store in stores.items():
            for key, value in store.take_cache().items():
                self.send(self.changelog, key, value, [], p)

    def _flushed(self) -> bool:
        """Everything produced so far is delivered (at_least_once)."""
        left = self.producer.flush(30)
        if left or self.errors:
            log.warning(
                "%d records not delivered (%s); going back to the last commit",
                left,
                "; ".join(self.errors[:3]),
            )
            self.errors.clear()
            return False
        return True

    def _commit_alo(self, offsets: list[Any]) -> bool:
        if offsets:
            try:
                self.consumer.commit(offsets=offsets, asynchronous=False)
            except KafkaException as exc:
                log.warning("offset commit failed (%s); going back to the last commit", exc)
                return False
        return True

    def abort(self, stores: Iterable[PartitionStore]) -> None:
        """Drop the open transaction and the stores' uncommitted writes."""
        if self.in_txn:
            try:
                self.states.abort_transaction(30)
            except KafkaException as exc:
                if exc.args[0].fatal():
                    raise FatalKafkaError(
                        f"the worker's producer hit a fatal error: {exc}"
                    ) from exc
                log.warning("abort failed: %s", exc)
            self.in_txn = False
        for store in stores:
            store.discard()
        self.changelog_offsets.clear()
        self.errors.clear()
        self.dirty = False

    def close(self) -> None:
        if self.in_txn:
            self.abort([])
        self.producer.flush(10)
        if self.states is not self.producer:
            self.states.flush(10)
