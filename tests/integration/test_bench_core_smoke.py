"""``python -m bench.bench_core --tiny`` end to end (every figure present; no timing asserts).

In-process only (no broker): the live figures are the runtime harness's, whose
smoke test is ``test_bench_smoke.py``.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _positive(value: object) -> bool:
    return isinstance(value, int | float) and math.isfinite(value) and value > 0


def test_bench_core_tiny_reports_every_figure(tmp_path: Path) -> None:
    out = tmp_path / "core.json"
    proc = subprocess.run(
        [sys.executable, "-m", "bench.bench_core", "--tiny", "--results", "", "--json", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Core and topology (issues 4, 5 and 12)" in proc.stdout
    r = json.loads(out.read_text())
    assert r["workload"]["events"] > 1000
    for topo in ("builtin", "commerce"):
        assert _positive(r["in_process"][topo]["replay"]["events_per_s"]), topo
        assert r["in_process"][topo]["replay"]["outputs"] > 0, topo
        state = r["in_process"][topo]["state"]
        for key in ("mean", "p50", "p99", "max", "persons"):
            assert _positive(state[key]), (topo, key)
