"""Failures injected while a run processes: ``kill -9`` of workers, a broker stop/start.

Each function returns a ``during`` hook for :func:`bench.scenario.live_run`: it
runs once production has started, while the workers work through the backlog,
and returns its figures. The run then waits for the workers to finish and
compares every output with the oracle, as a run without failures does.
"""

from __future__ import annotations

import os
import random
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.common import PY, ROOT, log, pct
from bench.dataset import Production
from bench.kafkautil import Broker
from bench.workers import Workers

During = Callable[[Workers, Production, Broker], dict[str, Any]]


def _progress(broker: Broker, pool: Workers) -> int:
    try:
        return broker.committed_total(pool.group, pool.prefix + "events")
    except Exception:
        return 0


def killer(
    kills: int,
    *,
    victims: tuple[int, ...] = (0,),
    seed: int = 5,
    slow_every: int = 0,
    early_every: int = 5,
    session_timeout_s: float = 10.0,
) -> During:
    """``kill -9`` a victim ``kills`` times at random moments spread over the backlog.

    The next kill comes after a random share of the time the rest of the
    backlog should take (from the progress so far), so the kills spread over
    the whole run. Every ``early_every``-th kill hits the restarted worker
    0-3 s after it started (restoring, initialising its transactions) instead
    of once it processes again. With ``slow_every``, every such kill waits a
    session timeout before the restart, so the group rebalances (twice).
    """

    def during(pool: Workers, production: Production, broker: Broker) -> dict[str, Any]:
        rng = random.Random(seed)
        total = len(production.ds)
        started = time.monotonic()
        restart_s: list[float] = []
        kill_to_processing_s: list[float] = []
        in_backlog = 0
        early = slow = 0
        last = (started, 0)
        for k in range(kills):
            done = _progress(broker, pool)
            now = time.monotonic()
            elapsed = now - started
            rate = done / elapsed if done > 0 and elapsed > 1 else 0.0
            if now - last[0] > 1 and done > last[1]:  # the pace since the last kill
                rate = max(rate, (done - last[1]) / (now - last[0]))
            last = (now, done)
            is_early = early_every and k % early_every == early_every - 1
            if is_early:
                gap = rng.uniform(0.0, 3.0)
            elif rate:
                gap = rng.uniform(0.2, 1.0) * (total - done) / rate / (kills - k)
            else:  # nothing committed yet: soon
                gap = rng.uniform(0.5, 2.0)
            time.sleep(min(max(gap, 0.3), 30.0))
            slot = pool.slots[victims[k % len(victims)]]
            in_backlog += _progress(broker, pool) < total
            pool.kill(slot)
            killed_at = time.monotonic()
            early += bool(is_early)
            is_slow = slow_every and k % slow_every == slow_every - 1
            if is_slow:
                slow += 1
                time.sleep(session_timeout_s + 2)  # the group sees the member gone
            pool.restart(slot)
            following_early = early_every and (k + 1) % early_every == early_every - 1
            if following_early and k + 1 < kills:
                continue  # the next kill comes before it processes
            secs = pool.wait_processing(
                slot,
                timeout_s=180,
                idle=lambda: production.finished > 0 and _progress(broker, pool) >= total,
            )
            if secs is not None:
                restart_s.append(secs)
                if not is_slow:  # (a slow one was kept down on purpose)
                    kill_to_processing_s.append(time.monotonic() - killed_at)
            seen = "not seen" if secs is None else f"after {secs:.1f} s"
            log(
                f"kill {k + 1}/{kills} of worker {slot.index}: processing again {seen}; "
                f"{_progress(broker, pool):,}/{total:,} committed"
            )
        return {
            "kills": kills,
            "kills_with_backlog": in_backlog,
            "kills_while_starting": early,
            "kills_with_rebalance": slow,
            "restart_to_processing_s": _spread(restart_s),
            "kill_to_processing_s": _spread(kill_to_processing_s),
        }

    return during


def _spread(xs: list[float]) -> dict[str, Any]:
    if not xs:
        return {"n": 0}
    return {
        "n": len(xs),
        "p50": round(pct(xs, 0.5), 2),
        "max": round(max(xs), 2),
        "over_15s": sum(x > 15 for x in xs),
    }


