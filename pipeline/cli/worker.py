"""``pulse worker``: claim an instance id, create the topics, run the loop until told to stop.

The instance id is the worker's static group membership (``group.instance.id``:
a restarted worker gets its partitions back without a rebalance, within a
second of starting) and the root of its transactional id (a restarted worker
aborts its predecessor's open transaction at once). It is
``PULSE_INSTANCE_ID`` when set (a Kubernetes StatefulSet's pod name), else
``<hostname>-<n>`` with ``n`` the first slot free under ``PULSE_HOME`` (a
file lock), so two workers on one machine get different ids and a worker
restarted after ``kill -9`` gets its old one back.
"""

from __future__ import annotations

import fcntl
import logging
import os
import signal
import socket
import threading
from pathlib import Path
from typing import IO, Any

from pipeline.config import Settings
from pipeline.contract.topics import BY_PERSON, EVENTS, check_partitions
from pipeline.errors import ConfigError
from pipeline.profiles import start_worker_api
from pipeline.worker.clients import changelog_topic
from pipeline.worker.commit import FatalKafkaError
from pipeline.worker.loop import Runtime
from pipeline.worker.models import start_model_reader
from pipeline.worker.partition import Topology

log = logging.getLogger(__name__)
MAX_SLOTS = 64
#: Wait before building a new consumer and producer after a fatal error.
RESTART_S = 1.0


def claim_instance(settings: Settings) -> tuple[str, IO[str] | None]:
    """The worker's instance id, and the lock that holds its slot (None if given)."""
    if settings.instance_id:
        return settings.instance_id, None
    slots = settings.home / "worker" / settings.app_id / "slots"
    slots.mkdir(parents=True, exist_ok=True)
    host = socket.gethostname() or "pulse"
    for n in range(MAX_SLOTS):
        handle = (slots / f"{n}.lock").open("w")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            continue
        return f"{host}-{n}", handle
    raise ConfigError(f"{MAX_SLOTS} workers already run from {slots}; set PULSE_INSTANCE_ID")


def ensure_changelog(settings: Settings, partitions: int) -> None:
    """The compacted state changelog (one partition per partition number)."""
    from pipeline.contract.topics import ensure_compacted_topic

    name = changelog_topic(settings)
    ensure_compacted_topic(settings, name, partitions, {"delete.retention.ms": "604800000"})


def partitioned_topics(settings: Settings) -> list[str]:
    """The topics that must share one partition count."""
    return [settings.topic(EVENTS), settings.topic(BY_PERSON), changelog_topic(settings)]


def run_worker(settings: Settings, topology: Topology, partitions: int) -> int:
    """Run until SIGTERM/SIGINT; commits what was processed before it returns."""
    ensure_changelog(settings, partitions)
    check_partitions(settings, partitioned_topics(settings), partitions)
    instance_id, lock = claim_instance(settings)
    state_dir = Path(settings.home / "worker" / settings.app_id / instance_id)
    stopping = threading.Event()

    def stop(signum: int, _frame: Any) -> None:
        log.info("signal %d: committing and stopping", signum)
        stopping.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    log.info(
        "Pulse worker %s (pid %d): %s, %d partitions, group %s",
        instance_id,
        os.getpid(),
        settings.processing_guarantee,
        partitions,
        settings.app_id,
    )
    api = start_worker_api(settings, topology, partitions, instance_id)  # the profile API
    # pulse.models: read to its end now, then followed in the background (no restart)
    models = start_model_reader(settings, topology.stage)
    try:
        while not stopping.is_set():
            runtime = Runtime(settings, topology, partitions, instance_id, state_dir,
                              stop=stopping, lookups=api.hooks if api else None)  # fmt: skip
            try:
                runtime.run()
            except FatalKafkaError as exc:
                # e.g. a static member fenced after a long broker outage: what was
                # not committed is done again by a new consumer and producer
                log.error("%s; starting a new consumer and producer in %.0f s", exc, RESTART_S)
                stopping.wait(RESTART_S)
    finally:
        if models is not None:
            models.close()
        if api is not None:
            api.close()
        if lock is not None:
            lock.close()
    log.info("Pulse worker %s stopped", instance_id)
    return 0
