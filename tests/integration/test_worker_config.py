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
