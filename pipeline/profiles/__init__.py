"""Live profiles: an HTTP API and a person page over the workers' state (issue 16).

``view.py`` is the only module that reads the core's person state;
``history.py`` keeps recent triggers in the partition stores; ``lookups.py``
reads a person's last commit for the API; ``directory.py`` tells workers who owns
which partition; ``server.py`` serves HTTP; ``page.py`` renders the page.
"""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass
from typing import Any

from pipeline.config import Settings

log = logging.getLogger(__name__)
#: The interpreter's thread switch interval while the profile API runs.
SWITCH_INTERVAL_S = 0.001


@dataclass
class WorkerApi:
    """What ``pulse worker`` holds while its profile API runs."""

    lookups: Any  # lookups.Lookups
    server: Any  # server.ApiServer
    directory: Any  # directory.Directory

    def close(self) -> None:
        self.server.stop()
        self.directory.close()


def start_worker_api(
    settings: Settings, topology: Any, partitions: int, instance_id: str
) -> WorkerApi | None:
    """Start the profile API of a worker (None: ``PULSE_API_PORT=0`` or the port is taken)."""
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
    return WorkerApi(lookups, server, directory)
