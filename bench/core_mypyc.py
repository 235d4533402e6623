"""What mypyc gives the core: the build ``make setup`` installs, against pure Python.

    python -m bench.core_mypyc [--people 2000] [--repeat 2] [--rounds 2] [--keep DIR]
                               [--outputs]

Compiles this checkout's ``pipeline/core`` with ``pipeline.core.mypycbuild``
into a temporary ``PULSE_CORE_DIR`` (needs a C compiler; about a minute),
then measures ``bench.core_speed`` with ``PULSE_CORE=pure`` and with
``PULSE_CORE=native`` on that build, alternating (``--rounds``), so the ratio
comes from one run on the same machine. ``--outputs`` also replays the
synthetic week both ways (``bench.core_outputs``) and diffs the records: they
must be the same.

The venv's own build (``.venv/pulse-core-native``) is not touched.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def sides(build: Path) -> dict[str, dict[str, str]]:
    """The environment of each side: pure Python, and the compiled core in ``build``."""
    return {
        "pure": {"PULSE_CORE": "pure"},
        "mypyc": {"PULSE_CORE": "native", "PULSE_CORE_DIR": str(build)},
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.core_mypyc", description=__doc__)
    p.add_argument("--people", type=int, default=2000)
    p.add_argument("--repeat", type=int, default=2)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--keep", default="", help="build here (kept) instead of a temp dir")
    p.add_argument("--outputs", action="store_true", help="also diff replay outputs")
    args = p.parse_args(argv)
    from bench.core_speed import LABELS, measure_in
    from pipeline.core.mypycbuild import build
    from pipeline.core.native import check

    tmp = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="pulse-mypyc-"))
    env = sides(tmp / "core")
    try:
        if not check(tmp / "core")[0]:
            print(f"mypyc: compiled pipeline/core in {build(tmp / 'core'):.0f} s", flush=True)
        best: dict[str, dict[str, float]] = {}
        for _ in range(args.rounds):
            for name in LABELS:
                for side in ("pure", "mypyc"):
                    f = measure_in(None, args.people, args.repeat, name, env=env[side])[name]
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
            base = {**os.environ, "PYTHONHASHSEED": "0"}
            for side in ("pure", "mypyc"):
                argv2 = [sys.executable, "-m", "bench.core_outputs", "write", str(tmp / side)]
                subprocess.run(argv2, cwd=ROOT, check=True, env={**base, **env[side]})
            done = subprocess.run(
                [sys.executable, "-m", "bench.core_outputs", "diff",
                 str(tmp / "pure"), str(tmp / "mypyc")], cwd=ROOT, env=base, check=False,
            )  # fmt: skip
            print("outputs: " + ("identical" if done.returncode == 0 else "DIFFER"))
    finally:
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
