"""pipeline.consume on the real broker: typed records, at-least-once commits."""

from __future__ import annotations

import dataclasses
import json

import pytest
from confluent_kafka import Producer

from pipeline.config import Settings
from pipeline.consume import (
    RECORD_TYPES,
    Activation,
    Message,
    SegmentChange,
    Trigger,
    TypedConsumer,
    consume,
)
from pipeline.contract.avro import SCHEMA_DIR
from pipeline.contract.topics import encode_output, ensure_topics

pytestmark = pytest.mark.integration


def trigger(n: int) -> dict[str, object]:
    return {"trigger_id": f"trig-{n}", "rule": "checkout_abandoned", "person_id": f"p{n}",
            "event_ids": [f"e{n}"], "event_time_ms": 1_790_000_000_000 + n,
            "context": {"cart_value": 10.5, "products": ["a", "b"]}}  # fmt: skip


SEGMENT = {"change_id": "c1", "segment": "night_shopper", "person_id": "p1", "change": "entered",
           "event_time_ms": 5, "cause": "e1"}  # fmt: skip
ACTIVATION = {"activation_id": "a1", "destination": "crm", "kind": "trigger", "name": "r",
              "person_id": "p1", "channel": None, "event_time_ms": 5, "source_id": "trig-1",
              "payload": {"cart_value": 10.5}}  # fmt: skip


def produce(settings: Settings, records: list[tuple[str, dict[str, object]]]) -> None:
    producer = Producer({"bootstrap.servers": settings.bootstrap_servers})
    for logical, record in records:
        producer.produce(settings.topic(logical), key=str(record["person_id"]).encode(),
                         value=encode_output(logical, record),
                         headers=[("pulse-emitted-at-ms", b"1790000000123")])  # fmt: skip
    assert producer.flush(30) == 0


def test_dataclasses_match_the_schemas() -> None:
    for cls in RECORD_TYPES:
        schema = json.loads((SCHEMA_DIR / f"{cls.SCHEMA}.avsc").read_text())
        fields = {f.name: f for f in dataclasses.fields(cls)}
        assert list(fields) == [f["name"] for f in schema["fields"]], cls
        for avro_field in schema["fields"]:
            nullable = isinstance(avro_field["type"], list) and "null" in avro_field["type"]
            hint = str(fields[avro_field["name"]].type)
            assert ("None" in hint) == nullable, (cls, avro_field["name"], hint)


def test_typed_records_from_three_topics(settings: Settings) -> None:
    ensure_topics(settings, ["triggers", "segments", "activations.crm"], partitions=2)
    produce(settings, [("triggers", trigger(1)), ("segments", SEGMENT),
                       ("activations.crm", ACTIVATION)])  # fmt: skip
    got: list[Message[object]] = []
    n = consume(settings, ["triggers", "segments", "activations.crm"], "t-typed", got.append,
                max_records=3, idle_timeout_s=20)  # fmt: skip
    assert n == 3
    by_type = {type(m.value): m for m in got}
    assert by_type[Trigger].value == Trigger(**trigger(1))  # type: ignore[arg-type]
    assert by_type[Trigger].key == "p1"
    assert by_type[Trigger].emitted_at_ms == 1_790_000_000_123
    assert by_type[SegmentChange].value.segment == "night_shopper"  # type: ignore[attr-defined]
    assert by_type[Activation].value == Activation(**ACTIVATION)  # type: ignore[arg-type]
    assert by_type[Activation].topic == settings.topic("activations.crm")


def test_at_least_once_a_failed_handler_sees_its_record_again(settings: Settings) -> None:
    ensure_topics(settings, ["triggers"], partitions=1)
    produce(settings, [("triggers", trigger(n)) for n in range(5)])
    seen: list[str] = []

    def fail_on_third(msg: Message[Trigger]) -> None:
        if msg.value.trigger_id == "trig-2":
            raise RuntimeError("the CRM is down")
        seen.append(msg.value.trigger_id)

    with pytest.raises(RuntimeError, match="CRM is down"):
        consume(settings, ["triggers"], "t-alo", fail_on_third, idle_timeout_s=20)
    assert seen == ["trig-0", "trig-1"]
    again: list[str] = []
    with TypedConsumer(settings, ["triggers"], "t-alo") as consumer:
        consumer.run(lambda m: again.append(m.value.trigger_id), max_records=3,
                     idle_timeout_s=20)  # fmt: skip
    assert again == ["trig-2", "trig-3", "trig-4"], "handled ones committed, the failed one not"


def test_an_undecodable_record_is_an_error_not_a_skip(settings: Settings) -> None:
    from pipeline.errors import DecodeError

    ensure_topics(settings, ["triggers"], partitions=1)
    producer = Producer({"bootstrap.servers": settings.bootstrap_servers})
    producer.produce(settings.topic("triggers"), key=b"p", value=b"not avro")
    producer.flush(30)
    with pytest.raises(DecodeError, match=r"triggers\[0\]@0"):
        consume(settings, ["triggers"], "t-bad", lambda m: None, idle_timeout_s=20)
