"""Core and topology figures (issues 4 and 5) in one run.

    python -m bench.bench_core [--people 1500] [--tiny] [--results FILE|''] [--json FILE]

In-process (no Kafka), over a synthetic week (``SyntheticConfig(people=P, days=7)``):

* ``pulse replay`` events/s: ``pipeline.replay.replay_events`` with the built-in
  topology and with ``topologies/commerce.yaml`` (includes the final flush to +inf);
* state bytes per person after the week: a ``Processor`` over a ``MemoryStore``
  driven to the last event, *without* the flush, then
  ``len(encode_state(state))`` per person (mean, p50, p99, max).

On the broker (``KAFKA_BOOTSTRAP_SERVERS`` or 127.0.0.1:9092), each with a fresh
``PULSE_TOPIC_PREFIX`` and its own ``pulse worker`` subprocess:

* behavior agent events/s: ``pulse worker`` (built-in topology), then
  ``pulse worker --topology topologies/commerce.yaml``, on the same week produced
  to ``<prefix>events`` beforehand. Measured from the first to the last by-person
  data record processed: the worker's ``pulse_events_in_total{topic=
  "<prefix>events.by-person"}`` counter, scraped every 0.1 s;
* immediate trigger latency (commerce): a steady background (another synthetic
  week at its own event times) at half the commerce throughput (capped), plus every
  100 ms a ``logged_in`` of a brand-new user (``first_login`` fires at once; the
  user's time zone is chosen so the event is at local noon, outside quiet hours).
  Latency = produce call of the probe -> its trigger (matched by ``event_ids``)
  read on ``<prefix>triggers`` by a consumer polling continuously;
* absence deadline -> trigger delay (commerce, ``checkout_abandoned``): a
  ``checkout_started`` of a fresh person at T, acked, then one ``page_viewed`` at
  T + 30 min + allowed lateness on *each* source partition (keys chosen with the
  murmur2 partitioner). Delay = delivery ack of the last of those -> trigger
  arrival. Repeated sequentially.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.kafkautil import Broker
from bench.procstat import CpuSampler, machine
from bench.run import Proc, broker_pid, free_port, git_commit, kafka_version
from bench.workload import Workload, produce

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "RESULTS.md"
COMMERCE = "topologies/commerce.yaml"
PY = sys.executable
PARTITIONS = 4
HOUR_MS = 3_600_000
WITHIN_MS = 30 * 60_000  # checkout_abandoned in commerce.yaml
HEADING = "Core and topology (issues 4 and 5)"


def log(msg: str) -> None:
    print(f"[bench_core {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def pct(xs: list[float], q: float) -> float:
    """Nearest-rank percentile (q=0.99 of 20 samples is the largest)."""
    if not xs:
        return float("nan")
    s = sorted(xs)
    return s[min(len(s) - 1, int(q * len(s)))]


def week(people: int, seed: int = 7) -> list[Any]:
    from pipeline.synthetic import SyntheticConfig, generate

    return generate(SyntheticConfig(seed=seed, people=people, days=7)).events


# -- in-process -------------------------------------------------------------------


def replay_rate(events: list[Any], topology: str | None, lateness_ms: int) -> dict[str, Any]:
    from pipeline.replay import replay_events
    from pipeline.topology import load

    topo = load(topology)
    started = time.perf_counter()
    outputs = replay_events(
        events, topo.operators, allowed_lateness_ms=lateness_ms, stage=topo.stage
    )
    secs = time.perf_counter() - started
    return {"events_per_s": len(events) / secs, "seconds": secs, "outputs": len(outputs)}


def state_sizes(events: list[Any], topology: str | None, lateness_ms: int) -> dict[str, Any]:
    """Person state after the last event (no flush to +inf), encoded as the table stores it."""
    from pipeline.core.engine import MemoryStore, Processor
    from pipeline.records import encode_state
    from pipeline.topology import load

    topo = load(topology)
    store = MemoryStore()
    proc = Processor(topo.operators, allowed_lateness_ms=lateness_ms, store=store, stage=topo.stage)
    for event in events:
        proc.process(event)
    sizes = [float(len(encode_state(state))) for state in store.data.values()]
    return {
        "persons": len(sizes),
        "mean": sum(sizes) / max(len(sizes), 1),
        "p50": pct(sizes, 0.5),
        "p99": pct(sizes, 0.99),
        "max": max(sizes, default=0.0),
        "total_bytes": int(sum(sizes)),
        "pending_timers": proc.pending_timers,
    }


# -- broker helpers ---------------------------------------------------------------


def workload_of(events: list[Any]) -> Workload:
    from pipeline.produce import partition_key
    from pipeline.wire import encode_event

    keys = [partition_key(e) for e in events]
    return Workload(
        keys,
        [encode_event(e) for e in events],
        people=len(set(keys)),
        persons=len({e.person_id for e in events}),
        checkouts=sum(e.event == "checkout_started" for e in events),
    )


def key_on_partition(partition: int, tag: str) -> str:
    """A key the murmur2 partitioner (Java client, aiokafka, ``murmur2_random``) puts on
    ``partition`` of a ``PARTITIONS``-partition topic."""
    from aiokafka.partitioner import DefaultPartitioner

    part = DefaultPartitioner()
    every = list(range(PARTITIONS))
    for i in range(100_000):
        key = f"{tag}-{i}"
        if part(key.encode(), every, every) == partition:
            return key
    raise AssertionError("no key found")  # pragma: no cover


def tz_for_noon(ts_ms: int) -> str:
    """A fixed-offset IANA zone in which ``ts_ms`` is between 12:00 and 13:00 local."""
    hour = datetime.fromtimestamp(ts_ms / 1000, tz=UTC).hour
    k = 12 - hour  # UTC+k; Etc/GMT signs are inverted
    return "Etc/GMT" if k == 0 else f"Etc/GMT-{k}" if k > 0 else f"Etc/GMT+{-k}"


def make_event(mid: str, name: str, ts: int, user: str, **extra: Any) -> Any:
    from pipeline.core.events import event_from_json

    obj = {"messageId": mid, "type": "track", "event": name, "userId": user, "timestamp": ts}
    obj.update(extra)
    return event_from_json(obj)


class TriggerWatch:
    """Reads ``<prefix>triggers`` (and ``.suppressed``) continuously in a thread and
    notes when each record arrived, by the id of its first causing event."""

    def __init__(self, bootstrap: str, prefix: str) -> None:
        from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

        self.prefix = prefix
        self.received: dict[str, float] = {}
        self.emitted: dict[str, float] = {}  # the worker's pulse-emitted-at-ms header
        self.suppressed: dict[str, str] = {}
        self.count = 0
        self._stop = threading.Event()
        self.consumer = Consumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": f"bench-core-{uuid.uuid4().hex[:6]}",
                "enable.auto.commit": False,
                "fetch.wait.max.ms": 5,
            }
        )
        self.consumer.assign(
            [
                TopicPartition(f"{prefix}{t}", p, OFFSET_BEGINNING)
                for t in ("triggers", "triggers.suppressed")
                for p in range(PARTITIONS)
            ]
        )
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    def _loop(self) -> None:
        from pipeline.topics import decode_output

        while not self._stop.is_set():
            msg = self.consumer.poll(0.05)
            if msg is None or msg.error() is not None:
                continue
            now = time.time()
            logical = msg.topic()[len(self.prefix) :]
            record = decode_output(logical, msg.value())
            first = record["event_ids"][0]
            if logical == "triggers":
                self.count += 1
                self.received.setdefault(first, now)
                for key, value in msg.headers() or []:
                    if key == "pulse-emitted-at-ms" and value:
                        self.emitted.setdefault(first, int(value) / 1000)
            else:
                self.suppressed.setdefault(first, record.get("reason", "?"))

    def wait_for(self, mid: str, timeout_s: float) -> float | None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            got = self.received.get(mid)
            if got is not None:
                return got
            time.sleep(0.002)
        return None

    def close(self) -> None:
        self._stop.set()
        self.thread.join()
        self.consumer.close()


@dataclass
class WorkerRun:
    procs: list[Proc]
    port: int
    prefix: str


# -- the run ----------------------------------------------------------------------


class CoreBench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.bootstrap = args.bootstrap
        self.broker = Broker(self.bootstrap)
        self.run_id = f"core{datetime.now(UTC):%m%d%H%M%S}{uuid.uuid4().hex[:4]}"
        self.workdir = Path(tempfile.mkdtemp(prefix=f"{self.run_id}-"))
        self.logdir = self.workdir / "logs"
        self.logdir.mkdir()
        self.bpid = broker_pid(self.bootstrap)
        self.lateness_ms = args.lateness_ms
        self.result: dict[str, Any] = {"run": self.run_id}

    def env(self, **extra: str) -> dict[str, str]:
        env = dict(os.environ)
        env.update({"PYTHONPATH": str(ROOT), "KAFKA_BOOTSTRAP_SERVERS": self.bootstrap})
        env.update(extra)
        return env

    def start_worker(self, prefix: str, topology: str | None) -> WorkerRun:
        port = free_port()
        env = self.env(
            PULSE_TOPIC_PREFIX=prefix,
            PULSE_HOME=str(self.workdir / prefix),
            PULSE_IDLE_ADVANCE_MS="0",
            PULSE_ALLOWED_LATENESS_MS=str(self.lateness_ms),
            PULSE_METRICS_PORT=str(port),
        )
        argv = [PY, "-m", "pipeline.cli", "worker", "--partitions", str(PARTITIONS)]
        argv += ["--loglevel", "info"]
        if topology:
            argv += ["--topology", topology]
        return WorkerRun([Proc(prefix.rstrip("."), argv, env, self.logdir)], port, prefix)

    def by_person_in(self, w: WorkerRun) -> int:
        from bench.run import Bench

        return Bench.events_in([w.port], f"{w.prefix}events.by-person")

    def stop(self, w: WorkerRun, failed: bool = False) -> None:
        for p in w.procs:
            if failed or not p.alive():
                log(f"{p.name} log:\n{p.tail()}")
            p.stop()

    # -- 1. in-process ----------------------------------------------------------------

    def in_process(self, events: list[Any]) -> None:
        out: dict[str, Any] = {}
        for label, topo in (("builtin", None), ("commerce", COMMERCE)):
            rate = replay_rate(events, topo, self.lateness_ms)
            sizes = state_sizes(events, topo, self.lateness_ms)
            out[label] = {"replay": rate, "state": sizes}
            log(
                f"replay {label}: {rate['events_per_s']:,.0f} ev/s; state B/person mean "
                f"{sizes['mean']:.0f} p50 {sizes['p50']:.0f} p99 {sizes['p99']:.0f} "
                f"max {sizes['max']:.0f} over {sizes['persons']} persons"
            )
        self.result["in_process"] = out

    # -- 2. worker throughput ------------------------------------------------------------

    def throughput(self, wl: Workload, label: str, topology: str | None) -> dict[str, Any]:
        prefix = f"{self.run_id}{label[0]}."
        events = f"{prefix}events"
        self.broker.create_topic(events, PARTITIONS)
        produce(self.bootstrap, events, wl)
        n = len(wl)
        w = self.start_worker(prefix, topology)
        pids = {"worker": w.procs[0].pid}
        if self.bpid:
            pids["broker"] = self.bpid
        sam = CpuSampler(pids).start()
        first: tuple[float, int] | None = None
        last: tuple[float, int] | None = None
        failed = True
        try:
            deadline = time.monotonic() + self.args.timeout
            while time.monotonic() < deadline:
                if not w.procs[0].alive():
                    raise RuntimeError(f"the {label} worker exited")
                count = self.by_person_in(w)
                now = time.monotonic()
                if count > 0 and first is None:
                    first = (now, count)
                if count >= n:
                    last = (now, count)
                    break
                time.sleep(0.1)
            if first is None or last is None:
                raise TimeoutError(f"{label} worker: {self.by_person_in(w)}/{n} after timeout")
            failed = False
        finally:
            sam.stop()
            self.stop(w, failed)
        secs = max(last[0] - first[0], 1e-6)
        cpu = sam.usage(first[0], last[0])
        row = {
            "events": n,
            "events_per_s": (last[1] - first[1]) / secs,
            "seconds": secs,
            "worker_cores": round(cpu.get("worker", 0.0), 2),
            "broker_cores": round(cpu.get("broker", 0.0), 2),
        }
        log(f"worker {label}: {row['events_per_s']:,.0f} ev/s over {secs:.1f} s ({n} events)")
        return row

    # -- 3. latency ---------------------------------------------------------------------

    def latency(self, rate: float) -> None:
        from confluent_kafka import Producer

        from pipeline.config import Settings
        from pipeline.produce import kafka_producer_config, partition_key
        from pipeline.wire import encode_event

        prefix = f"{self.run_id}l."
        topic = f"{prefix}events"
        for t in ("events", "triggers", "triggers.suppressed"):
            self.broker.create_topic(f"{prefix}{t}", PARTITIONS)
        background = week(self.args.background_people, seed=11)
        tag = f"{self.run_id}"
        clock_keys = [key_on_partition(p, f"{tag}-clock") for p in range(PARTITIONS)]
        producer = Producer(kafka_producer_config(Settings(bootstrap_servers=self.bootstrap)))
        errors: list[str] = []

        def send(event: Any, cb: Any = None) -> None:
            producer.produce(
                topic, key=partition_key(event), value=encode_event(event), on_delivery=cb
            )

        def clock(ts: int, label: str) -> float:
            """One page_viewed at ``ts`` on every source partition; the last ack's time."""
            got: list[float] = []

            def cb(err: Any, _msg: Any) -> None:
                if err is not None:
                    errors.append(str(err))
                got.append(time.time())

            for p, key in enumerate(clock_keys):
                send(make_event(f"{tag}-{label}-{p}", "page_viewed", ts, key), cb)
            if producer.flush(30) or errors or len(got) != PARTITIONS:
                raise RuntimeError(f"clock records not delivered: {errors[:1]}")
            return max(got)

        w = self.start_worker(prefix, COMMERCE)
        watch = TriggerWatch(self.bootstrap, prefix)
        failed = True
        try:
            # Warm-up: every source partition reports a stream time; the worker is assigned.
            t_bg0 = min(e.timestamp_ms for e in background[:100]) - 60_000
            clock(t_bg0, "warm")
            deadline = time.monotonic() + 120
            while self.by_person_in(w) < PARTITIONS:
                if not w.procs[0].alive() or time.monotonic() > deadline:
                    raise RuntimeError("latency worker did not start")
                time.sleep(0.2)
            self.result["immediate"] = self._immediate(producer, send, watch, background, rate, tag)
            # Flush the background's pending timers far past it, then absence probes.
            t_last = max(e.timestamp_ms for e in background)
            day = (t_last // (24 * HOUR_MS) + 1) * 24 * HOUR_MS
            clock(day + 6 * HOUR_MS, "flush")
            self.broker.wait_lag_zero(
                prefix.rstrip("."),
                [topic, f"{prefix}events.by-person"],
                timeout_s=120,
                alive=w.procs[0].alive,
            )
            self.result["absence"] = self._absence(
                producer, send, clock, watch, day + 8 * HOUR_MS, tag
            )
            failed = False
        finally:
            watch.close()
            self.stop(w, failed)

    def _immediate(
        self, producer: Any, send: Any, watch: TriggerWatch, bg: list[Any], rate: float, tag: str
    ) -> dict[str, Any]:
        seconds = self.args.latency_seconds
        sent_at: dict[str, float] = {}
        acked: dict[str, float] = {}

        def on_ack(err: Any, msg: Any) -> None:
            if err is None:
                acked[msg.key().decode()] = time.time()

        t0 = time.time()
        n = 0
        probes = 0
        max_ts = bg[0].timestamp_ms
        next_probe = t0 + 0.1
        while True:
            now = time.time()
            if now - t0 >= seconds:
                break
            if now >= next_probe:
                user = f"{tag}-new-{probes}"
                ev = make_event(
                    user,
                    "logged_in",
                    max_ts,
                    user,
                    context={"timezone": tz_for_noon(max_ts)},
                )
                sent_at[user] = time.time()
                send(ev, on_ack)
                probes += 1
                next_probe += 0.1
                producer.poll(0)
                continue
            due = t0 + n / rate
            if due > now or n >= len(bg):
                producer.poll(0)
                time.sleep(max(0.0, min(due - now, next_probe - now, 0.005)))
                continue
            ev = bg[n]
            max_ts = max(max_ts, ev.timestamp_ms)
            send(ev)
            n += 1
            producer.poll(0)
        producer.flush(30)
        wait_until = time.monotonic() + 5
        while time.monotonic() < wait_until and not all(m in watch.received for m in sent_at):
            time.sleep(0.05)
        lat = [(watch.received[m] - t) * 1000 for m, t in sent_at.items() if m in watch.received]
        to_emit = [(watch.emitted[m] - t) * 1000 for m, t in sent_at.items() if m in watch.emitted]
        lat_ack = [
            (watch.received[m] - acked[m]) * 1000
            for m in sent_at
            if m in watch.received and m in acked
        ]
        out = {
            "rate": rate,
            "achieved_rate": n / seconds,
            "background": n,
            "probes": probes,
            "measured": len(lat),
            "suppressed": sum(m in watch.suppressed for m in sent_at),
            "p50_ms": pct(lat, 0.5),
            "p99_ms": pct(lat, 0.99),
            "p50_from_ack_ms": pct(lat_ack, 0.5),
            "p99_from_ack_ms": pct(lat_ack, 0.99),
            "p50_to_emit_ms": pct(to_emit, 0.5),
            "triggers_seen": watch.count,
        }
        log(f"immediate: {json.dumps({k: round(v, 1) for k, v in out.items()})}")
        return out

    def _absence(
        self, producer: Any, send: Any, clock: Any, watch: TriggerWatch, t0: int, tag: str
    ) -> dict[str, Any]:
        """Probes in pairs: the records past the deadline go out right after the
        ``checkout_started`` is acked (as specified), or after a 100 ms pause ("quiet":
        ingest's 50 ms minimum between watermark reports of a source has passed)."""
        delays: dict[str, list[float]] = {"now": [], "quiet": []}
        to_emit: dict[str, list[float]] = {"now": [], "quiet": []}  # until the worker emitted
        missed: list[str] = []
        step = WITHIN_MS + self.lateness_ms + 60_000
        for i in range(2 * self.args.absence_probes):
            variant = "quiet" if i % 2 else "now"
            t = t0 + i * step
            person = f"{tag}-abs-{i}"
            start = make_event(
                person, "checkout_started", t, person,
                properties={"checkout_id": person, "value": 10.0},
                context={"timezone": tz_for_noon(t + WITHIN_MS)},  # outside quiet hours
            )  # fmt: skip
            send(start)
            if producer.flush(30):
                raise RuntimeError("checkout_started not delivered")
            if variant == "quiet":
                time.sleep(0.1)
            last_ack = clock(t + WITHIN_MS + self.lateness_ms, f"abs-{i}")
            got = watch.wait_for(person, 15.0)
            if got is None:
                missed.append(person)
                log(f"absence probe {i}: no trigger (suppressed: {watch.suppressed.get(person)})")
            else:
                delays[variant].append((got - last_ack) * 1000)
                if person in watch.emitted:
                    to_emit[variant].append((watch.emitted[person] - last_ack) * 1000)
            time.sleep(0.3)

        def stats(variant: str) -> dict[str, Any]:
            xs = delays[variant]
            return {
                "probes": self.args.absence_probes,
                "measured": len(xs),
                "p50_ms": pct(xs, 0.5),
                "p99_ms": pct(xs, 0.99),
                "max_ms": max(xs, default=float("nan")),
                "p50_to_emit_ms": pct(to_emit[variant], 0.5),
                "delays_ms": [round(d, 1) for d in xs],
            }

        out = {**stats("now"), "missed": len(missed), "quiet": stats("quiet")}
        log(
            f"absence: p50 {out['p50_ms']:.1f} ms, p99 {out['p99_ms']:.1f} ms; after a pause: "
            f"p50 {out['quiet']['p50_ms']:.1f} ms, p99 {out['quiet']['p99_ms']:.1f} ms; "
            f"{len(missed)} missed"
        )
        return out

    # -- all -----------------------------------------------------------------------------

    def run(self) -> dict[str, Any]:
        a = self.args
        started = time.monotonic()
        events = week(a.people)
        self.result["workload"] = {
            "people": a.people,
            "days": 7,
            "events": len(events),
            "persons": len({e.person_id for e in events}),
        }
        log(f"run {self.run_id}: synthetic week of {a.people} people, {len(events)} events")
        self.in_process(events)
        try:
            wl = workload_of(events)
            self.result["worker"] = {
                "builtin": self.throughput(wl, "builtin", None),
                "commerce": self.throughput(wl, "commerce", COMMERCE),
            }
            rate = min(self.result["worker"]["commerce"]["events_per_s"] / 2, a.max_rate)
            self.latency(rate)
        finally:
            self.cleanup()
        self.result["seconds"] = time.monotonic() - started
        self.write_results()
        return self.result

    def cleanup(self) -> None:
        if self.args.keep:
            log(f"kept {self.workdir} and the {self.run_id}* topics")
        else:
            self.broker.delete_topics(t for t in self.broker.topics() if t.startswith(self.run_id))
            shutil.rmtree(self.workdir, ignore_errors=True)
        self.broker.close()

    def write_results(self) -> None:
        text = render(self.result, self.args, self.bootstrap)
        print(text)
        if self.args.results:
            path = Path(self.args.results)
            if not path.exists():
                path.write_text("# Pulse benchmark results\n")
            with path.open("a") as fh:
                fh.write("\n" + text)
        if self.args.json:
            Path(self.args.json).write_text(json.dumps(self.result, indent=1))


def render(result: dict[str, Any], args: argparse.Namespace, bootstrap: str) -> str:
    m = machine()
    wl = result["workload"]
    ip = result["in_process"]
    wk = result["worker"]
    im = result["immediate"]
    ab = result["absence"]
    lines = [
        f"## {HEADING}: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, commit {git_commit()}"
        + (f" ({args.label})" if args.label else ""),
        "",
        f"Machine: {m['cores']} cores, {m['ram']} RAM, {m['cpu']}; Python {m['python']}; "
        f"broker {kafka_version(bootstrap)} at {bootstrap} (shares the cores). "
        f"Workload: synthetic week (`SyntheticConfig(people={wl['people']}, days=7)`), "
        f"{wl['events']} events of {wl['persons']} persons, 4 partitions; allowed lateness "
        f"{args.lateness_ms} ms. `python -m bench.bench_core"
        + (" --tiny" if args.tiny else "")
        + f"`, run `{result['run']}`, {result['seconds']:.0f} s.",
        "",
        "| figure | built-in topology | commerce topology | how |",
        "|---|---:|---:|---|",
    ]

    def row(name: str, b: str, c: str, how: str) -> None:
        lines.append(f"| {name} | {b} | {c} | {how} |")

    rb, rc = ip["builtin"]["replay"], ip["commerce"]["replay"]
    row(
        "`pulse replay` in-process, events/s",
        f"{rb['events_per_s']:,.0f}",
        f"{rc['events_per_s']:,.0f}",
        "`replay_events` over the week incl. the flush to +inf",
    )
    sb, sc = ip["builtin"]["state"], ip["commerce"]["state"]
    for key in ("mean", "p50", "p99", "max"):
        row(
            f"state B/person after the week, {key}",
            f"{sb[key]:,.0f}",
            f"{sc[key]:,.0f}",
            f"`encode_state` per person, no flush ({sb['persons']} persons)"
            if key == "mean"
            else "",
        )
    wb, wc = wk["builtin"], wk["commerce"]
    row(
        "`pulse worker` (behavior agent) events/s, local broker",
        f"{wb['events_per_s']:,.0f}",
        f"{wc['events_per_s']:,.0f}",
        f"first to last by-person record processed ({wb['events']} events; worker cores "
        f"{wb['worker_cores']:.2f} / {wc['worker_cores']:.2f}, broker "
        f"{wb['broker_cores']:.2f} / {wc['broker_cores']:.2f})",
    )
    row(
        "immediate trigger latency p50 / p99, ms",
        "",
        f"{im['p50_ms']:.1f} / {im['p99_ms']:.1f}",
        f"`first_login` of a new user, produce call -> arrival on triggers; "
        f"{im['measured']}/{im['probes']} probes at 10/s over a "
        f"{im['achieved_rate']:,.0f} ev/s background (target {im['rate']:,.0f}); "
        f"from the ack: {im['p50_from_ack_ms']:.1f} / {im['p99_from_ack_ms']:.1f}; "
        f"p50 until the worker emitted it: {im['p50_to_emit_ms']:.1f}",
    )
    aq = ab["quiet"]
    row(
        "absence deadline -> trigger delay p50 / p99, ms",
        "",
        f"{ab['p50_ms']:.1f} / {ab['p99_ms']:.1f}",
        f"`checkout_abandoned`: `checkout_started` acked, then at once a record past the "
        f"deadline on each source partition; ack of the last -> arrival on triggers; "
        f"{ab['measured']}/{ab['probes']} probes, max {ab['max_ms']:.1f}; p50 until the worker "
        f"emitted it: {ab['p50_to_emit_ms']:.1f}",
    )
    row(
        "same, 100 ms pause before the deadline records, p50 / p99, ms",
        "",
        f"{aq['p50_ms']:.1f} / {aq['p99_ms']:.1f}",
        f"ingest reports a source partition's stream time at most every 50 ms inline, else "
        f"on its 0.2 s timer; {aq['measured']}/{aq['probes']} probes, max {aq['max_ms']:.1f}; "
        f"p50 until emitted: {aq['p50_to_emit_ms']:.1f}",
    )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.bench_core", description=__doc__)
    p.add_argument("--people", type=int, default=2000, help="people of the synthetic week")
    p.add_argument("--background-people", type=int, default=3000, help="latency background")
    p.add_argument("--latency-seconds", type=float, default=30.0)
    p.add_argument("--absence-probes", type=int, default=20, help="per variant")
    p.add_argument("--max-rate", type=float, default=300.0, help="cap of the background rate")
    p.add_argument("--lateness-ms", type=int, default=5000, help="PULSE_ALLOWED_LATENESS_MS")
    p.add_argument("--tiny", action="store_true", help="smoke test size (~1 min)")
    p.add_argument("--label", default="", help="a note for the results heading")
    p.add_argument("--results", default=str(RESULTS), help="file to append to ('' = none)")
    p.add_argument("--json", default="", help="also write the raw results here")
    p.add_argument("--timeout", type=float, default=300.0, help="seconds per worker run")
    p.add_argument("--keep", action="store_true", help="keep the work dir and topics")
    p.add_argument(
        "--bootstrap", default=os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
    )
    args = p.parse_args(argv)
    if args.tiny:
        args.people, args.background_people = 100, 200
        args.latency_seconds, args.absence_probes = 4.0, 3
    CoreBench(args).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
