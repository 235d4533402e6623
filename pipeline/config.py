"""Settings, loaded once from the environment into an immutable object.

Every Pulse command reads the same variables:

``KAFKA_BOOTSTRAP_SERVERS``  use this Kafka cluster (default ``127.0.0.1:9092``,
                             the broker ``pulse kafka start`` runs)
``PULSE_TOPIC_PREFIX``       prefix of every topic name (default ``pulse.``)
``PULSE_HOME``               where local state lives: broker jars, logs, data,
                             worker RocksDB (default ``./.pulse``)
``PULSE_ALLOWED_LATENESS_MS`` how far the watermark trails stream time
``PULSE_IDLE_ADVANCE_MS``    once every source partition has had nothing new for this
                             long, the watermark moves to the largest stream time and
                             on with the wall clock: a quiet system decides its timers
                             (default 10000; 0 = never)
``PULSE_METRICS_PORT``       the worker's Prometheus port (default 9108, 0 = off)
``PULSE_BATCH_MAX``          most records the worker takes from the consumer at a time
                             (default 500)
``PULSE_BATCH_WAIT_MS``      how long the worker waits to fill a batch before it
                             processes what it has (default 5)
``PULSE_LINGER_MS``          how long the worker's producer waits to fill a produce
                             request (default 5; by-person records, outputs, changelogs)
``PULSE_PROCESSING_GUARANTEE`` ``exactly_once`` (default: outputs, state and input
                             offsets commit in one Kafka transaction) or ``at_least_once``
``PULSE_COMMIT_INTERVAL_MS`` how often the worker commits (default 100; outputs become
                             visible to ``read_committed`` consumers at a commit)
``PULSE_IDLE_TIMEOUT_MS``    a source partition with nothing new at the broker for this
                             long stops holding the watermark back (default 3000)
``PULSE_CLOCK_INTERVAL_MS``  how often a worker tells other partitions how far its
                             sources got, when data did not (default 200)
``PULSE_SESSION_TIMEOUT_MS`` consumer group session timeout (default 10000)
``PULSE_INSTANCE_ID``        this worker's static group membership id and the root of
                             its transactional id (default ``<hostname>-<n>``, the first
                             free slot ``n`` under ``PULSE_HOME``)
``PULSE_REPLICATION_FACTOR`` replication factor of the topics Pulse creates,
                             changelogs included (default 1: a one-broker
                             cluster; use 3 on a production cluster)
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from pipeline.errors import ConfigError

DEFAULT_BOOTSTRAP = "127.0.0.1:9092"


def _int_env(
    env: Mapping[str, str], name: str, default: int, *, what: str = "milliseconds", least: int = 0
) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not an integer number of {what}") from None
    if value < least:
        raise ConfigError(f"{name}={raw!r} must be at least {least}")
    return value


GUARANTEES = ("exactly_once", "at_least_once")


def _guarantee(env: Mapping[str, str]) -> str:
    raw = env.get("PULSE_PROCESSING_GUARANTEE", "").strip() or "exactly_once"
    if raw not in GUARANTEES:
        raise ConfigError(
            f"PULSE_PROCESSING_GUARANTEE={raw!r} is not one of {', '.join(GUARANTEES)}"
        )
    return raw


@dataclass(frozen=True)
class Settings:
    """Process-wide settings; build with :meth:`from_env` and pass down explicitly."""

    bootstrap_servers: str = DEFAULT_BOOTSTRAP
    bootstrap_from_env: bool = False
    topic_prefix: str = "pulse."
    home: Path = Path(".pulse")
    allowed_lateness_ms: int = 5_000
    idle_advance_ms: int = 10_000
    replication_factor: int = 1
    batch_max: int = 500
    batch_wait_ms: int = 5
    linger_ms: int = 5
    processing_guarantee: str = "exactly_once"
    commit_interval_ms: int = 100
    idle_timeout_ms: int = 3_000
    clock_interval_ms: int = 200
    session_timeout_ms: int = 10_000
    instance_id: str = ""

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        bootstrap = env.get("KAFKA_BOOTSTRAP_SERVERS", "").strip()
        return cls(
            bootstrap_servers=bootstrap or DEFAULT_BOOTSTRAP,
            bootstrap_from_env=bool(bootstrap),
            topic_prefix=env.get("PULSE_TOPIC_PREFIX", "pulse."),
            home=Path(env.get("PULSE_HOME", ".pulse")),
            allowed_lateness_ms=_int_env(env, "PULSE_ALLOWED_LATENESS_MS", 5_000),
            idle_advance_ms=_int_env(env, "PULSE_IDLE_ADVANCE_MS", 10_000),
            replication_factor=_int_env(
                env, "PULSE_REPLICATION_FACTOR", 1, what="replicas", least=1
            ),
            batch_max=_int_env(env, "PULSE_BATCH_MAX", 500, what="records", least=1),
            batch_wait_ms=_int_env(env, "PULSE_BATCH_WAIT_MS", 5, least=1),
            linger_ms=_int_env(env, "PULSE_LINGER_MS", 5),
            processing_guarantee=_guarantee(env),
            commit_interval_ms=_int_env(env, "PULSE_COMMIT_INTERVAL_MS", 100, least=1),
            idle_timeout_ms=_int_env(env, "PULSE_IDLE_TIMEOUT_MS", 3_000, least=1),
            clock_interval_ms=_int_env(env, "PULSE_CLOCK_INTERVAL_MS", 200, least=1),
            session_timeout_ms=_int_env(env, "PULSE_SESSION_TIMEOUT_MS", 10_000, least=1_000),
            instance_id=env.get("PULSE_INSTANCE_ID", "").strip(),
        )

    @staticmethod
    def metrics_port_from_env(env: Mapping[str, str] | None = None) -> int:
        """``PULSE_METRICS_PORT`` (default 9108; 0 turns the endpoint off)."""
        return _int_env(
            os.environ if env is None else env, "PULSE_METRICS_PORT", 9108, what="a port"
        )

    @property
    def app_id(self) -> str:
        """The worker's application id, derived from the topic prefix (``pulse.`` -> ``pulse``).

        It names the consumer group, the state changelog topic
        (``pulse-state-changelog``) and the root of transactional ids.
        """
        return self.topic_prefix.rstrip("._-") or "pulse"

    def topic(self, name: str) -> str:
        """Full topic name: ``settings.topic("events")`` -> ``"pulse.events"``."""
        return f"{self.topic_prefix}{name}"
