"""The worker refuses a cluster it cannot run on correctly, with a clear error."""

from __future__ import annotations

import subprocess

import pytest
from confluent_kafka.admin import AdminClient, NewTopic

from pipeline.config import Settings
from tests.integration.helpers import PULSE

pytestmark = pytest.mark.integration


def test_worker_refuses_topics_with_another_partition_count(
    settings: Settings, pulse_env: dict[str, str]
) -> None:
    # pulse.events made elsewhere with 2 partitions; the worker is started for 4
    admin = AdminClient({"bootstrap.servers": settings.bootstrap_servers})
    events = settings.topic("events")
    admin.create_topics([NewTopic(events, num_partitions=2, replication_factor=1)])[events].result()
    proc = subprocess.run(
        [*PULSE, "worker", "--partitions", "4"],
        env=pulse_env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode != 0
    assert f"topic {events} has 2 partitions" in proc.stderr, proc.stderr
    assert "--partitions 4" in proc.stderr


def test_topics_are_created_with_the_configured_replication_factor(
    settings: Settings, pulse_env: dict[str, str]
) -> None:
    # one broker: a factor of 2 cannot be met, and the error says so instead of
    # silently creating unreplicated changelogs
    env = {**pulse_env, "PULSE_REPLICATION_FACTOR": "2"}
    proc = subprocess.run(
        [*PULSE, "worker"], env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert proc.returncode != 0
    assert "could not create topic" in proc.stderr, proc.stderr
    assert "replication factor" in proc.stderr.lower(), proc.stderr


def test_read_range_reads_exactly_the_missing_offsets(settings: Settings) -> None:
    from confluent_kafka import Producer

    from pipeline.worker.offsets import read_range

    topic = settings.topic("events")
    admin = AdminClient({"bootstrap.servers": settings.bootstrap_servers})
    admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])[topic].result()
    producer = Producer({"bootstrap.servers": settings.bootstrap_servers})
    for i in range(5):
        producer.produce(topic, key=b"k%d" % i, value=b"v%d" % i, headers=[("h", b"%d" % i)])
    assert producer.flush(30) == 0
    got = read_range(settings.bootstrap_servers, topic, 0, 1, 4)
    assert [(r.offset, r.key, r.value, r.headers) for r in got] == [
        (i, b"k%d" % i, b"v%d" % i, [("h", b"%d" % i)]) for i in (1, 2, 3)
    ]
    # past the end of the partition: what there is
    assert [r.offset for r in read_range(settings.bootstrap_servers, topic, 0, 3, 9)] == [3, 4]


def test_partition_bounds_are_the_earliest_offset_and_the_high_watermark(
    settings: Settings,
) -> None:
    from confluent_kafka import Producer, TopicPartition

    from pipeline.worker.offsets import partition_bounds

    topic = settings.topic("events")
    admin = AdminClient({"bootstrap.servers": settings.bootstrap_servers})
    admin.create_topics([NewTopic(topic, num_partitions=2, replication_factor=1)])[topic].result()
    producer = Producer({"bootstrap.servers": settings.bootstrap_servers})
    for i in range(3):
        producer.produce(topic, value=b"v%d" % i, partition=1)
    assert producer.flush(30) == 0
    assert partition_bounds(settings.bootstrap_servers, topic, 0) == (0, 0)
    assert partition_bounds(settings.bootstrap_servers, topic, 1) == (0, 3)
    # retention moved the start: the earliest offset follows it
    admin.delete_records([TopicPartition(topic, 1, 2)])[TopicPartition(topic, 1, 2)].result()
    assert partition_bounds(settings.bootstrap_servers, topic, 1) == (2, 3)
