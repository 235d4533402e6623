"""Both Kafka clients Pulse uses speak the broker's protocol (Kafka 4.x dropped old
versions, KIP-896): aiokafka (under Faust) and confluent-kafka, in both directions,
including consumer groups and offset commits. The broker is the one the test
session runs: Apache Kafka ``pipeline.tools.localkafka.launcher.KAFKA_VERSION`` (4.1.1)."""

from __future__ import annotations

import asyncio

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from confluent_kafka import Consumer, Producer

from pipeline.config import Settings
from pipeline.contract.topics import ensure_topics

pytestmark = pytest.mark.integration


def test_confluent_to_aiokafka_and_back(settings: Settings) -> None:
    ensure_topics(settings, ["compat"], partitions=2)
    topic = settings.topic("compat")
    producer = Producer({"bootstrap.servers": settings.bootstrap_servers})
    for i in range(10):
        producer.produce(topic, key=f"k{i}".encode(), value=f"confluent-{i}".encode())
    assert producer.flush(30) == 0

    async def aiokafka_side() -> list[bytes]:
        consumer = AIOKafkaConsumer(
            topic,
            bootstrap_servers=settings.bootstrap_servers,
            group_id=f"{settings.app_id}-aio",
            auto_offset_reset="earliest",
            enable_auto_commit=False,
        )
        await consumer.start()
        got: list[bytes] = []
        try:
            while len(got) < 10:
                batch = await consumer.getmany(timeout_ms=1000)
                for records in batch.values():
                    got.extend(r.value for r in records if r.value is not None)
            await consumer.commit()
        finally:
            await consumer.stop()
        aio_producer = AIOKafkaProducer(bootstrap_servers=settings.bootstrap_servers)
        await aio_producer.start()
        try:
            for i in range(10):
                await aio_producer.send_and_wait(topic, f"aiokafka-{i}".encode(), key=b"k")
        finally:
            await aio_producer.stop()
        return got

    got = asyncio.run(asyncio.wait_for(aiokafka_side(), 60))
    assert sorted(got) == sorted(f"confluent-{i}".encode() for i in range(10))

    consumer = Consumer(
        {
            "bootstrap.servers": settings.bootstrap_servers,
            "group.id": f"{settings.app_id}-confluent",
            "auto.offset.reset": "earliest",
        }
    )
    consumer.subscribe([topic])
    values: list[bytes] = []
    for _ in range(200):
        msg = consumer.poll(0.5)
        if msg is not None and msg.error() is None:
            values.append(msg.value())
        if len(values) == 20:
            break
    consumer.commit(asynchronous=False)
    consumer.close()
    assert sorted(v for v in values if v.startswith(b"aiokafka")) == sorted(
        f"aiokafka-{i}".encode() for i in range(10)
    )
