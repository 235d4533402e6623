"""Live profiles: an HTTP API and a person page over the workers' state (issue 16).

Owns: ``view.py`` the only module that reads the core's person state;
``history.py`` recent triggers in the partition stores; ``lookups.py`` a
person's last commit for the API; ``directory.py`` which worker owns which
partition; ``server.py`` the HTTP server; ``page.py`` the page.

May import: :mod:`pipeline.worker` (its stores, partitioner), the layers below
it (core, contract, topology, config, errors). Started by ``pulse worker``
(:mod:`pipeline.cli.worker`).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pipeline.config import Settings

log = logging.getLogger(__name__)
#: The interpreter's thread switch interval while the profile API runs.
SWITCH_INTERVAL_S = 0.001


@dataclass
class WorkerApi:
    """What ``pulse worker`` holds while its profile API runs.

    ``hooks`` is what the worker loop tells about its stores
    (:class:`~pipeline.profiles.lookups.Lookups`).
    """

    hooks: Any
    close: Callable[[], None]


def start_worker_api(
    settings: Settings, topology: Any, partitions: int, instance_id: str
) -> WorkerApi | None:
    """Start the profile API of a worker (None: ``PULSE_API_PORT=0`` or the port is taken).

    It is a thread of the worker. (A process of its own, reading the stores as
    RocksDB secondaries, was tried and measured worse on 2 cores: each
    secondary replays every commit's writes holding its GIL; bench/RESULTS.md.)
    """
    from pipeline.profiles.directory import Directory, ensure_workers_topic
    from pipeline.profiles.lookups import Lookups
    from pipeline.profiles.server import start_api
    from pipeline.profiles.settings import ApiSettings
    from pipeline.profiles.view import ProfileView

    api = ApiSettings.from_env()
    if not api.port:
        log.info("profile API off (PULSE_API_PORT=0)")
        return None
    ensure_workers_topic(settings)
    directory = Directory(settings, instance_id)
    lookups = Lookups(
        ProfileView(topology.operators, topology.stage),
        partitions,
        api.history,
        allowed_lateness_ms=settings.allowed_lateness_ms,
    )
    server = start_api(api, lookups, directory, instance_id)
    if server is None:
        directory.close()
        return None
    lookups.on_ready = directory.advertise
    # The worker loop holds the GIL while it processes; the API's thread gets it at
    # the latest after the switch interval (5 ms by default), several times a request.
    sys.setswitchinterval(SWITCH_INTERVAL_S)

    def close() -> None:
        server.stop()
        directory.close()

    return WorkerApi(lookups, close)
