"""Pulse's topics: names, the schema of each, and creating them.

=============================  ======================================  =================
topic                          what                                    key
=============================  ======================================  =================
``pulse.events``               raw events in (Avro / registry / JSON)  anonymous or user id
``pulse.events.by-person``     validated events, re-keyed by person    person id
``pulse.events.dlq``           undecodable input, original bytes       original key
``pulse.events.late``          events beyond the allowed lateness      person id
``pulse.triggers``             trigger rules fired                     person id
``pulse.triggers.suppressed``  triggers held back by caps, + reason    person id
``pulse.segments``             segment entered/exited                  person id
``pulse.activations.<dest>``   what a destination consumes as is       person id
``pulse.sessions``             closed event-time sessions              person id
``pulse.profiles``             traits as of each session close         person id (compacted)
``pulse.persons.evicted``      persons idle past the TTL, state gone   person id
``pulse.identities``           identity links, merges and conflicts    user id
``pulse.training.<task>``      training examples (JSON, not Avro)      person id
``pulse.models``               the newest model per task (JSON)        task (compacted)
=============================  ======================================  =================

Output values are Avro single-object encoded with the schema named below, but
for ``pulse.training.*``: one JSON object (UTF-8), the documented training
example or session record (docs/predictions.md), as ``pulse train`` reads it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from typing import Any

from pipeline.config import Settings
from pipeline.contract.avro import Schema, decode_single_object, encode_single_object, load_schema
from pipeline.errors import BrokerUnavailable, ConfigError, PulseError

EVENTS = "events"
BY_PERSON = "events.by-person"
DLQ = "events.dlq"
LATE = "events.late"
TRIGGERS = "triggers"
SUPPRESSED = "triggers.suppressed"
SEGMENTS = "segments"
ACTIVATIONS = "activations."
SESSIONS = "sessions"
PROFILES = "profiles"
EVICTED = "persons.evicted"
IDENTITIES = "identities"
TRAINING = "training."  # + task: training examples, JSON
MODELS = "models"  # compacted, one partition: key = task, value = the model's JSON

#: Logical topic -> schema file (without .avsc) of its values.
SCHEMA_OF: dict[str, str] = {
    EVENTS: "event",
    BY_PERSON: "event",
    LATE: "late_event",
    TRIGGERS: "trigger",
    SUPPRESSED: "suppressed_trigger",
    SEGMENTS: "segment_change",
    SESSIONS: "session",
    PROFILES: "profile",
    EVICTED: "evicted",
    IDENTITIES: "identity",
}

ALL_TOPICS = (EVENTS, BY_PERSON, DLQ, LATE, TRIGGERS, SUPPRESSED, SEGMENTS, SESSIONS, PROFILES,
              EVICTED, IDENTITIES)  # fmt: skip


def schema_name(logical: str) -> str:
    """Schema file (without .avsc) of a logical topic's values."""
    if logical.startswith(ACTIVATIONS):
        return "activation"
    try:
        return SCHEMA_OF[logical]
    except KeyError:
        raise PulseError(f"no schema is known for topic {logical!r}") from None


def schema_for(logical: str) -> Schema:
    return load_schema(schema_name(logical))


def encode_output(logical: str, record: dict[str, Any]) -> bytes:
    if logical.startswith(TRAINING):
        return json.dumps(record, sort_keys=True, separators=(",", ":")).encode()
    return encode_single_object(schema_for(logical), record)


def decode_output(logical: str, value: bytes) -> Any:
    if logical.startswith(TRAINING):
        return json.loads(value)
    return decode_single_object(value, schema_name(logical))


def prediction_topics(predictions: Any) -> list[str]:
    """The logical ``training.*`` topics a topology's ``predictions:`` section writes to.

    ``predictions``: a :class:`pipeline.core.predictions.PredictionsConfig`, or
    None (no section: none).
    """
    if predictions is None:
        return []
    names = [TRAINING + task.name for task in predictions.tasks]
    if predictions.recs_k > 0:
        names.append(TRAINING + "recs")
    if predictions.send_channels:
        names.append(TRAINING + "send_time")
    return names


