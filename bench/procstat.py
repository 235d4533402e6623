"""Per-process CPU (from /proc/<pid>/stat) and peak RSS (VmHWM), sampled over a run."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

_TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float | None:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / _TICK  # utime + stime


def peak_rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except FileNotFoundError:
        return None
    return None


class CpuSampler:
    """Samples CPU seconds of named pids every ``interval_s`` (monotonic timestamps)."""

    def __init__(self, pids: dict[str, int], interval_s: float = 0.2) -> None:
        self.pids = dict(pids)
        self.interval_s = interval_s
        self.samples: list[tuple[float, dict[str, float]]] = []
        self.peak: dict[str, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def add(self, name: str, pid: int) -> None:
        self.pids[name] = pid

    def start(self) -> CpuSampler:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def _loop(self) -> None:
        while not self._stop.is_set():
            row = {}
            for name, pid in list(self.pids.items()):
                cpu = cpu_seconds(pid)
                if cpu is not None:
                    row[name] = cpu
                rss = peak_rss_mb(pid)
                if rss is not None:
                    self.peak[name] = max(self.peak.get(name, 0.0), rss)
            self.samples.append((time.monotonic(), row))
            self._stop.wait(self.interval_s)

    def usage(self, start: float, end: float) -> dict[str, float]:
        """Cores used by each pid between two monotonic times (nearest samples)."""
        if not self.samples:
            return {}
        before = min(self.samples, key=lambda s: abs(s[0] - start))
        after = min(self.samples, key=lambda s: abs(s[0] - end))
        span = after[0] - before[0]
        if span <= 0:
            return {}
        return {
            name: (after[1][name] - before[1].get(name, 0.0)) / span
            for name in after[1]
            if name in before[1]
        }


def machine() -> dict[str, str]:
    import platform

    model = "?"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    mem_kb = 0
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            mem_kb = int(line.split()[1])
    return {
        "cores": str(os.cpu_count()),
        "ram": f"{mem_kb / 1024 / 1024:.1f} GiB",
        "cpu": model,
        "python": platform.python_version(),
    }


def dir_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) if path.exists() else 0
