"""The profile API in its own process, beside the worker loop (``PULSE_API_PROCESS=1``).

The worker loop holds the GIL while it processes records. An API thread in
the same process gets it only when the loop yields, several times a request,
and parsing, auth and JSON for 500 lookups/s take the loop's CPU. So ``pulse
worker`` runs the API in a child process (``multiprocessing``, spawned): it
opens the worker's partition stores as RocksDB **secondary** instances
(read-only, following the primary's writes) and answers every lookup there,
on the other core, from the partition's last commit, exactly as the in-process
:class:`~pipeline.profiles.lookups.Lookups` does. The loop only writes short
messages to a pipe (:class:`ApiProcess`, the loop's hooks):

``("ready", {p: store path})``
    after an assignment's restore: the child opens those stores, advertises
    them and answers ``("ok",)``;
``("unready",)`` / ``("revoked",)``
    before the loop closes, wipes or restores a store; the child closes its
    secondaries and answers ``("ok",)``, which the loop waits for, so a store's
    files are never removed under a reader (``revoked`` also advertises none);
``("commit",)``
    after each commit: the child catches up with the primary before its next read;
end of file
    the worker is gone (even ``kill -9``): the child stops.

The child first sends ``("port", port or None)``. Without a known topology
source (a worker started from Python with a hand-built topology) the API runs
as a thread of the worker instead (``pipeline/profiles/__init__.py``).

**Cost.** A secondary replays the primary's write-ahead log at each catch-up,
holding the GIL (2-3 ms at p50, up to about 100 ms, on the bench's commits):
the child does the worker's RocksDB writes again. On the 2-core development
machine, where the broker, the worker and the load generator already share
the cores, this measured no better than the thread (bench/RESULTS.md), so it
is not the default; it frees the worker's GIL where the machine has cores to spare.
"""

from __future__ import annotations

import importlib
import logging
import multiprocessing
import shutil
import signal
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pipeline.config import Settings
from pipeline.profiles import history
from pipeline.profiles.lookups import Lookups, ReplicaStore

log = logging.getLogger(__name__)

#: How long the loop waits for the child to let go of its stores before it goes on.
ACK_TIMEOUT_S = 10.0
START_TIMEOUT_S = 60.0

#: ``(topology path or None for the built-in, plugin modules)``: how the child loads it.
Source = tuple[str | None, tuple[str, ...]]


class ApiProcess:
    """The loop's side: starts the child and tells it what the loop does to its stores."""

    def __init__(
        self,
        settings: Settings,
        source: Source,
        partitions: int,
        instance_id: str,
        history_size: int,
    ) -> None:
        self.history_size = history_size
        self.paths: dict[int, str] = {}
        self.gone = False  # the child exited (said once)
        ctx = multiprocessing.get_context("spawn")
        self.conn, child = ctx.Pipe()
        level = logging.getLogger().getEffectiveLevel()
        self.proc = ctx.Process(
            target=child_main,
            args=(child,),
            kwargs={
                "settings": settings,
                "source": source,
                "partitions": partitions,
                "instance_id": instance_id,
                "level": level,
            },
            name="pulse-api",
            daemon=True,
        )
        self.proc.start()
        child.close()
        self.port: int | None = None
        if self.conn.poll(START_TIMEOUT_S):
            try:
                kind, port = self.conn.recv()
                self.port = port if kind == "port" else None
            except EOFError:
                pass
        if self.port is None:
            self.close()

    # -- the loop's hooks (pipeline/worker/loop.py) --------------------------------------

    def attach(self, stores: Mapping[int, Any], tasks: Mapping[int, Any]) -> None:
        self.paths = {p: str(store.path) for p, store in stores.items()}
        history.attach(tasks, self.history_size)

    def unready(self) -> None:
        self._ask(("unready",))

    def revoked(self) -> None:
        self._ask(("revoked",))

    def assigned(self, partitions: list[int]) -> None:
        self._ask(("ready", {p: self.paths[p] for p in partitions if p in self.paths}))

    def committed(self) -> None:
        self._send(("commit",))

    # -- the pipe ---------------------------------------------------------------------

    def _send(self, message: tuple[Any, ...]) -> bool:
        if not self.proc.is_alive():
            if not self.gone:
                self.gone = True
                log.error("the profile API process exited (code %s); the worker goes on "
                          "without its API", self.proc.exitcode)  # fmt: skip
            return False
        try:
            self.conn.send(message)
        except (OSError, EOFError):
            return False
        return True

    def _ask(self, message: tuple[Any, ...]) -> None:
        """Send, and wait until the child has done it (opened or let go of the stores)."""
        if not self._send(message):
            return
        try:
            if self.conn.poll(ACK_TIMEOUT_S):
                self.conn.recv()
                return
        except (OSError, EOFError):
            return
        log.error("the profile API process did not answer in %.0f s: stopping it", ACK_TIMEOUT_S)
        self.proc.kill()

    def close(self) -> None:
        self.gone = True  # an exit from here on is expected
        self._send(("stop",))
        self.proc.join(10)
        if self.proc.is_alive():
            self.proc.kill()
            self.proc.join(5)
        self.conn.close()


def child_main(
    conn: Any, *, settings: Settings, source: Source, partitions: int, instance_id: str, level: int
) -> None:
    """The API process: serve lookups from secondaries of the worker's stores."""
    # Ctrl-C reaches the whole process group: the worker commits and then stops its API
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    logging.basicConfig(
        level=level, format="[%(asctime)s] %(levelname)s %(name)s (api): %(message)s"
    )
    from pipeline.profiles.directory import Directory
    from pipeline.profiles.server import start_api
    from pipeline.profiles.settings import ApiSettings
    from pipeline.profiles.view import ProfileView

    path, plugins = source
    for module in plugins:
        importlib.import_module(module)
    from pipeline.topology.dsl import load

    topo = load(path)
    api = ApiSettings.from_env()
    directory = Directory(settings, instance_id)
    view = ProfileView(topo.operators, topo.stage)
    lookups = Lookups(
        view, partitions, api.history, allowed_lateness_ms=settings.allowed_lateness_ms
    )
    server = start_api(api, lookups, directory, instance_id)
    conn.send(("port", None if server is None else server.port))
    if server is None:
        directory.close()
        return
    lookups.on_ready = directory.advertise
    scratch = Path(tempfile.mkdtemp(prefix=f"pulse-api-{instance_id}-"))
    replicas: dict[int, ReplicaStore] = {}

    def close_replicas() -> None:  # only once ``lookups`` is unready: no lookup reads them
        for replica in replicas.values():
            replica.close()
        replicas.clear()

    try:
        while True:
            try:
                message = conn.recv()
            except (EOFError, OSError):
                break  # the worker is gone
            kind = message[0]
            if kind == "ready":
                lookups.unready()
                close_replicas()
                for p, store_path in sorted(message[1].items()):
                    replicas[p] = ReplicaStore(store_path, scratch / f"p{p}")
                lookups.serve(replicas)
                lookups.assigned(sorted(replicas))
                conn.send(("ok",))
            elif kind in ("unready", "revoked"):
                if kind == "revoked":
                    lookups.revoked()
                else:
                    lookups.unready()
                close_replicas()
                conn.send(("ok",))
            elif kind == "commit":
                lookups.committed()
            elif kind == "stop":
                break
    finally:
        lookups.unready()
        close_replicas()
        server.stop()
        directory.close()
        shutil.rmtree(scratch, ignore_errors=True)