def logical_name(settings: Settings, topic: str) -> str:
    """``pulse.triggers`` -> ``triggers`` (raises for a topic outside the prefix)."""
    if not topic.startswith(settings.topic_prefix):
        raise PulseError(f"{topic!r} is not a Pulse topic (prefix {settings.topic_prefix!r})")
    return topic[len(settings.topic_prefix) :]


def ensure_topics(
    settings: Settings,
    logical: Iterable[str] = ALL_TOPICS,
    *,
    partitions: int = 4,
    timeout_s: float = 30.0,
) -> list[str]:
    """Create the missing ones among ``logical`` topics; returns the names created."""
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": settings.bootstrap_servers})
    try:
        existing = set(admin.list_topics(timeout=timeout_s).topics)
    except KafkaException as exc:
        raise BrokerUnavailable(
            f"no Kafka broker answered at {settings.bootstrap_servers} "
            "(start one with `pulse kafka start` or set KAFKA_BOOTSTRAP_SERVERS)"
        ) from exc
    wanted = [settings.topic(name) for name in logical]
    replicas = settings.replication_factor
    missing = [NewTopic(t, num_partitions=partitions, replication_factor=replicas)
               for t in wanted if t not in existing]  # fmt: skip
    if not missing:
        return []
    created = []
    for topic, future in admin.create_topics(missing, operation_timeout=timeout_s).items():
        try:
            future.result()
            created.append(topic)
        except KafkaException as exc:
            if "TOPIC_ALREADY_EXISTS" not in str(exc):
                raise PulseError(f"could not create topic {topic}: {exc}") from exc
    wait_for_topics(admin, [t.topic for t in missing], timeout_s=timeout_s)
    return created


def ensure_compacted_topic(
    settings: Settings, name: str, partitions: int, config: dict[str, str] | None = None
) -> None:
    """Create the compacted topic ``name`` unless it exists, and wait for its leaders."""
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": settings.bootstrap_servers})
    if name in admin.list_topics(timeout=30).topics:
        return
    topic = NewTopic(
        name,
        num_partitions=partitions,
        replication_factor=settings.replication_factor,
        config={"cleanup.policy": "compact", **(config or {})},
    )
    for _, future in admin.create_topics([topic], operation_timeout=30).items():
        try:
            future.result()
        except Exception as exc:
            if "TOPIC_ALREADY_EXISTS" not in str(exc):
                raise PulseError(f"could not create topic {name}: {exc}") from exc
    wait_for_topics(admin, [name])


def wait_for_topics(admin: Any, topics: Iterable[str], *, timeout_s: float = 30.0) -> None:
    """Until the broker's metadata shows every partition of ``topics`` with a leader.

    A topic is created before every broker knows it: a producer or consumer
    that asks at once can get "unknown topic or partition" (seen on a freshly
    started, loaded broker).
    """
    names = list(topics)
    deadline = time.monotonic() + timeout_s
    while True:
        metadata = admin.list_topics(timeout=max(1.0, deadline - time.monotonic())).topics
        pending = [
            name
            for name in names
            if name not in metadata
            or metadata[name].error is not None
            or not metadata[name].partitions
            or any(p.leader < 0 for p in metadata[name].partitions.values())
        ]
        if not pending:
            return
        if time.monotonic() > deadline:
            raise BrokerUnavailable(
                f"topics {', '.join(pending)} have no leader after {timeout_s:.0f} s"
            )
        time.sleep(0.1)


def check_partitions(
    settings: Settings, topics: list[str], partitions: int, *, timeout_s: float = 30.0
) -> None:
    """Fail unless each existing topic of ``topics`` has exactly ``partitions`` partitions.

    The worker's state, its watermarks (one per source partition) and the
    co-partitioning of ``events``, ``events.by-person`` and the tables'
    changelogs all assume that one count.
    """
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": settings.bootstrap_servers})
    metadata = admin.list_topics(timeout=timeout_s).topics
    for name in topics:
        topic = metadata.get(name)
        if topic is not None and len(topic.partitions) != partitions:
            raise ConfigError(
                f"topic {name} has {len(topic.partitions)} partitions but the worker was "
                f"started with --partitions {partitions}; Pulse's input topics and changelogs "
                "must all have the same count (run with the topics' count, or use a new "
                "PULSE_TOPIC_PREFIX)"
            )
