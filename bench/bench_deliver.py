"""Benchmark of ``pulse deliver``: activations/s to a local endpoint, and added latency.

    python -m bench.bench_deliver [--records 20000] [--batched-records 100000]
                                  [--persons 5000] [--latency-rate 200]
                                  [--latency-seconds 15]

Needs a broker (``KAFKA_BOOTSTRAP_SERVERS``, default 127.0.0.1:9092). A local
aiohttp endpoint runs in its own process and answers 200 at once; ``pulse
deliver`` runs as its own process, exactly as a user runs it. Each part uses
fresh topics (a new prefix).

Throughput: the worker starts and delivers one warm-up activation (group
joined, connections open); then ``--records`` activations (``--persons``
people, order per person; ``--batched-records`` with batching) are produced
as fast as the producer goes, and the rate is the records over the time from
the first produce to the endpoint receiving the last one. Batching off: one activation per
request, concurrency 32. Batching on: ``batch: {max: 100, wait: 20ms}``,
concurrency 8 (under load batches fill long before the wait; it only bounds
the latency added when traffic is light).

Latency when healthy: with the worker running, activations are produced at
``--latency-rate`` per second for ``--latency-seconds``; each carries the wall
clock at its produce call, and the endpoint records when it received it. The
difference is the latency Pulse adds between the activation landing on its
topic and the endpoint having it (produce, fetch, sign, POST).

``BENCH_PROFILE=DIR`` records each worker with py-spy (speedscope files in DIR;
``python -m bench.profile_top FILE`` summarises one).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

from confluent_kafka import Producer

from pipeline.config import Settings
from pipeline.contract.topics import encode_output

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


def _receiver(port_out: Any) -> None:
    import asyncio

    from aiohttp import web

    stats: dict[str, Any] = {"count": 0, "first": None, "last": None, "latencies": []}

    async def post(request: web.Request) -> web.Response:
        now = time.time() * 1000
        data = json.loads(await request.read())
        items = data if isinstance(data, list) else [data]
        stats["count"] += len(items)
        stats["first"] = stats["first"] or now
        stats["last"] = now
        for item in items:
            sent = item.get("payload", {}).get("sent_ms")
            if sent:
                stats["latencies"].append(now - sent)
        return web.Response(text="ok")

    async def get(_request: web.Request) -> web.Response:
        return web.json_response(stats)

    async def reset(_request: web.Request) -> web.Response:
        stats.update(count=0, first=None, last=None, latencies=[])
        return web.Response(text="ok")

    async def main() -> None:
        app = web.Application()
        app.router.add_post("/hook", post)
        app.router.add_get("/stats", get)
        app.router.add_post("/reset", reset)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0, backlog=1024)
        await site.start()
        port_out.put(site._server.sockets[0].getsockname()[1])  # type: ignore[union-attr]
        await asyncio.Event().wait()

    asyncio.run(main())


def _http(url: str, method: str = "GET") -> Any:
    req = urllib.request.Request(url, data=b"" if method == "POST" else None, method=method)
    with urllib.request.urlopen(req, timeout=10) as resp:
        body = resp.read()
    return json.loads(body) if method == "GET" else None


def _activation(n: int, persons: int, sent_ms: int | None) -> dict[str, Any]:
    payload: dict[str, Any] = {"cart_value": 42.5, "currency": "EUR"}
    if sent_ms is not None:
        payload["sent_ms"] = sent_ms
    return {"activation_id": f"bench-{n}", "destination": "bench", "kind": "trigger",
            "name": "checkout_abandoned", "person_id": f"person-{n % persons}",
            "channel": "email", "event_time_ms": 1_790_000_000_000 + n,
            "source_id": f"t-{n}", "payload": payload}  # fmt: skip


def _config(port: int, batched: bool, tmp: Path) -> Path:
    batch = "batch: {max: 100, wait: 20ms}\n    concurrency: 8" if batched else "concurrency: 32"
    path = tmp / f"bench-{'on' if batched else 'off'}.yaml"
    path.write_text(f"""destinations:
  bench:
    type: webhook
    url: http://127.0.0.1:{port}/hook
    secret: {{env: BENCH_SECRET}}
    {batch}