# -- the harness's own broker ----------------------------------------------------------


class LocalBroker:
    """A second local broker (``pulse kafka start`` with its own home and ports) to stop.

    Never the shared one: other people's tests use 9092.
    """

    def __init__(self, home: Path, port: int, controller_port: int) -> None:
        self.home = home
        self.port = port
        self.controller_port = controller_port
        self.bootstrap = f"127.0.0.1:{port}"
        self.started_here = False

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.pop("KAFKA_BOOTSTRAP_SERVERS", None)  # set, `pulse kafka` would launch nothing
        env.update(
            {
                "PULSE_HOME": str(self.home),
                "PULSE_KAFKA_PORT": str(self.port),
                "PULSE_KAFKA_CONTROLLER_PORT": str(self.controller_port),
                "PYTHONPATH": str(ROOT),
            }
        )
        from pipeline.tools.localkafka.launcher import KAFKA_VERSION

        shared = ROOT / ".pulse" / "kafka" / KAFKA_VERSION / "lib"
        if shared.is_dir() and "PULSE_KAFKA_LIB_DIR" not in env:
            env["PULSE_KAFKA_LIB_DIR"] = str(shared)  # the jars, not fetched again
        return env

    def _cli(self, action: str) -> float:
        started = time.monotonic()
        proc = subprocess.run(
            [PY, "-m", "pipeline.cli", "kafka", action],
            env=self.env(),
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )
        if proc.returncode != 0:
            raise RuntimeError(f"pulse kafka {action} on :{self.port}: {proc.stderr[-2000:]}")
        return time.monotonic() - started

    def running(self) -> bool:
        proc = subprocess.run(
            [PY, "-m", "pipeline.cli", "kafka", "status"],
            env=self.env(),
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        return proc.returncode == 0 and "running" in proc.stdout + proc.stderr

    def start(self) -> float:
        if not self.running():
            self.started_here = True
        return self._cli("start")

    def stop(self) -> float:
        return self._cli("stop")


def outage(kafka: LocalBroker, seconds: float, at_share: float = 0.5) -> During:
    """Stop the broker once ``at_share`` of the input is committed; start it ``seconds`` later."""

    def during(pool: Workers, production: Production, broker: Broker) -> dict[str, Any]:
        total = len(production.ds)
        while _progress(broker, pool) < at_share * total:
            if not pool.alive():
                raise RuntimeError(f"a worker exited before the outage:\n{pool.tails()}")
            time.sleep(0.2)
        committed = _progress(broker, pool)
        lines_before = pool.log_lines()
        broker.close()
        stop_s = kafka.stop()
        stopped_at = time.monotonic()
        log(f"broker :{kafka.port} stopped ({stop_s:.1f} s) at {committed:,}/{total:,} committed")
        time.sleep(seconds)
        lines_during = pool.log_lines() - lines_before
        alive_during = pool.alive()
        start_s = kafka.start()
        started_at = time.monotonic()
        broker.reopen()
        outage_s = started_at - stopped_at
        resumed = None
        while time.monotonic() - started_at < 300:
            if _progress(broker, pool) > committed:
                resumed = time.monotonic() - started_at
                break
            time.sleep(0.1)
        back = "NOT within 300 s" if resumed is None else f"after {resumed:.1f} s"
        log(
            f"broker back after {outage_s:.0f} s (start took {start_s:.1f} s); worker log "
            f"lines during the outage: {lines_during}; commits resumed {back}"
        )
        figures: dict[str, Any] = {}
        if resumed is None:
            figures["abort"] = "the worker did not commit again within 300 s of the broker's return"
            log(f"{figures['abort']}; its log:\n{pool.tails(12)}")
        return {
            **figures,
            "outage_s": round(outage_s, 1),
            "stopped_at_committed": committed,
            "log_lines_during_outage": lines_during,
            "lines_per_minute": round(lines_during / max(outage_s, 1) * 60, 1),
            "alive_during_outage": alive_during,
            "resumed_after_start_s": None if resumed is None else round(resumed, 1),
        }

    return during
