"""Shared fixtures. Integration tests need a real Kafka broker and never skip.

If ``KAFKA_BOOTSTRAP_SERVERS`` is set, that cluster is used; otherwise the
session starts the local broker (``pulse kafka start``, ports 9092/9093 or
``PULSE_KAFKA_PORT``) and stops it at the end if it started it. If no broker
can be reached the integration tests fail and say why.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from pipeline.config import Settings

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    from pipeline.errors import PulseError
    from pipeline.tools.localkafka import launcher as kafka_local

    settings = Settings.from_env()
    if settings.bootstrap_from_env:
        try:
            kafka_local.wait_for_broker(settings.bootstrap_servers, 30)
        except PulseError as err:
            pytest.fail(f"KAFKA_BOOTSTRAP_SERVERS is set but no broker answers: {err}")
        yield settings.bootstrap_servers
        return
    home = Path(os.environ.get("PULSE_HOME", ROOT / ".pulse"))
    lk = kafka_local.LocalKafka.from_settings(replace(settings, home=home))
    was_running = kafka_local.status(lk).running
    try:
        bootstrap = kafka_local.start(lk, timeout_s=120, echo=lambda _msg: None)
    except PulseError as err:
        pytest.fail(f"integration tests need a Kafka broker and none could be started: {err}")
    yield bootstrap
    if not was_running:
        kafka_local.stop(lk, echo=lambda _msg: None)


@pytest.fixture
def settings(kafka_bootstrap: str, tmp_path: Path) -> Settings:
    """Settings for one test: its own topic prefix (fresh topics) and home."""
    return Settings(
        bootstrap_servers=kafka_bootstrap,
        bootstrap_from_env=True,
        topic_prefix=f"t{uuid.uuid4().hex[:10]}.",
        home=tmp_path / "home",
        allowed_lateness_ms=0,
        idle_advance_ms=0,
    )


@pytest.fixture
def pulse_env(settings: Settings) -> dict[str, str]:
    """Environment for running ``pulse`` commands as subprocesses against ``settings``."""
    env = dict(os.environ)
    env.update(
        KAFKA_BOOTSTRAP_SERVERS=settings.bootstrap_servers,
        PULSE_TOPIC_PREFIX=settings.topic_prefix,
        PULSE_HOME=str(settings.home),
        PULSE_ALLOWED_LATENESS_MS=str(settings.allowed_lateness_ms),
        PULSE_IDLE_ADVANCE_MS=str(settings.idle_advance_ms),
        PULSE_METRICS_PORT="0",
    )
    return env
