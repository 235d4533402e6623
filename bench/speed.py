"""The speed half of the harness: one workload through raw Kafka, Quix Streams and Pulse.

Rows (keys in brackets are what the ratios use):

* ``a`` raw confluent-kafka consume + decode (bare fastavro [a], and
  ``pipeline.contract.wire.decode_event``), a count per person in a dict;
* ``c`` Quix Streams counting per person in its RocksDB state, at its default
  at-least-once [c] and with exactly-once [c-eos];
* ``p`` the same per-person count on Pulse's runtime (``bench.pulse_count``),
  exactly_once [p] and at_least_once [p-alo], and 2 workers [p-x2];
* ``d`` ``pulse worker --topology topologies/commerce.yaml`` (identity on) [d],
  and 2 workers [d-x2] when asked;
* latency: immediate and absence triggers at half of d's rate, at_least_once
  and exactly_once (``bench/latency.py``).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import state as rstate
from bench.common import PY, ROOT, Proc, broker_pid, events_in, handed_over, log
from bench.dataset import Production
from bench.kafkautil import Broker
from bench.procstat import CpuSampler, dir_bytes, peak_rss_mb
from bench.workers import Workers
from bench.workload import Workload, build, produce


@dataclass
class Row:
    system: str
    key: str = ""
    events_per_s: float = 0.0
    seconds: float = 0.0
    counted: int = 0
    expected: int = 0
    rss_mb: list[float] = field(default_factory=list)
    state_bytes_per_person: float | None = None
    value_bytes: float | None = None
    cpu: dict[str, float] = field(default_factory=dict)
    note: str = ""

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


class Speed:
    def __init__(self, args: argparse.Namespace, run_id: str, workdir: Path) -> None:
        self.args = args
        self.bootstrap = args.bootstrap
        self.broker = Broker(self.bootstrap)
        self.run_id = run_id
        self.workdir = workdir
        self.logdir = workdir / "logs"
        self.logdir.mkdir(parents=True, exist_ok=True)
        self.bpid = broker_pid(self.bootstrap)
        self.rows: list[Row] = []
        self.extra: dict[str, Any] = {}
        self.latency_runs = 0

    def env(self, **extra: str) -> dict[str, str]:
        env = dict(os.environ)
        env.update({"PYTHONPATH": str(ROOT), "KAFKA_BOOTSTRAP_SERVERS": self.bootstrap})
        env.update(extra)
        return env

    def sampler(self, pids: dict[str, int]) -> CpuSampler:
        if self.bpid:
            pids = {**pids, "broker": self.bpid}
        return CpuSampler(pids).start()

    def row(self, name: str, key: str, n: int, first: float, last: float, sam: CpuSampler) -> Row:
        """``first``/``last``: wall-clock seconds of the first and last processed record."""
        secs = max(last - first, 1e-6)
        off = time.monotonic() - time.time()
        r = Row(name, key, events_per_s=n / secs, seconds=secs, counted=n, expected=n)
        r.rss_mb = [round(v, 1) for k, v in sorted(sam.peak.items()) if k != "broker"]
        r.cpu = {k: round(v, 2) for k, v in sam.usage(first + off, last + off).items()}
        return r

    # -- a: raw consume + decode -----------------------------------------------------------

    def raw(self, w: Workload, topic: str) -> None:
        for mode, key, name in (
            ("fast", "a", "a raw consume + fastavro"),
            ("wire", "a-wire", "a raw consume + decode_event"),
        ):
            argv = [PY, "-m", "bench.raw_consume", self.bootstrap, topic, str(len(w)), mode]
            proc = Proc(f"a-{mode}", argv, self.env(), self.logdir)
            sam = self.sampler({proc.name: proc.pid})
            proc.p.wait(900)
            sam.stop()
            proc.stop()
            out = json.loads(proc.log.read_text().strip().splitlines()[-1])
            r = self.row(name, key, out["count"], out["first"], out["last"], sam)
            r.counted = out["sum"]
            r.rss_mb = [round(sam.peak.get(proc.name) or peak_rss_mb(proc.pid) or 0.0, 1)]
            self.rows.append(r)
            log(f"{name}: {r.events_per_s:,.0f} ev/s")

    # -- c: Quix Streams -------------------------------------------------------------------

    def quix(self, w: Workload, topic: str, guarantee: str) -> None:
        tag = "eos" if guarantee == "exactly-once" else "alo"
        group = f"{self.run_id}-quix-{tag}"
        datadir = self.workdir / f"quix-{tag}"
        stats = self.workdir / f"quix-{tag}.json"
        env = self.env(
            BENCH_BOOTSTRAP=self.bootstrap,
            BENCH_TOPIC=topic,
            BENCH_APP=group,
            BENCH_DATADIR=str(datadir),
            BENCH_STATS=str(stats),
            BENCH_QUIX_GUARANTEE=guarantee,
        )
        proc = Proc(f"quix-{tag}", [PY, "-m", "bench.quix_count"], env, self.logdir)
        sam = self.sampler({proc.name: proc.pid})
        try:
            self.broker.wait_lag_zero(group, [topic], timeout_s=self.args.timeout, alive=proc.alive)
            time.sleep(1.0)
            st = json.loads(stats.read_text())
        except Exception:
            log(f"quix failed; its log:\n{proc.tail()}")
            raise
        finally:
            sam.stop()
            proc.stop()
        name = f"c Quix Streams count, {guarantee}"
        r = self.row(
            name, "c" if tag == "alo" else "c-eos", st["count"], st["first"], st["last"], sam
        )
        counts = rstate.quix_counts(datadir)
        r.counted = sum(counts.values())
        r.state_bytes_per_person = dir_bytes(datadir) / max(len(counts), 1)
        r.value_bytes = sum(len(str(v)) for v in counts.values()) / max(len(counts), 1)
        r.note = f"{len(counts)} keys"
        self.rows.append(r)
        log(f"{name}: {r.events_per_s:,.0f} ev/s, counted {r.counted}/{len(w)}")

    # -- p, d: Pulse's runtime -------------------------------------------------------------

    def pulse(
        self,
        w: Workload,
        *,
        name: str,
        key: str,
        workers: int,
        guarantee: str = "exactly_once",
        count: bool = False,
    ) -> Row:
        prefix = f"{self.run_id}{key.replace('-', '')}."
        self.broker.create_topic(prefix + "events")
        pool = Workers(
            self.bootstrap,
            prefix,
            self.workdir,
            topology=None if count else self.args.topology,
            guarantee=guarantee,
            module="bench.pulse_count" if count else "pipeline.cli",
        )
        inputs = [prefix + "events", prefix + "events.by-person"]
        pool.start(workers)
        sam = self.sampler({f"w{s.index}": s.proc.pid for s in pool.slots if s.proc})
        first = 0.0
        try:
            # every worker has its final partitions before the data comes, so x2
            # measures two workers, not one plus a rebalance
            pool.wait_assigned()
            pool.wait_stable()
            production = Production(self.bootstrap, prefix + "events", w).start()
            deadline = time.monotonic() + self.args.timeout
            while not first:
                if time.monotonic() > deadline or not pool.alive():
                    raise RuntimeError(f"{name}: no record processed\n{pool.tails()}")
                if events_in(pool.ports, prefix + "events") > 0:
                    first = time.time()
                time.sleep(0.05)
            production.join()
            self.broker.wait_lag_zero(
                pool.group, inputs, timeout_s=self.args.timeout, alive=pool.alive, interval_s=0.1
            )
            last = time.time()
            by_person = events_in(pool.ports, prefix + "events.by-person")
            handed = handed_over(pool.ports)
            consumed = events_in(pool.ports, prefix + "events")
        except Exception:
            log(f"{name} failed:\n{pool.tails()}")
            raise
        finally:
            sam.stop()
            pool.stop()
        r = self.row(name, key, len(w), first, last, sam)
        persons = rstate.pulse_persons(pool.home)
        r.state_bytes_per_person = dir_bytes(pool.home) / max(len(persons), 1)
        r.value_bytes = sum(map(len, persons.values())) / max(len(persons), 1)
        if count:
            r.counted = sum(rstate.pulse_counts(pool.home).values())
            r.expected = self.expected_count(w)
        else:
            r.counted = consumed
        r.note = (
            f"{len(persons)} persons; {by_person:,} re-keyed records consumed, "
            f"{handed:,} handed over in process"
        )
        self.rows.append(r)
        log(f"{name}: {r.events_per_s:,.0f} ev/s ({r.seconds:.1f} s), counted {r.counted}")
        shutil.rmtree(pool.home, ignore_errors=True)
        return r

    def expected_count(self, w: Workload) -> int:
        """The count replay gives: late events (beyond 5 s) and duplicates are not counted."""
        if "expected_count" not in self.extra:
            from bench.pulse_count import CountOperator
            from pipeline.contract.wire import decode_event
            from pipeline.core.engine import MemoryStore, Processor
            from pipeline.tools.replay import replay_events

            events = [decode_event(v) for v in w.values]
            store = MemoryStore()
            proc = Processor([CountOperator()], allowed_lateness_ms=5000, store=store)
            end_ms = max(e.timestamp_ms for e in events)
            replay_events(
                events, [], allowed_lateness_ms=5000, processor=proc, identity=None, end_ms=end_ms
            )
            self.extra["expected_count"] = sum(s.get("count", 0) for s in store.data.values())
        return int(self.extra["expected_count"])

    def latency(
        self, rate: float, guarantee: str, settings: dict[str, str] | None = None
    ) -> dict[str, Any]:
        """One worker at ``rate``; ``settings``: extra ``PULSE_*`` variables to try."""
        from bench import latency
        from bench.workload import warm_workload

        self.latency_runs += 1
        tag = ("eos" if guarantee == "exactly_once" else "alo") + str(self.latency_runs)
        prefix = f"{self.run_id}lat{tag}."
        self.broker.create_topic(prefix + "events")
        pool = Workers(
            self.bootstrap,
            prefix,
            self.workdir,
            topology=self.args.topology,
            guarantee=guarantee,
            env=settings,
        )
        pool.start(1)
        try:
            produce(self.bootstrap, prefix + "events", warm_workload())
            self.broker.wait_lag_zero(
                pool.group,
                [prefix + "events", prefix + "events.by-person"],
                timeout_s=120,
                alive=pool.alive,
            )
            res = latency.run(
                self.bootstrap,
                prefix,
                rate=rate,
                seconds=self.args.latency_seconds,
                lateness_ms=pool.lateness_ms,
            )
        finally:
            pool.stop()
        out = latency.summary(res)
        out["guarantee"] = guarantee
        out["settings"] = settings or {}
        log(f"latency {guarantee} {settings or ''} at {rate:,.0f} ev/s: {out}")
        return out

    # -- the run ---------------------------------------------------------------------------

    def run(self, only: set[str]) -> dict[str, Any]:
        a = self.args
        log(f"speed: building {a.events} events over ~{a.people} people")
        w = build(a.events, a.people)
        topic = f"{self.run_id}.events"
        self.broker.create_topic(topic)
        secs = produce(self.bootstrap, topic, w)
        log(f"produced {len(w)} records to {topic} in {secs:.1f} s")
        self.extra["workload"] = {
            "events": len(w),
            "keys": w.people,
            "persons": w.persons,
            "checkouts": w.checkouts,
            "avg_bytes": round(sum(map(len, w.values)) / len(w)),
        }
        if "a" in only:
            self.raw(w, topic)
        if "c" in only:
            self.quix(w, topic, "at-least-once")
            self.quix(w, topic, "exactly-once")
        if "p" in only:
            self.pulse(w, name="p Pulse count x1, exactly_once", key="p", workers=1, count=True)
            self.pulse(
                w,
                name="p Pulse count x1, at_least_once",
                key="p-alo",
                workers=1,
                count=True,
                guarantee="at_least_once",
            )
            self.pulse(w, name="p Pulse count x2, exactly_once", key="p-x2", workers=2, count=True)
        if "d" in only:
            d = self.pulse(w, name="d Pulse commerce x1, exactly_once", key="d", workers=1)
            if a.commerce_x2:
                self.pulse(w, name="d Pulse commerce x2, exactly_once", key="d-x2", workers=2)
            if a.latency_seconds > 0:
                rate = a.latency_rate or d.events_per_s / 2
                self.extra["latency"] = [
                    self.latency(rate, "at_least_once"),
                    self.latency(rate, "exactly_once"),
                    # what bounds the exactly_once trigger: it is seen once its
                    # transaction commits, every PULSE_COMMIT_INTERVAL_MS
                    self.latency(rate, "exactly_once", {"PULSE_COMMIT_INTERVAL_MS": "50"}),
                ]
        return {"rows": [r.as_dict() for r in self.rows], **self.extra}

    def cleanup(self) -> None:
        if not self.args.keep:
            names = {t for t in self.broker.topics() if self.run_id in t}
            self.broker.delete_topics(names)
        self.broker.close()
