"""What mypyc gives the core: compile ``pipeline/core`` into a temp dir and measure it.

    python -m bench.core_mypyc [--people 2000] [--repeat 2] [--rounds 2] [--keep DIR]
                               [--outputs]

Copies this checkout's ``pipeline``, ``bench``, ``topologies`` and ``schemas``
into a temporary directory, compiles every module of ``pipeline/core`` there
with mypyc (the venv's, needs a C compiler; about a minute), then measures
``bench.core_speed`` on the pure-Python checkout and on the compiled copy,
alternating (``--rounds``), so the ratio comes from one run on the same
machine. ``--outputs`` also replays the synthetic week through both
(``bench.core_outputs``) and diffs the records: they must be the same.

Nothing here touches the build: the compiled modules live only in the temp dir.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COPY = ("pipeline", "bench", "topologies", "schemas")


def build(where: Path) -> float:
    """Copy the sources to ``where`` and compile ``pipeline/core`` there; returns seconds."""
    for name in COPY:
        shutil.copytree(
            ROOT / name, where / name, ignore=shutil.ignore_patterns("__pycache__", "*.so")
        )
    modules = sorted(str(p.relative_to(where)) for p in (where / "pipeline/core").glob("*.py"))
    mypyc = Path(sys.executable).with_name("mypyc")
    started = time.perf_counter()
    subprocess.run(
        [str(mypyc), *modules], cwd=where, check=True, capture_output=True, text=True
    )
    built = list((where / "pipeline/core").glob("*.so"))
    if len(built) != len(modules):
        raise SystemExit(f"mypyc built {len(built)} of {len(modules)} modules")
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.core_mypyc", description=__doc__)
    p.add_argument("--people", type=int, default=2000)
    p.add_argument("--repeat", type=int, default=2)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--keep", default="", help="build here (kept) instead of a temp dir")
    p.add_argument("--outputs", action="store_true", help="also diff replay outputs")
    args = p.parse_args(argv)
    from bench.core_speed import LABELS, measure_in

    tmp = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="pulse-mypyc-"))
    try:
        if not (tmp / "pipeline/core/engine.py").exists():
            print(f"mypyc: compiled pipeline/core in {build(tmp):.0f} s ({tmp})", flush=True)
        best: dict[str, dict[str, float]] = {}
        for _ in range(args.rounds):
            for name in LABELS:
                for side, checkout in (("pure", None), ("mypyc", tmp)):
                    f = measure_in(checkout, args.people, args.repeat, name)[name]
                    for unit in ("events_per_s", "events_per_cpu_s"):
                        key = f"{side} {unit}"
                        best.setdefault(key, {})[name] = max(
                            best.get(key, {}).get(name, 0.0), float(f[unit])
                        )
                    print(f"{side:6} {name:8} {f['events_per_s']:9,.0f} ev/s "
                          f"{f['events_per_cpu_s']:9,.0f} ev/cpu-s  runs {f['runs_s']}",
                          flush=True)  # fmt: skip
        for name in LABELS:
            for unit in ("events_per_s", "events_per_cpu_s"):
                pure, native = best[f"pure {unit}"][name], best[f"mypyc {unit}"][name]
                print(f"best   {name:8} {unit:16} pure {pure:9,.0f}  mypyc {native:9,.0f}  "
                      f"ratio {native / pure:.2f}x")  # fmt: skip
        if args.outputs:
            env = {**os.environ, "PYTHONHASHSEED": "0"}
            for side, where in (("pure", ROOT), ("mypyc", tmp)):
                argv2 = [sys.executable, "-m", "bench.core_outputs", "write", str(tmp / side)]
                subprocess.run(argv2, cwd=where, check=True, env=env)
            done = subprocess.run(
                [sys.executable, "-m", "bench.core_outputs", "diff",
                 str(tmp / "pure"), str(tmp / "mypyc")], cwd=ROOT, env=env, check=False,
            )  # fmt: skip
            print("outputs: " + ("identical" if done.returncode == 0 else "DIFFER"))
    finally:
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
