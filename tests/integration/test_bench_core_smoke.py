"""``python -m bench.bench_core --tiny`` end to end (every figure present; no timing asserts)."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.integration


def _positive(value: object) -> bool:
    return isinstance(value, int | float) and math.isfinite(value) and value > 0


def test_bench_core_tiny_reports_every_figure(kafka_bootstrap: str, tmp_path: Path) -> None:
    out = tmp_path / "core.json"
    env = dict(os.environ, KAFKA_BOOTSTRAP_SERVERS=kafka_bootstrap, PULSE_METRICS_PORT="0")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.bench_core",
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
    assert "Core and topology (issues 4 and 5)" in proc.stdout
    r = json.loads(out.read_text())
    assert r["workload"]["events"] > 1000
    figures: dict[str, object] = {}
    for topo in ("builtin", "commerce"):
        figures[f"replay {topo}"] = r["in_process"][topo]["replay"]["events_per_s"]
        state = r["in_process"][topo]["state"]
        for key in ("mean", "p50", "p99", "max", "persons"):
            figures[f"state {topo} {key}"] = state[key]
        figures[f"worker {topo}"] = r["worker"][topo]["events_per_s"]
        assert r["worker"][topo]["events"] == r["workload"]["events"]
    im, ab = r["immediate"], r["absence"]
    for key in ("p50_ms", "p99_ms", "measured", "rate"):
        figures[f"immediate {key}"] = im[key]
    for key in ("p50_ms", "p99_ms", "measured"):
        figures[f"absence {key}"] = ab[key]
        figures[f"absence quiet {key}"] = ab["quiet"][key]
    bad = {name: value for name, value in figures.items() if not _positive(value)}
    assert not bad, bad
    # every probe's trigger arrived (none lost or suppressed by caps/quiet hours)
    assert im["measured"] == im["probes"]
    assert ab["missed"] == 0
