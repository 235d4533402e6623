"""The profile API under load: lookup latency at 500 requests/s against a busy worker.

::

    python -m bench.bench_profiles [--seconds 20] [--rate 500] [--results bench/RESULTS.md]

On the shared broker, fresh topics (``prof<stamp>.``), ``pulse worker
--topology topologies/commerce.yaml`` (exactly_once):

1. **capacity** and 2. **cost**: one worker works off a backlog of
   ``--backlog`` events, in windows of ``--window`` seconds without and with
   ``--rate`` lookups/s in turn; its rate (``pulse_events_in_total``) without
   is the capacity C, with them the cost;
3. **local**: one worker (every partition), events produced at C/2, ``--rate``
   lookups/s of known persons for ``--seconds``: latency p50/p99; then the same
   at C'/2, half of what the worker keeps while it answers the lookups;
4. **forwarded**: a second worker joins (2 partitions each), events still at
   C/2 in all, ``--rate`` lookups/s all sent to the first worker: the persons of
   its partitions (local) and of the other's (forwarded).

Latency is from the time a request was *due* (an open-loop schedule, so a slow
answer delays none behind it) to its answer; the load generator (aiohttp,
keep-alive) runs on the same 2-core machine as the worker and the broker.
"""

from __future__ import annotations

import argparse
import gc
import os
import re
import tempfile
import time
import uuid
from pathlib import Path

from bench.common import (
    PY,
    RESULTS,
    ROOT,
    Proc,
    events_in,
    free_port,
    git_commit,
    log,
    metrics_text,
    pct,
)
from bench.loadgen import Feed, Lookups, load
from pipeline.contract.produce import partition_key
from pipeline.contract.wire import encode_event
from pipeline.worker.partitioner import partition_for

