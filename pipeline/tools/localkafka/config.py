"""What the local broker is told: JVM flags, ``server.properties``, log4j2 config, cluster id.

Pure functions of the ports and folders; :mod:`pipeline.tools.localkafka.launcher` writes
them out on every start (the ports may change between starts).
"""

from __future__ import annotations

import base64
import uuid
from pathlib import Path

JVM_FLAGS = (
    "-Xmx512m",
    "-Xms512m",
    "-XX:+UseG1GC",
    "-XX:MaxGCPauseMillis=20",
    "-Djava.awt.headless=true",
)
# log4j's own shutdown hook would stop logging before Kafka logs its shutdown.
LOG4J2_YAML = """\
Configuration:
  shutdownHook: disable
  Appenders:
    Console:
      name: STDOUT
      PatternLayout:
        pattern: "[%d] %p %m (%c)%n"
  Loggers:
    Root:
      level: INFO
      AppenderRef:
        - ref: STDOUT
"""


def render_server_properties(port: int, controller_port: int, data_dir: Path) -> str:
    """``server.properties`` for one loopback-only KRaft node sized for a small machine."""
    props = {
        "process.roles": "broker,controller",
        "node.id": "1",
        "controller.quorum.voters": f"1@127.0.0.1:{controller_port}",
        "listeners": f"PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}",
        "advertised.listeners": f"PLAINTEXT://127.0.0.1:{port}",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
        "log.dirs": str(data_dir),
        "offsets.topic.replication.factor": "1",
        "offsets.topic.num.partitions": "4",
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
        "share.coordinator.state.topic.replication.factor": "1",
        "share.coordinator.state.topic.min.isr": "1",
        "group.initial.rebalance.delay.ms": "0",
        "num.network.threads": "2",
        "num.io.threads": "2",
        "background.threads": "2",
        # The 128 MiB default comes out of a 512 MiB heap; the cleaner stays on
        # because Faust changelog topics are compacted.
        "log.cleaner.dedupe.buffer.size": str(16 * 1024 * 1024),
        "auto.create.topics.enable": "false",  # Pulse creates its topics explicitly
    }
    return "".join(f"{key}={value}\n" for key, value in props.items())


def new_cluster_id() -> str:
    """Draw a cluster id as ``StorageTool random-uuid`` prints it (22 URL-safe base64 chars).

    Kafka's ``Uuid.randomUuid()`` redraws ids whose text starts with ``-``
    (they read as command-line flags); so do we.
    """
    while True:
        text = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not text.startswith("-"):
            return text
