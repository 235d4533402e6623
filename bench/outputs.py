"""Reading what the workers wrote (``read_committed``), and output records by their ids."""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition
from confluent_kafka.admin import AdminClient

from pipeline.contract.topics import ACTIVATIONS, BY_PERSON, DLQ, EVENTS, TRAINING, decode_output

#: Logical output topic -> the field holding its record's deterministic id.
ID_FIELDS = {
    "triggers": "trigger_id",
    "triggers.suppressed": "trigger_id",
    "sessions": "session_id",
    "segments": "change_id",
    "profiles": "profile_id",
    "identities": "identity_id",
    "events.late": "message_id",
    "persons.evicted": "eviction_id",
}
NOT_OUTPUTS = {EVENTS, BY_PERSON, DLQ}


def id_field(logical: str) -> str:
    return "activation_id" if logical.startswith(ACTIVATIONS) else ID_FIELDS[logical]


def compared(logical: str) -> bool:
    """Whether live and replay outputs of ``logical`` are compared."""
    return logical in ID_FIELDS or logical.startswith((ACTIVATIONS, TRAINING))


def record_id(logical: str, record: dict[str, Any]) -> str:
    """A record's id for the comparison. Training records (JSON) have no id field: their
    content is the id, so a record that differs counts as one missing and one extra."""
    if logical.startswith(TRAINING):
        canonical = json.dumps(record, sort_keys=True, separators=(",", ":"))
        return hashlib.blake2b(canonical.encode(), digest_size=12).hexdigest()
    return str(record[id_field(logical)])


@dataclass(frozen=True, slots=True)
class Msg:
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...]
    timestamp_ms: int


def read_topic(bootstrap: str, topic: str, *, timeout_s: float = 300) -> list[Msg]:
    """Every committed record of ``topic`` (``isolation.level=read_committed``), to its end."""
    return read_topics(bootstrap, [topic], timeout_s=timeout_s)[topic]


def read_topics(
    bootstrap: str, topics: list[str], *, timeout_s: float = 300
) -> dict[str, list[Msg]]:
    """Every committed record of each topic, read by one consumer to the end of each partition."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    metadata = admin.list_topics(timeout=30).topics
    tps = [TopicPartition(t, p, OFFSET_BEGINNING) for t in topics for p in metadata[t].partitions]
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"bench-read-{uuid.uuid4().hex[:8]}",
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
            "enable.partition.eof": True,
            "fetch.max.bytes": 52_428_800,
        }
    )
    out: dict[str, list[Msg]] = {t: [] for t in topics}
    pending = {(tp.topic, tp.partition) for tp in tps}
    try:
        consumer.assign(tps)
        deadline = time.monotonic() + timeout_s
        while pending:
            if time.monotonic() > deadline:
                raise TimeoutError(f"reading {sorted(pending)[:4]}...: not at their end")
            for msg in consumer.consume(5000, timeout=0.5):
                err = msg.error()
                if err is not None:
                    if err.code() == KafkaError._PARTITION_EOF:
                        pending.discard((msg.topic(), msg.partition()))
                    continue
                headers = tuple((k, v or b"") for k, v in (msg.headers() or []))
                out[msg.topic()].append(
                    Msg(
                        msg.partition(),
                        msg.offset(),
                        msg.key(),
                        msg.value(),
                        headers,
                        msg.timestamp()[1],
                    )
                )
    finally:
        consumer.close()
    return out


def output_topics(bootstrap: str, prefix: str) -> list[str]:
    """The logical output topics that exist under ``prefix`` (activations included)."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    names = admin.list_topics(timeout=30).topics
    logical = [t[len(prefix) :] for t in names if t.startswith(prefix)]
    return sorted(t for t in logical if t not in NOT_OUTPUTS and not t.startswith("state"))


#: Per logical topic: (id, value bytes) of every record, in read order.
Outputs = dict[str, list[tuple[str, bytes]]]


def live_outputs(bootstrap: str, prefix: str) -> Outputs:
    logical = [t for t in output_topics(bootstrap, prefix) if compared(t)]
    records = read_topics(bootstrap, [prefix + t for t in logical])
    out: Outputs = {}
    for name in logical:
        out[name] = [
            (record_id(name, decode_output(name, m.value)), m.value or b"")
            for m in records[prefix + name]
        ]
    return out


def control_counts(records: list[Msg], until_ms: int | None = None) -> dict[str, Any]:
    """Records of ``events.by-person`` by kind: data, clock, other control (merges).

    With ``until_ms``, only records written (broker timestamp) up to then.
    """
    from pipeline.worker.clocks import CONTROL_HEADER

    kinds: Counter[str] = Counter()
    for m in records:
        if until_ms is not None and m.timestamp_ms > until_ms:
            continue
        control = dict(m.headers).get(CONTROL_HEADER)
        kinds["data" if control is None else control.decode()] += 1
    data = kinds.pop("data", 0)
    clock = kinds.pop("clock", 0)
    return {"data": data, "clock": clock, "other_control": dict(kinds)}