COMMERCE = ROOT / "topologies" / "commerce.yaml"
PARTITIONS = 4


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
        self.prefix = f"prof{time.strftime('%m%d%H%M%S')}{uuid.uuid4().hex[:4]}."
        self.home = Path(tempfile.mkdtemp(prefix="bench-profiles-"))
        self.topic = self.prefix + "events"
        self.workers: dict[str, tuple[Proc, int, int]] = {}  # name -> (proc, api, metrics)

    def start(self, name: str, api: bool) -> tuple[Proc, int, int]:
        api_port, metrics_port = (free_port() if api else 0), free_port()
        env = dict(os.environ, KAFKA_BOOTSTRAP_SERVERS=self.bootstrap,
                   PULSE_TOPIC_PREFIX=self.prefix, PULSE_HOME=str(self.home / name),
                   PULSE_INSTANCE_ID=name, PULSE_METRICS_PORT=str(metrics_port),
                   PULSE_API_PORT=str(api_port), PULSE_API_HOST="127.0.0.1",
                   # a quiet worker would move time on with the wall clock and fire every
                   # timer at once between the phases: not what a lookup meets live
                   PULSE_IDLE_ADVANCE_MS="0")  # fmt: skip
        argv = [PY, "-m", "pipeline.cli", "worker", "--topology", str(COMMERCE)]
        proc = Proc(name, argv, env, self.home)
        deadline = time.monotonic() + 120
        while "assigned partitions" not in proc.log.read_text(errors="replace"):
            if time.monotonic() > deadline or not proc.alive():
                raise RuntimeError(f"{name} did not start:\n{proc.tail()}")
            time.sleep(0.2)
        self.workers[name] = (proc, api_port, metrics_port)
        return self.workers[name]

    def timings(self, name: str) -> dict[str, float]:
        """The worker's batch and commit time sums and counts so far (its metrics)."""
        text = metrics_text(self.workers[name][2])
        got = {}
        for metric in ("pulse_process_seconds", "pulse_commit_seconds"):
            for part in ("sum", "count"):
                m = re.search(rf"^{metric}_{part} ([\d.e+-]+)$", text, re.M)
                got[f"{metric}_{part}"] = float(m.group(1)) if m else 0.0
        return got

    def consumed(self) -> int:
        return events_in([m for _, _, m in self.workers.values()], self.topic)

    def wait_consumed(self, total: int, timeout_s: float = 600) -> float:
        """Seconds until the running workers consumed ``total`` events (since they started)."""
        began = time.monotonic()
        while self.consumed() < total:
            if time.monotonic() - began > timeout_s:
                raise RuntimeError(f"consumed {self.consumed()} of {total}")
            time.sleep(0.1)
        return time.monotonic() - began


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--rate", type=int, default=500, help="lookups a second")
    parser.add_argument("--backlog", type=int, default=100_000)
    parser.add_argument("--window", type=float, default=4.0, help="seconds per capacity window")
    parser.add_argument("--people", type=int, default=3_000)
    parser.add_argument("--results", default=str(RESULTS), help="'' prints only")
    args = parser.parse_args(argv)
    from bench.workload import _events

    b = Bench(args)
    load_before = os.getloadavg()[0]
    need = 5_000 + args.backlog + int(3 * 3_000 * (args.seconds + 2))
    log(f"generating {need:,} events of {args.people:,} people")
    events = _events(need, args.people, seed=16)
    records = [(partition_key(e), encode_event(e)) for e in events]
    warm, rest = records[:5_000], records[5_000:]
    persons = sorted({e.person_id for e in events[:5_000] if e.user_id})  # identified users
    del events
    # The data set is millions of objects: a full collection of this process's heap
    # would pause the load generator for 100+ ms and show up as lookup latency.
    gc.collect()
    gc.freeze()
    produced = 0

    def feed(part: list[tuple[bytes, bytes]], rate: float | None) -> Feed:
        nonlocal produced
        produced += len(part)
        return Feed(b.bootstrap, b.topic, part, rate).start()

    try:
        # 1-2. capacity and cost: through one backlog, windows without and with lookups
        # in turn (the machine is shared: alternating cancels slow drifts)
        proc, api, _ = b.start("a", api=True)
        url = f"http://127.0.0.1:{api}"
        feed(warm, None).join()
        b.wait_consumed(produced)
        # no events: the floor (once the idle rule has moved the watermark past the warm-up
        # set and its timers fired, PULSE_IDLE_TIMEOUT_MS after the last record)
        time.sleep(6)
        idle = load(url, {"local": persons}, args.rate, args.seconds / 2)
        backlog, rest = rest[: args.backlog], rest[args.backlog :]
        feed(backlog, None)
        rates: dict[bool, list[float]] = {False: [], True: []}
        busy = Lookups()
        lookups_on = False
        while True:
            at, began = b.consumed(), time.monotonic()
            if lookups_on:
                window = load(url, {"local": persons}, args.rate, args.window)
                busy.ms.setdefault("local", []).extend(window.ms.get("local", []))
                for status, n in window.statuses.items():
                    busy.statuses[status] = busy.statuses.get(status, 0) + n
            else:
                time.sleep(args.window)
            done = b.consumed()
            if done >= produced:
                break  # the backlog ran out inside this window: not counted
            rates[lookups_on].append((done - at) / (time.monotonic() - began))
            lookups_on = not lookups_on
        capacity = sum(rates[False]) / max(len(rates[False]), 1)
        with_api = sum(rates[True]) / max(len(rates[True]), 1)
        log(f"capacity {capacity:,.0f} ev/s, with {args.rate} lookups/s {with_api:,.0f} ev/s "
            f"({len(rates[False])} + {len(rates[True])} windows)")  # fmt: skip

        # 3. local: one worker, events at C/2
        half = capacity / 2
        part, rest = rest[: int(half * (args.seconds + 2))], rest[int(half * (args.seconds + 2)) :]
        f = feed(part, half)
        time.sleep(1)
        before = b.timings("a")
        local = load(url, {"local": persons}, args.rate, args.seconds)
        after = b.timings("a")
        f.join()

        def mean_ms(metric: str) -> float:
            n = after[f"{metric}_count"] - before[f"{metric}_count"]
            return (after[f"{metric}_sum"] - before[f"{metric}_sum"]) / max(n, 1) * 1000

        batch_ms, commit_ms = mean_ms("pulse_process_seconds"), mean_ms("pulse_commit_seconds")
        p50, p99 = pct(local.ms["local"], 0.5), pct(local.ms["local"], 0.99)
        log(f"local: p50 {p50:.1f} ms, p99 {p99:.1f} ms")

        # 3b. the same at half the capacity the worker keeps *while* answering the lookups
        half_on = with_api / 2
        n = int(half_on * (args.seconds + 2))
        part, rest = rest[:n], rest[n:]
        f = feed(part, half_on)
        time.sleep(1)
        local_on = load(url, {"local": persons}, args.rate, args.seconds)
        f.join()
        log(f"local at C'/2: p50 {pct(local_on.ms['local'], 0.5):.1f} ms, "
            f"p99 {pct(local_on.ms['local'], 0.99):.1f} ms")  # fmt: skip

        # 4. forwarded: a second worker takes two partitions
        b.start("b", api=True)
        deadline = time.monotonic() + 120
        import urllib.request
        from urllib.error import HTTPError

        def served_by(person: str) -> str:
            try:
                with urllib.request.urlopen(f"{url}/v1/persons/{person}", timeout=5) as r:
                    return str(r.headers.get("X-Pulse-Served-By", ""))
            except (HTTPError, OSError):
                return ""

        sample = {partition_for(p.encode(), PARTITIONS): p for p in persons}
        while sorted(served_by(p) for p in sample.values()) != ["a", "a", "b", "b"]:
            if time.monotonic() > deadline:
                raise RuntimeError("the two workers did not settle")
            time.sleep(0.5)
        mine = {q for q, p in sample.items() if served_by(p) == "a"}
        split = {"local": [p for p in persons if partition_for(p.encode(), PARTITIONS) in mine],
                 "forwarded": [p for p in persons
                               if partition_for(p.encode(), PARTITIONS) not in mine]}  # fmt: skip
        part = rest[: int(half * (args.seconds + 2))]
        f = feed(part, half)
        time.sleep(1)
        both = load(url, split, args.rate, args.seconds)
        f.join()
        log(f"forwarded: p50 {pct(both.ms['forwarded'], 0.5):.1f} ms, "
            f"p99 {pct(both.ms['forwarded'], 0.99):.1f} ms")  # fmt: skip
    finally:
        for proc, _, _ in b.workers.values():
            proc.stop()

    def statuses(r: Lookups) -> str:
        return ", ".join(f"{k or 'error'}: {v:,}" for k, v in sorted(r.statuses.items()))

    full = busy
    full_ms = full.ms.get("local", [])
    stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    loads = f"{load_before:.1f} at the start, {os.getloadavg()[0]:.1f} at the end"
    cost = f"{with_api:,.0f} ({with_api / capacity - 1:+.0%})"
    lines = [
        "",
        f"## {stamp}: profile API lookups under load (issue 16, at {git_commit()})",
        "",
        f"`python -m bench.bench_profiles --seconds {args.seconds:g} --rate {args.rate}`: "
        "`pulse worker --topology topologies/commerce.yaml` (exactly_once, 4 partitions) on the "
        f"shared broker, {args.people:,} synthetic people; lookups `GET /v1/persons/{{id}}` of "
        "identified persons seen in the first 5,000 events, open loop at "
        f"{args.rate}/s (latency from when each request was due to its answer), from an aiohttp "
        "client on the same 2-core machine, shared with other sessions' benchmarks while this "
        f"ran (load average {loads}).",
        "",
        "| | events/s |",
        "|---|---:|",
        f"| capacity C: one worker through a backlog, {len(rates[False])} windows of "
        f"{args.window:g} s without lookups | {capacity:,.0f} |",
        f"| the same, {len(rates[True])} windows in between with {args.rate} lookups/s | {cost} |",
        "",
        f"Events produced at C/2 = {half:,.0f}/s during the lookups (but the first row, and "
        f"the third: at half the capacity C' the worker keeps while it answers "
        f"{args.rate} lookups/s):",
        "",
        f"| lookups at {args.rate}/s | answered 200 | p50 ms | p99 ms | max ms "
        "| in the asked worker p50 / p99 ms | target p99 |",
        "|---|---:|---:|---:|---:|---:|---|",
        f"| local: one worker, every partition, no events (the floor) | {idle.row('local')} | |",
        f"| local: one worker owning every partition | {local.row('local')} | < 20 ms |",
        f"| local: the same, events at C'/2 = {half_on:,.0f}/s | {local_on.row('local')} "
        "| < 20 ms |",
        f"| local: 2 workers, the asked worker's persons | {both.row('local')} | < 20 ms |",
        f"| forwarded: 2 workers, the other worker's persons | {both.row('forwarded')} | < 40 ms |",
        "",
        f"Statuses: local run {statuses(local)}; two-worker run {statuses(both)}; through the "
        f"backlog (the worker at full load) {statuses(full)}, p50 / p99 there "
        f"{pct(full_ms, 0.5):.1f} / {pct(full_ms, 0.99):.1f} ms. During the local run the "
        f"worker's batches took {batch_ms:.1f} ms and its commits {commit_ms:.1f} ms on average "
        "(lookups do not wait for them: the API reads the last commit); "
        f"the load generator used {local.cpu:.0%} of a core. 'In the asked worker' is its "
        "API's `Server-Timing` header: from the request's arrival to the answer, "
        "forwarding included; the rest is the client's and the machine's (scheduling on the "
        "shared cores) until the request is read.",
        "",
    ]
    section = "\n".join(lines)
    print(section)
    if args.results:
        with open(args.results, "a") as fh:
            fh.write(section)
        log(f"appended to {args.results}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
