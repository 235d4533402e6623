"""The benchmark harness end to end on a tiny workload (no timing assertions)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.integration


def test_bench_tiny_runs_every_system(kafka_bootstrap: str, tmp_path: Path) -> None:
    out = tmp_path / "result.json"
    env = dict(os.environ, KAFKA_BOOTSTRAP_SERVERS=kafka_bootstrap, PULSE_METRICS_PORT="0")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.run",
            "--tiny",
            "--results",
            "",
            "--json",
            str(out),
            "--bootstrap",
            kafka_bootstrap,
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(out.read_text())
    rows = {row["key"]: row for row in result["rows"] if row["key"]}
    assert set(rows) == {"a", "b", "bt", "bs", "c", "dx1"}
    n = result["workload"]["events"]
    assert n > 1000
    for key, row in rows.items():
        assert row["events_per_s"] > 0, key
        # a, b, c: per-person counts sum to N; d: the by-person topic got N records.
        assert row["counted"] == row["expected"] == n, (key, row)
    # the latency part: immediate triggers came back for the probes (4 s at half of d)
    lat = result["latency"]
    assert lat["immediate_probes"] > 0
    assert lat["immediate_measured"] > 0, lat
