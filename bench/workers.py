"""`pulse worker` processes of one application (topic prefix): start, kill -9, restart, watch.

Every worker of a pool shares one ``PULSE_HOME``, so the runtime's own slot lock
gives each its instance id (``<hostname>-<n>``) and a worker restarted after
``kill -9`` gets its old one back: its static group membership and its
transactional id, exactly as on a machine that runs several workers.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from bench.common import PY, ROOT, Proc, events_in, free_port, metrics_text
from bench.dataset import PARTITIONS
from bench.kafkautil import Broker


@dataclass
class Slot:
    """One worker position in the pool, across its restarts."""

    index: int
    proc: Proc | None = None
    port: int = 0
    generation: int = 0
    logs: list[Path] = field(default_factory=list)


class Workers:
    def __init__(
        self,
        bootstrap: str,
        prefix: str,
        workdir: Path,
        *,
        topology: str | None,
        guarantee: str = "exactly_once",
        lateness_ms: int = 5000,
        partitions: int = PARTITIONS,
        module: str = "pipeline.cli",
        env: dict[str, str] | None = None,
    ) -> None:
        self.bootstrap = bootstrap
        self.prefix = prefix
        self.group = prefix.rstrip("._-")
        self.home = workdir / prefix.rstrip(".")
        self.logdir = workdir / "logs"
        self.logdir.mkdir(parents=True, exist_ok=True)
        self.topology = topology
        self.guarantee = guarantee
        self.lateness_ms = lateness_ms
        self.partitions = partitions
        self.module = module
        self.extra_env = env or {}
        self.slots: list[Slot] = []

    # -- processes -------------------------------------------------------------------------

    def env(self, port: int) -> dict[str, str]:
        import os

        env = dict(os.environ)
        env.pop("PULSE_INSTANCE_ID", None)
        env.update(
            {
                "PYTHONPATH": str(ROOT),
                "KAFKA_BOOTSTRAP_SERVERS": self.bootstrap,
                "PULSE_TOPIC_PREFIX": self.prefix,
                "PULSE_HOME": str(self.home),
                "PULSE_IDLE_ADVANCE_MS": "0",
                "PULSE_ALLOWED_LATENESS_MS": str(self.lateness_ms),
                "PULSE_PROCESSING_GUARANTEE": self.guarantee,
                "PULSE_METRICS_PORT": str(port),
            }
        )
        env.update(self.extra_env)
        return env

    def argv(self) -> list[str]:
        argv = [PY, "-m", self.module, "worker", "--partitions", str(self.partitions)]
        if self.module == "pipeline.cli":
            argv += ["--loglevel", "info"]
        if self.topology:
            argv += ["--topology", str(ROOT / self.topology)]
        return argv

    def start(self, n: int = 1) -> list[Slot]:
        """Add ``n`` workers to the pool (each waits for nothing: see :meth:`wait_assigned`)."""
        new = []
        for _ in range(n):
            slot = Slot(len(self.slots))
            self.slots.append(slot)
            self.restart(slot)
            new.append(slot)
        return new

    def restart(self, slot: Slot) -> Proc:
        slot.generation += 1
        slot.port = free_port()
        name = f"{self.group}-w{slot.index}-{slot.generation}"
        slot.proc = Proc(name, self.argv(), self.env(slot.port), self.logdir)
        slot.logs.append(slot.proc.log)
        return slot.proc

    def kill(self, slot: Slot) -> None:
        assert slot.proc is not None
        slot.proc.kill()

    def alive(self) -> bool:
        return all(s.proc is not None and s.proc.alive() for s in self.slots)

    def stop(self) -> None:
        for slot in self.slots:
            if slot.proc is not None:
                slot.proc.stop()

    @property
    def ports(self) -> list[int]:
        return [s.port for s in self.slots if s.proc is not None and s.proc.alive()]

    # -- watching ----------------------------------------------------------------------------

    def consumed(self, slot: Slot) -> int:
        """Records this generation of ``slot`` consumed (either input topic)."""
        ports = [slot.port]
        return events_in(ports, self.prefix + "events") + events_in(
            ports, self.prefix + "events.by-person"
        )

    def wait_assigned(self, slots: list[Slot] | None = None, timeout_s: float = 90) -> float:
        """Until each worker logged an assignment (this generation); returns seconds waited."""
        started = time.monotonic()
        for slot in slots or self.slots:
            assert slot.proc is not None
            while "assigned partitions" not in slot.proc.log.read_text(errors="replace"):
                if not slot.proc.alive():
                    raise RuntimeError(f"{slot.proc.name} exited:\n{slot.proc.tail()}")
                if time.monotonic() - started > timeout_s:
                    raise TimeoutError(f"{slot.proc.name} not assigned after {timeout_s:.0f} s")
                time.sleep(0.1)
        return time.monotonic() - started

    def wait_stable(self, quiet_s: float = 2.0, timeout_s: float = 60) -> None:
        """Until no worker logged a new assignment for ``quiet_s`` (the group settled)."""
        started = time.monotonic()
        count, since = -1, time.monotonic()
        while time.monotonic() - started < timeout_s:
            now_count = self.log_count("assigned partitions")
            if now_count != count:
                count, since = now_count, time.monotonic()
            elif time.monotonic() - since >= quiet_s:
                return
            time.sleep(0.1)

    def wait_processing(
        self, slot: Slot, timeout_s: float = 120, idle: Callable[[], bool] | None = None
    ) -> float | None:
        """Seconds from this generation's start until it consumed a record.

        None if it did not within ``timeout_s``, or if ``idle()`` says there is
        nothing left to consume once it is assigned.
        """
        assert slot.proc is not None
        next_idle_check = 0.0
        while time.monotonic() - slot.proc.started < timeout_s:
            if not slot.proc.alive():
                raise RuntimeError(f"{slot.proc.name} exited:\n{slot.proc.tail()}")
            if self.consumed(slot) > 0:
                return time.monotonic() - slot.proc.started
            if idle is not None and time.monotonic() > next_idle_check:
                next_idle_check = time.monotonic() + 1.0
                log = slot.proc.log.read_text(errors="replace")
                if "assigned partitions" in log and idle():
                    return None
            time.sleep(0.05)
        return None

    def has_metrics(self, slot: Slot) -> bool:
        return bool(metrics_text(slot.port))

    def log_lines(self) -> int:
        return sum(
            len(p.read_text(errors="replace").splitlines())
            for s in self.slots
            for p in s.logs
            if p.exists()
        )

    def log_count(self, text: str) -> int:
        return sum(p.read_text(errors="replace").count(text) for s in self.slots for p in s.logs)

    def tails(self, n: int = 25) -> str:
        return "\n".join(f"--- {s.proc.name}\n{s.proc.tail(n)}" for s in self.slots if s.proc)


def wait_settled(
    broker: Broker,
    workers: Workers,
    *,
    timeout_s: float,
    quiet_s: float = 4.0,
) -> float:
    """Until the group has committed every input record and no topic of the prefix moves.

    The last step matters: once the inputs are consumed, every source goes idle
    after ``PULSE_IDLE_TIMEOUT_MS`` and the watermark moves to the largest
    stream time, which fires timers and writes more outputs. Returns the
    monotonic time the inputs were first fully committed.
    """
    prefix = workers.prefix
    inputs = [prefix + "events", prefix + "events.by-person"]
    caught_up = broker.wait_lag_zero(
        workers.group, inputs, timeout_s=timeout_s, alive=workers.alive
    )
    deadline = time.monotonic() + timeout_s
    last, since = -1, time.monotonic()
    while time.monotonic() < deadline:
        if not workers.alive():
            raise RuntimeError(f"a worker of {workers.group} exited:\n{workers.tails()}")
        now_total = broker.end_offsets_total(prefix)
        if now_total != last:
            last, since = now_total, time.monotonic()
        elif time.monotonic() - since >= quiet_s:
            broker.wait_lag_zero(workers.group, inputs, timeout_s=60, alive=workers.alive)
            return caught_up
        time.sleep(0.25)
    raise TimeoutError(f"{prefix}* topics still moving after {timeout_s:.0f} s")
