"""Typed consumers of Pulse's outputs: triggers, segment changes and activations.

A small confluent-kafka helper for your own apps. Records come decoded (Avro
single-object encoding, resolved against ``schemas/``) into frozen dataclasses,
and offsets are committed **at least once**: an offset is stored only after
your handler returned for its record, so a crash or an exception means the
record comes again (deduplicate on ``trigger_id`` / ``change_id`` /
``activation_id``, which are deterministic)::

    from pipeline.config import Settings
    from pipeline.consume import Trigger, consume

    def handle(msg):                        # msg.value is a Trigger
        if msg.value.rule == "checkout_abandoned":
            send_recovery_email(msg.value.person_id, msg.value.context)

    consume(Settings.from_env(), ["triggers"], "crm-sync", handle)

Topics are logical names: ``triggers``, ``segments``, ``activations.<dest>``.
The dataclasses mirror ``schemas/trigger.avsc``, ``segment_change.avsc`` and
``activation.avsc`` field for field (a test checks them against the schemas).
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Generic, TypeVar

from pipeline.config import Settings
from pipeline.contract.topics import ACTIVATIONS, SEGMENTS, TRIGGERS, decode_output
from pipeline.errors import BrokerUnavailable, ConfigError, DecodeError, PulseError

log = logging.getLogger("pulse.consume")
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Trigger:
    """A fired trigger rule (``pulse.triggers``, ``schemas/trigger.avsc``)."""

    SCHEMA: ClassVar[str] = "trigger"
    trigger_id: str
    rule: str
    person_id: str
    event_ids: list[str]
    event_time_ms: int
    context: dict[str, Any] = dataclasses.field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class SegmentChange:
    """A person entered or exited a segment (``pulse.segments``)."""

    SCHEMA: ClassVar[str] = "segment_change"
    change_id: str
    segment: str
    person_id: str
    change: str
    event_time_ms: int
    cause: str | None = None


@dataclass(frozen=True, slots=True)
class Activation:
    """What a destination takes as is (``pulse.activations.<destination>``)."""

    SCHEMA: ClassVar[str] = "activation"
    activation_id: str
    destination: str
    kind: str
    name: str
    person_id: str
    channel: str | None
    event_time_ms: int
    source_id: str
    payload: dict[str, Any] = dataclasses.field(default_factory=dict)
    #: deliver no earlier than this (wall-clock ms), from a trigger's ``deliver_at``
    send_at_ms: int | None = None


RECORD_TYPES: tuple[type[Any], ...] = (Trigger, SegmentChange, Activation)


def record_type(logical: str) -> type[Any]:
    """The dataclass of a logical topic's values."""
    if logical == TRIGGERS:
        return Trigger
    if logical == SEGMENTS:
        return SegmentChange
    if logical.startswith(ACTIVATIONS):
        return Activation
    raise ConfigError(f"no typed record for topic {logical!r} (triggers, segments, activations.*)")


def typed(cls: type[T], record: dict[str, Any]) -> T:
    """A decoded record dict as ``cls`` (fields the dataclass does not know are left out)."""
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    return cls(**{k: v for k, v in record.items() if k in names})


@dataclass(frozen=True, slots=True)
class Message(Generic[T]):
    """One consumed record: where it was, its key (the person id) and its typed value."""

    topic: str
    partition: int
    offset: int
    key: str | None
    value: T
    headers: dict[str, bytes]

    @property
    def emitted_at_ms(self) -> int | None:
        """When Pulse emitted it (the ``pulse-emitted-at-ms`` header), if known."""
        raw = self.headers.get("pulse-emitted-at-ms")
        return int(raw) if raw is not None and raw.isdigit() else None


