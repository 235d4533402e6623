"""Load for bench/bench_profiles.py: open-loop profile lookups, and events at a set rate.

:func:`load` sends lookups on an open-loop schedule (a slow answer delays none
behind it) and measures each from the time it was due; :class:`Feed` produces
records at a rate on a thread.
"""

from __future__ import annotations

import asyncio
import random
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import Producer

from bench.common import pct
from pipeline.config import Settings
from pipeline.contract.produce import kafka_producer_config


@dataclass
class Lookups:
    """Latencies (ms) by kind, and the statuses seen."""

    ms: dict[str, list[float]] = field(default_factory=dict)
    server_ms: dict[str, list[float]] = field(default_factory=dict)  # Server-Timing
    statuses: dict[int, int] = field(default_factory=dict)
    sent: int = 0
    cpu: float = 0.0  # the load generator's CPU, in cores

    def row(self, kind: str) -> str:
        xs, ws = self.ms.get(kind, []), self.server_ms.get(kind, [])
        return (f"{len(xs):,} | {pct(xs, 0.5):.1f} | {pct(xs, 0.99):.1f} | "
                f"{max(xs) if xs else float('nan'):.1f} | "
                f"{pct(ws, 0.5):.1f} / {pct(ws, 0.99):.1f}")  # fmt: skip


def load(url: str, persons: dict[str, list[str]], rate: int, seconds: float) -> Lookups:
    """``rate`` GETs a second for ``seconds``, round-robin over the kinds of ``persons``."""
    from aiohttp import ClientSession, ClientTimeout, TCPConnector

    out = Lookups()
    kinds = sorted(k for k, v in persons.items() if v)
    rnd = random.Random(5)

    async def one(session: Any, kind: str, person: str, due: float) -> None:
        timing = ""
        try:
            async with session.get(f"{url}/v1/persons/{person}") as resp:
                await resp.read()
                status = resp.status
                timing = resp.headers.get("Server-Timing", "")
        except Exception:
            status = 0
        out.statuses[status] = out.statuses.get(status, 0) + 1
        if status == 200:
            out.ms.setdefault(kind, []).append((time.perf_counter() - due) * 1000)
            if "dur=" in timing:
                out.server_ms.setdefault(kind, []).append(float(timing.split("dur=")[1]))

    async def run() -> None:
        connector = TCPConnector(limit=256)
        async with ClientSession(connector=connector, timeout=ClientTimeout(total=10)) as session:
            tasks = []
            start = time.perf_counter() + 0.1
            n = int(rate * seconds)
            for i in range(n):
                due = start + i / rate
                delay = due - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                kind = kinds[i % len(kinds)]
                tasks.append(
                    asyncio.create_task(one(session, kind, rnd.choice(persons[kind]), due))
                )
                out.sent += 1
            await asyncio.gather(*tasks)

    cpu, wall = time.thread_time(), time.perf_counter()
    asyncio.run(run())
    out.cpu = (time.thread_time() - cpu) / (time.perf_counter() - wall)
    return out


class Feed:
    """Produces ``records`` at ``rate`` a second (or as fast as possible) on a thread."""

    def __init__(self, bootstrap: str, topic: str, records: list[tuple[bytes, bytes]],
                 rate: float | None) -> None:  # fmt: skip
        self.records, self.rate, self.topic = records, rate, topic
        conf = kafka_producer_config(Settings(bootstrap_servers=bootstrap))
        conf.update({"linger.ms": 5, "queue.buffering.max.messages": 500_000})
        self.producer = Producer(conf)
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        start = time.perf_counter()
        for i, (key, value) in enumerate(self.records):
            if self.rate:
                delay = start + i / self.rate - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
            while True:
                try:
                    self.producer.produce(self.topic, key=key, value=value)
                    break
                except BufferError:
                    self.producer.poll(0.05)
            self.producer.poll(0)
        self.producer.flush(60)

    def start(self) -> Feed:
        self.thread.start()
        return self

    def join(self) -> None:
        self.thread.join()
