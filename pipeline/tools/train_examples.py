"""Training examples: the record, reading it from files and from ``pulse.training.<task>``.

One example is one person scored at one time, with what happened next::

    {"task": "purchase_7d", "person": "u-42",
     "scored_at_ms": 1767268800000,          # when the features were snapshot (event time)
     "horizon_ms": 604800000,                # the label's window: (scored_at, scored_at + horizon]
     "outcome_at_ms": 1767441600000,         # the event that decided the label, or null
                                             # when the horizon passed (the timer fired)
     "label": 1,                             # 0 or 1: did the task's outcome happen?
     "features": {"purchases": 3, "days_since_last_purchase": 0.0, ...},
     "features_version": "stream/1"}         # which feature definitions made them

Files hold one example a line (JSON lines; ``pulse replay --out DIR`` writes
``DIR/pulse.training.<task>.jsonl``). On Kafka the value is the same JSON
object (UTF-8, no Avro) and the key is the person. Feature names are whatever
the stream provides: the trainer learns the names it finds, a model records
its list, and a feature an example lacks (or has as null) is missing (NaN).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.errors import ConfigError

TRAINING = "training."  # + task: the topic of a task's examples


@dataclass(frozen=True, slots=True)
class Task:
    """A prediction task: which outcome within which horizon."""

    name: str
    outcome: str  # "purchase": an order_completed happens; "churn": no event happens
    horizon_ms: int


TASKS: dict[str, Task] = {
    "purchase_7d": Task("purchase_7d", "purchase", 7 * 86_400_000),
    "churn_30d": Task("churn_30d", "churn", 30 * 86_400_000),
}


@dataclass(frozen=True, slots=True)
class Example:
    """One training example (see the module doc for the JSON record)."""

    task: str
    person: str
    scored_at_ms: int
    horizon_ms: int
    outcome_at_ms: int | None
    label: int
    features: Mapping[str, float]
    features_version: str

    def to_json(self) -> dict[str, Any]:
        return {
            "task": self.task,
            "person": self.person,
            "scored_at_ms": self.scored_at_ms,
            "horizon_ms": self.horizon_ms,
            "outcome_at_ms": self.outcome_at_ms,
            "label": self.label,
            "features": dict(self.features),
            "features_version": self.features_version,
        }


def _int(obj: Mapping[str, Any], key: str, *, null: bool = False) -> Any:
    value = obj.get(key)
    if value is None and null:
        return None
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValueError(f"{key} must be an integer{' or null' if null else ''}")
    return value


def parse_example(obj: Any) -> Example:
    """Validate one decoded JSON record into an :class:`Example` (``ValueError`` says why)."""
    if not isinstance(obj, Mapping):
        raise ValueError("an example is a JSON object")
    task, person = obj.get("task"), obj.get("person")
    if not isinstance(task, str) or not task or not isinstance(person, str) or not person:
        raise ValueError("task and person must be non-empty strings")
    label = obj.get("label")
    if label not in (0, 1) or isinstance(label, bool):
        raise ValueError("label must be 0 or 1")
    raw = obj.get("features")
    if not isinstance(raw, Mapping):
        raise ValueError("features must be an object of name -> number")
    features: dict[str, float] = {}
    for name, value in raw.items():
        if value is None:
            continue  # missing
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"feature {name!r} is not a number")
        if math.isinf(value):
            raise ValueError(f"feature {name!r} is not finite")
        if not math.isnan(value):  # NaN: missing, like null
            features[str(name)] = float(value)
    version = obj.get("features_version")
    if not isinstance(version, str):
        raise ValueError("features_version must be a string")
    return Example(
        task=task,
        person=person,
        scored_at_ms=_int(obj, "scored_at_ms"),
        horizon_ms=_int(obj, "horizon_ms"),
        outcome_at_ms=_int(obj, "outcome_at_ms", null=True),
        label=int(label),
        features=features,
        features_version=version,
    )


def parse_lines(lines: Iterable[bytes | str], source: str, task: str) -> Iterator[Example]:
    """Examples of ``task`` from JSON lines; a bad line stops with its place and reason."""
    for no, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            example = parse_example(json.loads(line))
        except ValueError as exc:  # json.JSONDecodeError is a ValueError
            raise ConfigError(f"{source}:{no}: not a training example: {exc}") from exc
        if example.task == task:
            yield example


def examples_file(path: Path, task: str, prefix: str = "pulse.") -> Path:
    """A file, or in a directory the file ``pulse replay --out DIR`` writes for ``task``."""
    if path.is_dir():
        path = path / f"{prefix}{TRAINING}{task}.jsonl"
    if not path.is_file():
        raise ConfigError(f"no training examples at {path}")
    return path


def read_files(path: Path, task: str, prefix: str = "pulse.") -> list[Example]:
    """The examples of ``task`` in a JSON-lines file or a ``pulse replay --out`` directory."""
    found = examples_file(path, task, prefix)
    with found.open("rb") as handle:
        return list(parse_lines(handle, str(found), task))


def write_jsonl(examples: Iterable[Example], path: Path) -> int:
    """Write examples as JSON lines (sorted keys: the same examples give the same bytes)."""
    n = 0
    with path.open("w", encoding="utf-8") as handle:
        for example in examples:
            handle.write(json.dumps(example.to_json(), sort_keys=True, separators=(",", ":")))
            handle.write("\n")
            n += 1
    return n


def values_from_topic(consumer: Any, topic: str, *, timeout_s: float = 10.0) -> Iterator[bytes]:
    """Every record value of ``topic`` from the beginning to its end as of now.

    ``consumer`` is a confluent-kafka ``Consumer`` made with
    ``enable.partition.eof`` (its end-of-partition events say when to stop:
    a transactional topic's last offset is a commit marker no poll returns).
    """
    from confluent_kafka import OFFSET_BEGINNING, KafkaError, TopicPartition

    meta = consumer.list_topics(topic, timeout=timeout_s).topics.get(topic)
    if meta is None or meta.error is not None:
        raise ConfigError(f"topic {topic} does not exist: no training examples")
    pending = set()
    for p in sorted(meta.partitions):
        low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=timeout_s)
        if high > low:
            pending.add(p)
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in sorted(pending)])
    while pending:
        msg = consumer.poll(timeout_s)
        if msg is None:
            raise ConfigError(f"{topic}: no record for {timeout_s:.0f} s before its end")
        error = msg.error()
        if error is not None:
            if error.code() == KafkaError._PARTITION_EOF:
                pending.discard(msg.partition())
                continue
            raise ConfigError(f"reading {topic}: {error}")
        value = msg.value()
        if value is not None:
            yield value
