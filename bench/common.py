"""What every part of the harness shares: logging, subprocesses, ports, the machine, metrics."""

from __future__ import annotations

import atexit
import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "RESULTS.md"
PY = sys.executable


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
    from pipeline.tools.localkafka.launcher import KAFKA_VERSION

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
    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=ROOT, capture_output=True, text=True, check=False
        ).stdout.strip()

    sha = git("rev-parse", "--short", "HEAD")
    # only the engine and the harness count: other people's files may be mid-edit
    dirty = git("status", "--porcelain", "--untracked-files=no", "--", "pipeline", "bench")
    return f"{sha}-dirty" if dirty else sha


_RUNNING: set[Proc] = set()


@atexit.register
def _stop_all() -> None:
    """Workers must not outlive the harness (they run in sessions of their own)."""
    for proc in list(_RUNNING):
        proc.kill()


def exit_on_sigterm() -> None:
    """SIGTERM ends the harness like Ctrl-C: cleanups and ``atexit`` run."""

    def handler(signum: int, _frame: object) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, handler)


class Proc:
    """A subprocess whose output goes to a log file; stopped with SIGTERM, killed with SIGKILL."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], logdir: Path) -> None:
        self.name = name
        self.log = logdir / f"{name}.log"
        self._fh = self.log.open("ab")
        self.started = time.monotonic()
        self.p = subprocess.Popen(
            argv,
            env=env,
            stdout=self._fh,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
            start_new_session=True,
        )
        _RUNNING.add(self)

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
        _RUNNING.discard(self)

    def kill(self) -> None:
        """``kill -9``: no flush, no commit, no goodbye to the group."""
        if self.alive():
            os.kill(self.p.pid, signal.SIGKILL)
            self.p.wait()
        self._fh.close()
        _RUNNING.discard(self)

    def tail(self, n: int = 30) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:])


def metrics_text(port: int) -> str:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as r:
            return str(r.read().decode())
    except OSError:
        return ""


def events_in(ports: list[int], topic: str) -> int:
    """Records the workers on ``ports`` consumed from ``topic`` (``pulse_events_in_total``)."""
    pat = re.compile(
        r'^pulse_events_in_total\{topic="' + re.escape(topic) + r'"\} ([\d.e+]+)$', re.M
    )
    total = 0
    for port in ports:
        m = pat.search(metrics_text(port))
        if m:
            total += int(float(m.group(1)))
    return total


def handed_over(ports: list[int]) -> int:
    """Records the workers on ``ports`` handed to their own person partitions (no broker hop)."""
    pat = re.compile(r"^pulse_records_handed_over_total ([\d.e+]+)$", re.M)
    return sum(int(float(m.group(1))) for p in ports if (m := pat.search(metrics_text(p))))


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    xs = sorted(values)
    return xs[min(len(xs) - 1, int(q * len(xs)))]