""")
    return path


PROFILE = os.environ.get("BENCH_PROFILE")  # a folder: py-spy records each worker there


def _start(settings: Settings, config: Path, log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": settings.bootstrap_servers,
           "PULSE_TOPIC_PREFIX": settings.topic_prefix, "BENCH_SECRET": SECRET,
           "PULSE_DELIVER_METRICS_PORT": "0"}  # fmt: skip
    with log.open("ab") as out:
        argv = [sys.executable, "-m", "pipeline.cli", "deliver", "--destinations", str(config),
                "--loglevel", "warning"]  # fmt: skip
        if PROFILE:
            name = f"deliver-{config.stem}-{uuid.uuid4().hex[:6]}.speedscope.json"
            out_file = Path(PROFILE) / name
            spy = str(Path(sys.executable).parent / "py-spy")
            argv = [spy, "record", "-f", "speedscope", "-o", str(out_file), "--", *argv]
        return subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(2 if PROFILE else 15)  # py-spy writes its profile on SIGINT
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()


def _wait_count(base: str, want: int, timeout_s: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while True:
        stats = _http(base + "/stats")
        if stats["count"] >= want or time.monotonic() > deadline:
            return dict(stats)
        time.sleep(0.1)


def _fresh(bootstrap: str) -> Settings:
    return Settings(bootstrap_servers=bootstrap, topic_prefix=f"bench{uuid.uuid4().hex[:8]}.")


def _ensure(settings: Settings) -> None:
    from pipeline.deliver.state import ensure_delivery_topics

    ensure_delivery_topics(settings, ["bench"], partitions=4)


def _encode(act: dict[str, Any]) -> bytes:
    return encode_output("activations.bench", act)


def throughput(bootstrap: str, base: str, port: int, batched: bool, records: int,
               persons: int, tmp: Path) -> dict[str, Any]:  # fmt: skip
    settings = _fresh(bootstrap)
    _ensure(settings)
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5})
    topic = settings.topic("activations.bench")
    values = [(a["person_id"].encode(), _encode(a))
              for a in (_activation(n, persons, None) for n in range(records))]  # fmt: skip
    proc = _start(settings, _config(port, batched, tmp), tmp / "deliver.log")
    try:
        _http(base + "/reset", "POST")
        producer.produce(topic, key=b"warm", value=_encode(_activation(-1, persons, None)))
        producer.flush(10)
        _wait_count(base, 1, timeout_s=60)  # the group has joined, connections are warm
        _http(base + "/reset", "POST")
        started = time.time() * 1000
        for n, (key, value) in enumerate(values):
            producer.produce(topic, key=key, value=value)
            if n % 1000 == 0:
                producer.poll(0)
        producer.flush(60)
        produced_s = (time.time() * 1000 - started) / 1000
        stats = _wait_count(base, records, timeout_s=600)
    finally:
        _stop(proc)
    span_s = max(1e-3, (stats["last"] - started) / 1000)
    return {"batching": "on" if batched else "off", "records": stats["count"],
            "rate": round(stats["count"] / span_s), "seconds": round(span_s, 2),
            "produced_in_s": round(produced_s, 2)}  # fmt: skip


def latency(bootstrap: str, base: str, port: int, batched: bool, rate: float, seconds: float,
            persons: int, tmp: Path) -> dict[str, Any]:  # fmt: skip
    settings = _fresh(bootstrap)
    _ensure(settings)
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 0})
    topic = settings.topic("activations.bench")
    proc = _start(settings, _config(port, batched, tmp), tmp / "deliver.log")
    try:
        _http(base + "/reset", "POST")
        warm = _activation(0, persons, None)  # waits out the group join
        producer.produce(topic, key=b"warm", value=_encode(warm))
        producer.flush(10)
        _wait_count(base, 1, timeout_s=60)
        _http(base + "/reset", "POST")
        total = int(rate * seconds)
        t0 = time.monotonic()
        for n in range(1, total + 1):
            target = t0 + n / rate
            while (pause := target - time.monotonic()) > 0:
                time.sleep(min(pause, 0.01))
            act = _activation(n, persons, int(time.time() * 1000))
            producer.produce(topic, key=act["person_id"].encode(), value=_encode(act))
            producer.poll(0)
        producer.flush(10)
        stats = _wait_count(base, total, timeout_s=60)
    finally:
        _stop(proc)
    lat = sorted(stats["latencies"])

    def pct(p: float) -> float:
        return lat[min(len(lat) - 1, int(p * len(lat)))] if lat else float("nan")

    return {"batching": "on" if batched else "off", "rate": rate, "received": len(lat),
            "p50_ms": round(pct(0.50), 1), "p95_ms": round(pct(0.95), 1),
            "p99_ms": round(pct(0.99), 1), "max_ms": round(lat[-1], 1)}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=20_000, help="throughput, batching off")
    parser.add_argument("--batched-records", type=int, default=100_000,
                        help="throughput, batching on")  # fmt: skip
    parser.add_argument("--persons", type=int, default=5_000)
    parser.add_argument("--latency-rate", type=float, default=200.0)
    parser.add_argument("--latency-seconds", type=float, default=15.0)
    parser.add_argument("--parts", default="throughput,latency",
                        help="comma-separated: throughput, latency")  # fmt: skip
    parser.add_argument("--batching", default="off,on", help="comma-separated: off, on")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    bootstrap = Settings.from_env().bootstrap_servers
    ctx = mp.get_context("spawn")
    ports: Any = ctx.Queue()
    receiver = ctx.Process(target=_receiver, args=(ports,), daemon=True)
    receiver.start()
    port = ports.get(timeout=30)
    base = f"http://127.0.0.1:{port}"
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        try:
            modes = [m == "on" for m in args.batching.split(",")]
            for batched in modes if "throughput" in args.parts else ():
                records = args.batched_records if batched else args.records
                results.append(throughput(bootstrap, base, port, batched, records,
                                          args.persons, tmp))  # fmt: skip
                results[-1]["load_1m"] = round(os.getloadavg()[0], 2)
                print(json.dumps(results[-1]), flush=True)
            for batched in modes if "latency" in args.parts else ():
                results.append(latency(bootstrap, base, port, batched, args.latency_rate,
                                       args.latency_seconds, args.persons, tmp))  # fmt: skip
                results[-1]["load_1m"] = round(os.getloadavg()[0], 2)
                print(json.dumps(results[-1]), flush=True)
        finally:
            receiver.terminate()
            log = tmp / "deliver.log"
            if log.exists() and b"Traceback" in log.read_bytes():
                print(log.read_text(), file=sys.stderr)
    if args.json:
        print(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
