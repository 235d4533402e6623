"""pulse train against the broker: examples read from pulse.training.<task>, the model published."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

from pipeline.cli.main import main
from pipeline.config import Settings
from pipeline.contract.topics import ensure_topics
from pipeline.core.scoring import load_model
from pipeline.tools import batch_examples, cdnow
from pipeline.tools import train_examples as tx

pytestmark = pytest.mark.integration


def _consumer(settings: Settings):  # type: ignore[no-untyped-def]
    from confluent_kafka import Consumer

    return Consumer(
        {
            "bootstrap.servers": settings.bootstrap_servers,
            "group.id": f"test-{uuid.uuid4().hex[:8]}",
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
            "enable.partition.eof": True,
        }
    )


def test_train_reads_the_topic_to_its_end_and_publishes_the_model(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from confluent_kafka import Producer

    examples = batch_examples.derive(cdnow.load(max_customers=3000), "churn_30d")
    topic = settings.topic(tx.TRAINING + "churn_30d")
    ensure_topics(settings, [tx.TRAINING + "churn_30d"], partitions=2)
    # in a transaction, as the workers will write them: each partition ends with a commit marker
    producer = Producer(
        {"bootstrap.servers": settings.bootstrap_servers, "transactional.id": uuid.uuid4().hex}
    )
    producer.init_transactions(30)
    producer.begin_transaction()
    for ex in examples:
        producer.produce(topic, key=ex.person.encode(), value=json.dumps(ex.to_json()).encode())
    producer.commit_transaction(30)

    monkeypatch.setenv("PULSE_TOPIC_PREFIX", settings.topic_prefix)
    out = tmp_path / "models"
    args = ["train", "--task", "churn_30d", "--bootstrap", settings.bootstrap_servers,
            "--out", str(out), "--publish"]  # fmt: skip
    assert main(args) == 0
    report = json.loads((out / "churn_30d.evaluation.json").read_text())
    split = report["split"]
    read = split["train"]["examples"] + split["test"]["examples"] + split["unsettled_at_cut"]
    assert read == len(examples)  # every record, and the reader stopped at the end

    consumer = _consumer(settings)
    try:
        values = list(tx.values_from_topic(consumer, settings.topic("models")))
    finally:
        consumer.close()
    assert len(values) == 1
    published = json.loads(values[0])
    assert load_model(published).task == "churn_30d"
    assert published == json.loads((out / "churn_30d.model.json").read_text())
