"""pipeline.faust on the real broker: the example Faust app reacts to checkout_abandoned."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition

from pipeline.config import Settings
from pipeline.contract.topics import encode_output, ensure_topics

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "faust_checkout_abandoned.py"


def trigger(n: int, rule: str, person: str) -> dict[str, object]:
    return {"trigger_id": f"trig-{n}", "rule": rule, "person_id": person,
            "event_ids": [f"ev-{n}"], "event_time_ms": 1_790_000_000_000 + n,
            "context": {"cart_value": 99.5 + n, "products": ["p1", "p2"]}}  # fmt: skip


def test_codecs_round_trip_typed_records() -> None:
    import faust

    from pipeline.faust import Activation, SegmentChange, Trigger

    app = faust.App("t-codecs", broker="kafka://127.0.0.1:1")
    for logical, model, record in [
        ("triggers", Trigger, trigger(1, "checkout_abandoned", "p1")),
        ("segments", SegmentChange, {"change_id": "c1", "segment": "night_shopper",
                                      "person_id": "p1", "change": "entered",
                                      "event_time_ms": 5, "cause": None}),
        ("activations.crm", Activation, {"activation_id": "a1", "destination": "crm",
                                         "kind": "trigger", "name": "r", "person_id": "p1",
                                         "channel": None, "event_time_ms": 5, "source_id": "t1",
                                         "payload": {"cart_value": 3.5}}),
    ]:  # fmt: skip
        raw = encode_output(logical, record)
        codec = model._options.serializer
        value = app.serializers.loads_value(model, raw, serializer=codec)
        assert isinstance(value, model)
        assert value.asdict() == record
        assert app.serializers.dumps_value(model, value, serializer=codec) == raw


def test_example_app_reacts_to_checkout_abandoned(
    settings: Settings, pulse_env: dict[str, str], tmp_path: Path
) -> None:
    ensure_topics(settings, ["triggers"], partitions=2)
    producer = Producer({"bootstrap.servers": settings.bootstrap_servers})
    sent = [trigger(1, "checkout_abandoned", "alice"), trigger(2, "first_login", "bob"),
            trigger(3, "checkout_abandoned", "carol")]  # fmt: skip
    for record in sent:
        producer.produce(settings.topic("triggers"), key=str(record["person_id"]).encode(),
                         value=encode_output("triggers", record))  # fmt: skip
    assert producer.flush(30) == 0

    env = {**pulse_env, "FAUST_DATADIR": str(tmp_path / "faust")}
    log = tmp_path / "example.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, str(EXAMPLE), "worker", "--without-web", "-l", "info"],
            env=env, stdout=out, stderr=subprocess.STDOUT, cwd=tmp_path,
        )  # fmt: skip
    emails = []
    try:
        topic = settings.topic("examples.recovery-emails")
        consumer = Consumer({"bootstrap.servers": settings.bootstrap_servers,
                             "group.id": "t-read", "enable.auto.commit": False})  # fmt: skip
        deadline = time.monotonic() + 120
        assigned = False
        while len(emails) < 2 and time.monotonic() < deadline:
            if not assigned:
                if topic not in consumer.list_topics(timeout=5).topics:
                    time.sleep(0.5)
                    continue
                consumer.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
                assigned = True
            msg = consumer.poll(0.5)
            if msg is not None and msg.error() is None:
                emails.append((msg.key().decode(), json.loads(msg.value())))
        consumer.close()
    finally:
        proc.terminate()
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
    assert len(emails) == 2, log.read_text()[-3000:]
    assert sorted(key for key, _ in emails) == ["alice", "carol"]
    by_person = dict(emails)
    assert by_person["alice"] == {"person_id": "alice", "template": "cart-recovery",
                                  "cart_value": 100.5, "products": ["p1", "p2"],
                                  "trigger_id": "trig-1"}  # fmt: skip
