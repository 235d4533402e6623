"""One benchmark run: the same workload through (a) raw, (b) Faust, (c) Quix, (d) Pulse.

(b) runs three ways: one event at a time (b), in ``take_events`` batches (bt), and
batched without a table (bs: what Faust's stream path alone allows).

``python -m bench.run [--events N] [--people P] [--only a,b,bt,bs,c,d] [--workers 1,2] [--tiny]``
appends a dated table to ``bench/RESULTS.md``. See ``bench/README.md``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import state as rstate
from bench.kafkautil import Broker
from bench.procstat import CpuSampler, dir_bytes, machine, peak_rss_mb
from bench.workload import Workload, build, produce
from pipeline.config import Settings
from pipeline.worker.app import producer_settings

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "RESULTS.md"
PY = sys.executable
TAKE = Settings.from_env().batch_max  # the batch size Pulse's agents take (PULSE_BATCH_MAX)


@dataclass
class Row:
    system: str
    events_per_s: float = 0.0
    seconds: float = 0.0
    counted: int = 0
    expected: int = 0
    rss_mb: list[float] = field(default_factory=list)
    state_bytes_per_person: float | None = None
    value_bytes: float | None = None
    cpu: dict[str, float] = field(default_factory=dict)
    note: str = ""
    key: str = ""  # a, b, bt, bs, c, dx1, dx2: what the ratios use

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def broker_pid(bootstrap: str) -> int | None:
    port = bootstrap.split(",", maxsplit=1)[0].rsplit(":", 1)[-1]
    try:
        out = subprocess.run(
            ["ss", "-ltnpH", f"sport = :{port}"], capture_output=True, text=True, check=False
        ).stdout
    except FileNotFoundError:
        return None
    m = re.search(r"pid=(\d+)", out)
    return int(m.group(1)) if m else None


def kafka_version(bootstrap: str) -> str:
    from pipeline.kafka_local import KAFKA_VERSION

    pid = broker_pid(bootstrap)
    if pid:
        with contextlib.suppress(OSError):
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
            m = re.search(r"kafka-clients-([\d.]+)\.jar|kafka_2\.\d+-([\d.]+)\.jar", cmd)
            if m:
                return f"Apache Kafka {m.group(1) or m.group(2)}"
            if "kafka.Kafka" in cmd:
                return f"Apache Kafka (local launcher, {KAFKA_VERSION})"
    return "unknown (external cluster)"


def git_commit() -> str:
    sha = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=no"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    return f"{sha}-dirty" if dirty else sha


class Proc:
    """A worker subprocess whose output goes to a log file; stopped with SIGTERM."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], logdir: Path) -> None:
        self.name = name
        self.log = logdir / f"{name}.log"
        self._fh = self.log.open("wb")
        self.p = subprocess.Popen(
            argv,
            env=env,
            stdout=self._fh,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
            start_new_session=True,
        )

    @property
    def pid(self) -> int:
        return self.p.pid

    def alive(self) -> bool:
        return self.p.poll() is None

    def stop(self, timeout: float = 30) -> None:
        if self.alive():
            self.p.send_signal(signal.SIGTERM)
            try:
                self.p.wait(timeout)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()
        self._fh.close()

    def tail(self, n: int = 30) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:])