class TypedConsumer:
    """A consumer group member over Pulse output topics, yielding :class:`Message` objects.

    Offsets are stored with :meth:`done` (``run`` calls it after the handler)
    and committed in the background and on :meth:`close`.
    """

    def __init__(
        self,
        settings: Settings,
        topics: Sequence[str],
        group_id: str,
        *,
        from_beginning: bool = True,
        config: dict[str, Any] | None = None,
    ) -> None:
        from confluent_kafka import Consumer

        self.settings = settings
        self.logical = {settings.topic(t): t for t in topics}
        for name in topics:
            record_type(name)
        self.consumer = Consumer({
            "bootstrap.servers": settings.bootstrap_servers, "group.id": group_id,
            "enable.auto.commit": True, "enable.auto.offset.store": False,
            "auto.offset.reset": "earliest" if from_beginning else "latest",
            "isolation.level": "read_committed", **(config or {}),
        })  # fmt: skip
        self.consumer.subscribe(list(self.logical))

    def decode(self, msg: Any) -> Message[Any]:
        logical = self.logical[msg.topic()]
        try:
            value = typed(record_type(logical), decode_output(logical, msg.value() or b""))
        except (PulseError, TypeError, ValueError) as exc:
            raise DecodeError(
                "undecodable", f"{msg.topic()}[{msg.partition()}]@{msg.offset()}: {exc}"
            ) from exc
        key = msg.key()
        return Message(msg.topic(), msg.partition(), msg.offset(),
                       None if key is None else key.decode("utf-8", "replace"), value,
                       {k: v or b"" for k, v in (msg.headers() or [])})  # fmt: skip

    def poll(self, timeout_s: float = 1.0) -> Message[Any] | None:
        """The next record, or None after ``timeout_s`` without one."""
        from confluent_kafka import KafkaError

        msg = self.consumer.poll(timeout_s)
        if msg is None:
            return None
        if msg.error() is not None:
            if msg.error().code() == KafkaError._PARTITION_EOF:
                return None
            raise BrokerUnavailable(f"consuming {msg.topic()}: {msg.error()}")
        return self.decode(msg)

    def done(self, message: Message[Any]) -> None:
        """``message`` is handled: its offset may be committed."""
        from confluent_kafka import TopicPartition

        tp = TopicPartition(message.topic, message.partition, message.offset + 1)
        self.consumer.store_offsets(offsets=[tp])

    def __iter__(self) -> Iterator[Message[Any]]:
        """Every record as it comes (call :meth:`done` on each once handled)."""
        while True:
            message = self.poll(1.0)
            if message is not None:
                yield message

    def run(
        self,
        handler: Callable[[Message[Any]], object],
        *,
        max_records: int | None = None,
        idle_timeout_s: float | None = None,
    ) -> int:
        """Call ``handler`` on each record, storing its offset after it returns.

        Stops after ``max_records``, or ``idle_timeout_s`` without a record;
        an exception from the handler propagates (that record is not marked
        done, so it comes again). Returns how many records were handled.
        """
        handled = 0
        last = time.monotonic()
        while max_records is None or handled < max_records:
            message = self.poll(0.5)
            if message is None:
                if idle_timeout_s is not None and time.monotonic() - last > idle_timeout_s:
                    break
                continue
            handler(message)
            self.done(message)
            handled += 1
            last = time.monotonic()
        return handled

    def close(self) -> None:
        """Commit what is done and leave the group."""
        from confluent_kafka import KafkaException

        try:
            self.consumer.commit(asynchronous=False)
        except KafkaException as exc:  # nothing stored yet is not an error worth raising
            log.debug("final commit: %s", exc)
        self.consumer.close()

    def __enter__(self) -> TypedConsumer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def consume(
    settings: Settings,
    topics: Sequence[str],
    group_id: str,
    handler: Callable[[Message[Any]], object],
    *,
    max_records: int | None = None,
    idle_timeout_s: float | None = None,
) -> int:
    """Run ``handler`` over ``topics`` at least once per record (see :meth:`TypedConsumer.run`)."""
    with TypedConsumer(settings, topics, group_id) as consumer:
        return consumer.run(handler, max_records=max_records, idle_timeout_s=idle_timeout_s)
