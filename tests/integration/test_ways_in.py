"""The ways in, end to end on the real broker, in one worker run.

* kcat (the Debian package) produces JSON events, one bad line among them;
* confluent-kafka's standard ``AvroSerializer`` produces registry-framed events
  written with the *previous* schema version (schemas/history/event.v1.avsc).
  The registry here is a small real HTTP server speaking the Schema Registry
  REST subset the serializer and Pulse use (register, get by id): the registry
  is not the system under test, and no Schema Registry-compatible server can be
  run on this machine without Docker;
* ``pulse worker`` (with ``PULSE_SCHEMA_REGISTRY_URL``) accepts both and fires
  ``checkout_abandoned`` onto pulse.triggers; the bad line is in the DLQ.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

from pipeline.config import Settings
from pipeline.contract.avro import SCHEMA_DIR
from pipeline.contract.produce import kafka_producer_config
from pipeline.contract.topics import ensure_topics
from tests.integration.helpers import TopicReader, person_on_partition, pulse, running_worker

pytestmark = pytest.mark.integration

MIN = 60_000
T0 = 1_790_000_000_000
PARTITIONS = 4


class FakeRegistry(BaseHTTPRequestHandler):
    """POST /subjects/S/versions -> {"id"}; GET /schemas/ids/N -> {"schema"}."""

    schemas: ClassVar[dict[int, str]] = {}
    ids: ClassVar[dict[str, int]] = {}

    def _reply(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/vnd.schemaregistry.v1+json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self) -> None:
        path = self.path.split("?")[0].strip("/").split("/")
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if len(path) == 3 and path[0] == "subjects" and path[2] == "versions":
            text = body["schema"]
            schema_id = self.ids.setdefault(text, len(self.ids) + 1)
            self.schemas[schema_id] = text
            self._reply(200, {"id": schema_id})
        else:
            self._reply(404, {"error_code": 404, "message": f"no route {self.path}"})

    def do_GET(self) -> None:
        path = self.path.split("?")[0].strip("/").split("/")
        if len(path) == 3 and path[:2] == ["schemas", "ids"] and int(path[2]) in self.schemas:
            self._reply(200, {"schema": self.schemas[int(path[2])], "schemaType": "AVRO"})
        else:
            self._reply(404, {"error_code": 40403, "message": "Schema not found"})

    def log_message(self, *_: Any) -> None:
        pass


@pytest.fixture
def registry_url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeRegistry)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def kcat_produce(settings: Settings, lines: list[str]) -> None:
    kcat = shutil.which("kcat")
    # `make test` installs kcat first (scripts/prereqs.sh kcat), or says how to
    assert kcat, "kcat is not installed: run scripts/prereqs.sh kcat (as root it installs it)"
    proc = subprocess.run(
        # murmur2_random is the Java client's partitioner, which Pulse's SDK and
        # CLI use too: the same key lands on the same partition from any of them
        [
            kcat,
            "-b",
            settings.bootstrap_servers,
            "-X",
            "partitioner=murmur2_random",
            "-t",
            settings.topic("events"),
            "-P",
            "-K",
            "|",
        ],
        input="\n".join(lines) + "\n",
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr


def count_records(settings: Settings, topic: str, until: int, timeout_s: float = 60) -> list[Any]:
    consumer = Consumer(
        {
            "bootstrap.servers": settings.bootstrap_servers,
            "group.id": "t-count",
            "enable.auto.commit": False,
        }
    )
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(PARTITIONS)])
    records: list[Any] = []
    deadline = time.monotonic() + timeout_s
    while len(records) < until and time.monotonic() < deadline:
        msg = consumer.poll(0.2)
        control = msg is not None and any(k == "pulse-control" for k, _ in msg.headers() or [])
        if msg is not None and msg.error() is None and not control:
            records.append(msg)  # data records only, not watermark or merge records
    consumer.close()
    return records


def track(mid: str, name: str, ts: int, **ids: str) -> dict[str, Any]:
    return {"messageId": mid, "type": "track", "event": name, "timestamp": ts, **ids}


def test_kcat_json_and_registry_avro_reach_triggers(
    settings: Settings, pulse_env: dict[str, str], registry_url: str, tmp_path: Path
) -> None:
    ensure_topics(settings, partitions=PARTITIONS)
    # kcat: Segment-style JSON, keyed by the anonymous id, plus one bad line.
    kcat_produce(
        settings,
        [
            "anon-k|" + json.dumps(track("k-1", "Product Viewed", T0 - MIN, anonymousId="anon-k")),
            "anon-k|"
            + json.dumps(
                track(
                    "k-2",
                    "Checkout Started",
                    T0,
                    anonymousId="anon-k",
                    properties={"value": 42.0, "currency": "EUR"},
                )
            ),
            "anon-k|{this is not json",
        ],
    )
    # AvroSerializer: registry framing, written with the previous schema version.
    client = SchemaRegistryClient({"url": registry_url})
    old_schema = (SCHEMA_DIR / "history" / "event.v1.avsc").read_text()
    serialize = AvroSerializer(client, old_schema, conf={"auto.register.schemas": True})
    ctx = SerializationContext(settings.topic("events"), MessageField.VALUE)
    producer = Producer(kafka_producer_config(settings))
    base = {
        "type": "track",
        "anonymous_id": None,
        "sent_at_ms": None,
        "received_at_ms": None,
        "properties": {},
        "context": {"extra": {}},
    }
    for mid, name, ts, user in [
        ("r-1", "checkout_started", T0, "reg-buyer"),
        ("r-2", "order_completed", T0 + 5 * MIN, "reg-buyer"),
        ("r-3", "checkout_started", T0, "reg-abandoner"),
    ]:
        record = {**base, "message_id": mid, "event": name, "user_id": user, "timestamp_ms": ts}
        value = serialize(record, ctx)
        assert value[0] == 0, "registry framing"
        producer.produce(settings.topic("events"), key=user.encode(), value=value)
    assert producer.flush(30) == 0

    reader = TopicReader(settings, settings.topic("triggers"))
    env = {**pulse_env, "PULSE_SCHEMA_REGISTRY_URL": registry_url}
    with running_worker(env, tmp_path / "worker.log"):
        # Wait until the worker has read kcat's lines up to the bad one (in the
        # DLQ). Events keyed by their person are processed where they land (no
        # by-person hop), so the clock events below, produced later onto the
        # same partitions, cannot overtake them (allowed lateness is 0 here).
        assert len(count_records(settings, settings.topic("events.dlq"), 1)) == 1, (
            tmp_path / "worker.log"
        ).read_text()[-3000:]
        # Move every by-person partition's watermark past T0 + 30 min, with kcat.
        kcat_produce(
            settings,
            [
                f"{p}|" + json.dumps(track(f"clock-{p}", "page_viewed", T0 + 31 * MIN, userId=p))
                for p in (person_on_partition(i, PARTITIONS) for i in range(PARTITIONS))
            ],
        )
        triggers = reader.read(until=2, timeout_s=90)
        extra = reader.read(until=1, timeout_s=3)
    reader.close()
    log = (tmp_path / "worker.log").read_text()[-3000:]
    assert sorted(t["person_id"] for t in triggers) == ["anon-k", "reg-abandoner"], log
    assert extra == [], "a trigger for the registry buyer, or a double"
    by_person = {t["person_id"]: t for t in triggers}
    assert by_person["anon-k"]["event_ids"] == ["k-2"]
    assert by_person["reg-abandoner"]["event_ids"] == ["r-3"]

    summary = json.loads(pulse(pulse_env, "dlq", "inspect", "--json").stdout)
    assert {r: s["count"] for r, s in summary.items()} == {"invalid_json": 1}, summary
    assert summary["invalid_json"]["example"]["key"] == "anon-k"