def profile(proc: Proc, out: Path, seconds: float) -> subprocess.Popen[bytes] | None:
    """``py-spy record`` on a running worker (``--profile``): a speedscope JSON file."""
    spy = shutil.which("py-spy") or str(Path(PY).parent / "py-spy")
    if not Path(spy).exists():
        return None
    return subprocess.Popen(
        [
            spy,
            "record",
            "--pid",
            str(proc.pid),
            "--duration",
            str(int(seconds)),
            "--rate",
            "200",
            "--format",
            "speedscope",
            "--output",
            str(out),
            "--nonblocking",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.bootstrap = args.bootstrap
        self.broker = Broker(self.bootstrap)
        self.run_id = f"bench{datetime.now(UTC):%m%d%H%M%S}{uuid.uuid4().hex[:4]}"
        self.topic = f"{self.run_id}.events"
        self.workdir = Path(tempfile.mkdtemp(prefix=f"{self.run_id}-"))
        self.logdir = self.workdir / "logs"
        self.logdir.mkdir()
        self.rows: list[Row] = []
        self.extra: dict[str, Any] = {}
        self.bpid = broker_pid(self.bootstrap)
        self.created_topics: list[str] = []
        self.profiles: list[Path] = []

    def env(self, **extra: str) -> dict[str, str]:
        env = dict(os.environ)
        env.update({"PYTHONPATH": str(ROOT), "KAFKA_BOOTSTRAP_SERVERS": self.bootstrap})
        env.update(extra)
        return env

    def sampler(self, procs: list[Proc]) -> CpuSampler:
        pids = {p.name: p.pid for p in procs}
        if self.bpid:
            pids["broker"] = self.bpid
        return CpuSampler(pids).start()

    # -- (a) -------------------------------------------------------------------
    def run_raw(self, w: Workload) -> None:
        for mode in ("fast", "wire"):
            name = "a raw consume + fastavro" if mode == "fast" else "a raw consume + decode_event"
            proc = Proc(
                f"a-{mode}",
                [PY, "-m", "bench.raw_consume", self.bootstrap, self.topic, str(len(w)), mode],
                self.env(),
                self.logdir,
            )
            sam = self.sampler([proc])
            proc.p.wait(600)
            sam.stop()
            out = json.loads(proc.log.read_text().strip().splitlines()[-1])
            row = self._row(name, out["count"], len(w), out["first"], out["last"], sam, [proc])
            row.counted = out["sum"]
            row.key = "a" if mode == "fast" else ""
            self.rows.append(row)
            proc.stop()
            log(f"{name}: {row.events_per_s:,.0f} ev/s")

    def _row(
        self,
        system: str,
        count: int,
        expected: int,
        first: float,
        last: float,
        sam: CpuSampler,
        procs: list[Proc],
    ) -> Row:
        secs = max(last - first, 1e-6)
        off = time.monotonic() - time.time()
        row = Row(system, events_per_s=count / secs, seconds=secs, counted=count, expected=expected)
        row.rss_mb = [round(sam.peak.get(p.name) or peak_rss_mb(p.pid) or 0.0, 1) for p in procs]
        row.cpu = {k: round(v, 2) for k, v in sam.usage(first + off, last + off).items()}
        return row

    # -- (b), (c) ----------------------------------------------------------------
    def run_counter(self, w: Workload, kind: str) -> None:
        group = f"{self.run_id}-{kind}"
        datadir = self.workdir / kind
        stats = self.workdir / f"{kind}.json"
        env = self.env(
            BENCH_BOOTSTRAP=self.bootstrap,
            BENCH_TOPIC=self.topic,
            BENCH_APP=group,
            BENCH_DATADIR=str(datadir),
            BENCH_STATS=str(stats),
            BENCH_FAUST_SETTINGS=self.args.b_settings or "{}",
        )
        if kind.startswith("faust"):
            argv = [
                PY,
                "-m",
                "bench.faust_count",
                "worker",
                "-l",
                self.args.loglevel,
                "--without-web",
            ]
            name = "b Faust agent + RocksDB table"
            if kind != "faust":
                # batched like Pulse's agents, with Pulse's producer settings
                env["BENCH_FAUST_TAKE"] = str(TAKE)
                env["BENCH_FAUST_SETTINGS"] = json.dumps(producer_settings(Settings.from_env()))
                name = f"bt Faust take_events({TAKE}) + RocksDB table"
                if kind == "faust-stream":
                    env["BENCH_FAUST_STATELESS"] = "1"
                    name = f"bs Faust take_events({TAKE}), no table"
            if self.args.b_settings and kind == "faust":
                name += " (tuned)"
            if self.args.loglevel != "info":
                name += f" -l {self.args.loglevel}"
        else:
            argv = [PY, "-m", "bench.quix_count"]
            name = "c Quix Streams + RocksDB state"
        proc = Proc(kind, argv, env, self.logdir)
        sam = self.sampler([proc])
        spy = None
        try:
            if self.args.profile and kind == "faust":
                time.sleep(6)
                out = ROOT / "bench" / "profiles" / f"{self.run_id}-b.speedscope.json"
                out.parent.mkdir(exist_ok=True)
                spy = profile(proc, out, self.args.profile)
                self.profiles.append(out)
            self.broker.wait_lag_zero(
                group, [self.topic], timeout_s=self.args.timeout, alive=proc.alive
            )
            time.sleep(1.0)
            st = json.loads(stats.read_text())
        except Exception:
            log(f"{kind} failed; its log:\n{proc.tail()}")
            raise
        finally:
            sam.stop()
            if spy is not None:
                spy.wait(120)
            proc.stop()
        row = self._row(name, st["count"], len(w), st["first"], st["last"], sam, [proc])
        row.key = {"faust": "b", "faust-take": "bt", "faust-stream": "bs"}.get(kind, "c")
        if kind == "faust-stream":  # no state: the events it decoded and counted
            row.counted = st["count"]
            row.note = "decode only: Faust's stream path"
            self.rows.append(row)
            log(f"{name}: {row.events_per_s:,.0f} ev/s")
            return
        counts = rstate.quix_counts(datadir) if kind == "quix" else rstate.faust_counts(datadir)
        row.counted = sum(counts.values())
        row.state_bytes_per_person = dir_bytes(datadir) / max(len(counts), 1)
        sizes = [len(str(v)) for v in counts.values()]
        row.value_bytes = sum(sizes) / max(len(sizes), 1)
        row.note = f"{len(counts)} keys"
        self.rows.append(row)
        log(f"{name}: {row.events_per_s:,.0f} ev/s, counted {row.counted}/{len(w)}")

    # -- (d) ---------------------------------------------------------------------
    def start_pulse(self, prefix: str, workers: int, **extra: str) -> tuple[list[Proc], list[int]]:
        procs, ports = [], []
        for i in range(workers):
            port = free_port()
            env = self.env(
                PULSE_TOPIC_PREFIX=prefix,
                PULSE_HOME=str(self.workdir / prefix / f"w{i}"),
                PULSE_IDLE_ADVANCE_MS="0",
                PULSE_METRICS_PORT=str(port),
                **extra,
            )
            if self.args.d_settings:
                env["BENCH_FAUST_SETTINGS"] = self.args.d_settings
            module = "bench.pulse_worker" if self.args.d_settings else "pipeline.cli"
            argv = [
                PY,
                "-m",
                module,
                "worker",
                "--partitions",
                "4",
                "--loglevel",
                self.args.loglevel,
            ]
            if self.args.topology:
                argv += ["--topology", str(ROOT / self.args.topology)]
            procs.append(Proc(f"{prefix}w{i}", argv, env, self.logdir))
            ports.append(port)
        return procs, ports

    @staticmethod
    def events_in(ports: list[int], topic: str) -> int:
        total = 0
        pat = re.compile(
            r'^pulse_events_in_total\{topic="' + re.escape(topic) + r'"\} ([\d.e+]+)$', re.M
        )
        for port in ports:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as r:
                    text = r.read().decode()
            except OSError:
                continue
            m = pat.search(text)
            if m:
                total += int(float(m.group(1)))
        return total

    def run_pulse(self, w: Workload, workers: int) -> Row:
        prefix = f"{self.run_id}d{workers}."
        events, by_person = f"{prefix}events", f"{prefix}events.by-person"
        self.broker.create_topic(events)
        produce(self.bootstrap, events, w)
        procs, ports = self.start_pulse(prefix, workers)
        sam = self.sampler(procs)
        group = prefix.rstrip("._-")
        done_at = None
        spy = None
        try:
            if self.args.profile and workers == 1:
                time.sleep(8)
                out = ROOT / "bench" / "profiles" / f"{self.run_id}-d.speedscope.json"
                out.parent.mkdir(exist_ok=True)
                spy = profile(procs[0], out, self.args.profile)
                self.profiles.append(out)
            deadline = time.monotonic() + self.args.timeout
            while time.monotonic() < deadline:
                if not all(p.alive() for p in procs):
                    raise RuntimeError("a pulse worker exited")
                if self.events_in(ports, by_person) >= len(w):
                    done_at = time.time()
                    break
                time.sleep(0.2)
            self.broker.wait_lag_zero(
                group,
                [events, by_person],
                timeout_s=60,
                alive=lambda: all(p.alive() for p in procs),
            )
            if done_at is None:
                done_at = time.time()
            # data records the behavior agents processed (the by-person topic
            # also carries watermark records, so its offsets over-count)
            n_by_person = self.events_in(ports, by_person)
        except Exception:
            for p in procs:
                log(f"{p.name} log:\n{p.tail()}")
            raise
        finally:
            sam.stop()
            if spy is not None:
                spy.wait(120)
            for p in procs:
                p.stop()
        first, _last, _records = self.broker.record_times(by_person)
        label = " (settings tried)" if self.args.d_settings else ""
        row = self._row(
            f"d Pulse worker x{workers}{label}", len(w), len(w), first, done_at, sam, procs
        )
        row.counted = n_by_person
        row.key = f"dx{workers}"
        sdir = self.workdir / prefix
        sizes = rstate.value_sizes(sdir)
        row.state_bytes_per_person = dir_bytes(sdir) / max(w.persons, 1)
        row.value_bytes = sum(sizes) / len(sizes) if sizes else 0.0
        row.note = f"{len(sizes)} person-state keys of {w.persons} persons"
        self.created_topics += [t for t in self.broker.topics() if t.startswith(prefix)]
        log(f"d x{workers}: {row.events_per_s:,.0f} ev/s, by-person {n_by_person}/{len(w)}")
        return row

    def run_latency(self, rate: float) -> dict[str, Any]:
        from bench import latency

        prefix = f"{self.run_id}lat."
        self.broker.create_topic(f"{prefix}events")
        lateness = 5000
        procs, _ports = self.start_pulse(prefix, 1, PULSE_ALLOWED_LATENESS_MS=str(lateness))
        try:
            # Wait for the worker to be assigned and caught up before measuring.
            warm = Workload([b"warm"], [_warm_event()], 1, 1, 0)
            produce(self.bootstrap, f"{prefix}events", warm)
            self.broker.wait_lag_zero(
                prefix.rstrip("."),
                [f"{prefix}events", f"{prefix}events.by-person"],
                timeout_s=90,
                alive=procs[0].alive,
            )
            res = latency.run(
                self.bootstrap,
                prefix,
                rate=rate,
                seconds=self.args.latency_seconds,
                lateness_ms=lateness,
            )
        finally:
            for p in procs:
                p.stop()
        self.created_topics += [t for t in self.broker.topics() if t.startswith(prefix)]
        out = latency.summary(res)
        log(f"latency at {rate:,.0f} ev/s: {out}")
        return out

    # -- the run -----------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        a = self.args
        only = set(a.only.split(","))
        log(f"run {self.run_id}: building {a.events} events over ~{a.people} people")
        w = build(a.events, a.people)
        self.broker.create_topic(self.topic)
        self.created_topics.append(self.topic)
        secs = produce(self.bootstrap, self.topic, w)
        log(f"produced {len(w)} records to {self.topic} in {secs:.1f} s")
        self.extra["workload"] = {
            "events": len(w),
            "keys": w.people,
            "persons": w.persons,
            "checkouts": w.checkouts,
            "avg_bytes": round(sum(map(len, w.values)) / len(w)),
        }
        try:
            if "a" in only:
                self.run_raw(w)
            if "b" in only:
                self.run_counter(w, "faust")
            if "bt" in only:
                self.run_counter(w, "faust-take")
            if "bs" in only:
                self.run_counter(w, "faust-stream")
            if "c" in only:
                self.run_counter(w, "quix")
            if "d" in only:
                for n in [int(x) for x in a.workers.split(",") if x]:
                    self.rows.append(self.run_pulse(w, n))
                d1 = next((r for r in self.rows if r.key == "dx1"), None)
                if d1 and a.latency_seconds > 0:
                    rate = a.latency_rate or d1.events_per_s / 2
                    self.extra["latency"] = self.run_latency(rate)
        finally:
            self.cleanup()
        result = {"run": self.run_id, "rows": [r.as_dict() for r in self.rows], **self.extra}
        self.write_results(result)
        return result

    def cleanup(self) -> None:
        if self.args.keep:
            log(f"kept {self.workdir} and the {self.run_id}* topics")
            self.broker.close()
            return
        self.broker.delete_topics(
            set(self.created_topics)
            | {t for t in self.broker.topics() if t.startswith(self.run_id)}
        )
        self.broker.close()
        if not self.args.keep:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def write_results(self, result: dict[str, Any]) -> None:
        text = render(result, self.args, self.bootstrap)
        print(text)
        if self.args.results:
            path = Path(self.args.results)
            if not path.exists():
                path.write_text(
                    "# Pulse benchmark results\n\nAppended by `python -m bench.run`"
                    " (see README.md). Newest last.\n"
                )
            with path.open("a") as fh:
                fh.write("\n" + text)
        if self.args.json:
            Path(self.args.json).write_text(json.dumps(result, indent=1))


def _warm_event() -> bytes:
    from pipeline.core.events import event_from_json
    from pipeline.wire import encode_event

    return encode_event(
        event_from_json(
            {
                "messageId": "warm",
                "type": "track",
                "event": "Logged In",  # a first login: the worker's first trigger, too
                "anonymousId": "warm",
                "userId": "warm",
                "timestamp": 1_779_000_000_000,
            }
        )
    )


def render(result: dict[str, Any], args: argparse.Namespace, bootstrap: str) -> str:
    m = machine()
    rows = [Row(**r) for r in result["rows"]]
    wl = result.get("workload", {})
    lines = [
        f"## {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, commit {git_commit()}"
        + (f": {args.label}" if args.label else ""),
        "",
        f"Machine: {m['cores']} cores, {m['ram']} RAM, {m['cpu']}; Python {m['python']}; "
        f"broker {kafka_version(bootstrap)} at {bootstrap} (shares the cores). "
        f"Workload: {wl.get('events')} events, {wl.get('keys')} record keys / "
        f"{wl.get('persons')} persons, {wl.get('checkouts')} checkouts, "
        f"{wl.get('avg_bytes')} B/record Avro, 4 partitions. Run `{result['run']}`, "
        f"worker log level `{args.loglevel}`; Pulse topology "
        f"{f'`{args.topology}`' if args.topology else 'built-in'}, "
        f"batches of {TAKE} (`PULSE_BATCH_MAX`).",
        "",
        "| system | events/s | seconds | counted / expected | peak RSS MB | "
        "state B/person | value B | CPU cores (worker; broker) | note |",
        "|---|---:|---:|---:|---:|---:|---:|---|---|",
    ]
    for r in rows:
        worker_cpu = sum(v for k, v in r.cpu.items() if k != "broker")
        cpu = f"{worker_cpu:.2f}; {r.cpu.get('broker', float('nan')):.2f}"
        sb = f"{r.state_bytes_per_person:,.0f}" if r.state_bytes_per_person is not None else ""
        vb = f"{r.value_bytes:.0f}" if r.value_bytes is not None else ""
        lines.append(
            f"| {r.system} | {r.events_per_s:,.0f} | {r.seconds:.1f} | {r.counted}/{r.expected} "
            f"| {' + '.join(f'{x:.0f}' for x in r.rss_mb)} | {sb} | {vb} | {cpu} | {r.note} |"
        )
    by = {r.key: r for r in rows if r.key}
    d = by.get("dx1")
    ratios = []
    if d:
        for key, label in (("a", "a"), ("b", "b"), ("bt", "bt"), ("bs", "bs"), ("c", "c")):
            base = by.get(key)
            if base:
                ratios.append(f"d/{label} = {d.events_per_s / base.events_per_s:.2f}")
        if "dx2" in by:
            ratios.append(f"x2/x1 = {by['dx2'].events_per_s / d.events_per_s:.2f}")
    if ratios:
        lines += [
            "",
            "Ratios (d = one Pulse worker; a = raw + fastavro): " + ", ".join(ratios) + ".",
        ]
    lat = result.get("latency")
    if lat:
        from bench.latency import WARMUP_S as latency_warmup_s

        lines += [
            "",
            f"Latency at {lat['rate']:,} ev/s ({'set' if args.latency_rate else 'half of d x1'}; "
            f"{lat['produced']} records): "
            f"produce -> immediate trigger (`first_login`) p50 {lat.get('immediate_p50_ms')} ms, "
            f"p99 {lat.get('immediate_p99_ms')} ms over {lat.get('immediate_measured')} of "
            f"{lat.get('immediate_probes')} probes; produce -> absence trigger "
            f"(`checkout_abandoned`, via the watermark) p50 {lat['p50_ms']} ms, "
            f"p99 {lat['p99_ms']} ms over {lat['measured']} of {lat['probes']} probes "
            f"(after a {latency_warmup_s:.0f} s warm-up, whose slowest immediate trigger took "
            f"{lat.get('warmup_max_ms')} ms).",
        ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__)
    p.add_argument("--events", type=int, default=200_000)
    p.add_argument("--people", type=int, default=10_000)
    p.add_argument("--only", default="a,b,bt,bs,c,d", help="systems to run, e.g. a,d")
    p.add_argument("--workers", default="1,2", help="Pulse worker counts for (d)")
    p.add_argument(
        "--topology",
        default="topologies/commerce.yaml",
        help="the topology (d) runs ('' = the built-in checkout abandonment)",
    )
    p.add_argument("--tiny", action="store_true", help="smoke test: 3000 events, 1 worker")
    p.add_argument(
        "--latency-seconds",
        type=float,
        default=None,
        help="0 skips the latency part (default 15; 4 with --tiny)",
    )
    p.add_argument(
        "--latency-rate", type=float, default=0.0, help="events/s (default: half of d x1)"
    )
    p.add_argument("--loglevel", default="info", help="log level of the Faust workers")
    p.add_argument("--b-settings", default="", help="JSON Faust settings for (b), e.g. tuned")
    p.add_argument("--d-settings", default="", help="JSON Faust settings for (d), to try tunings")
    p.add_argument(
        "--profile",
        type=float,
        default=0.0,
        help="py-spy record the b and d workers for this many seconds",
    )
    p.add_argument("--label", default="", help="a note for the results heading")
    p.add_argument("--results", default=str(RESULTS), help="file to append to ('' = none)")
    p.add_argument("--json", default="", help="also write the raw results here")
    p.add_argument("--timeout", type=float, default=400.0, help="seconds per system")
    p.add_argument("--keep", action="store_true", help="keep the work dir and topics")
    p.add_argument(
        "--bootstrap", default=os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
    )
    args = p.parse_args(argv)
    if args.latency_seconds is None:
        args.latency_seconds = 4.0 if args.tiny else 15.0
    if args.tiny:
        args.events, args.people, args.workers = 3000, 300, "1"
    Bench(args).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
