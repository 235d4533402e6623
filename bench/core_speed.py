"""In-process core speed: replay events/s and person-state bytes (no Kafka).

    python -m bench.core_speed [--people 2000] [--repeat 3] [--baseline DIR] [--json F]

Over a synthetic week (``SyntheticConfig(people=P, days=7)``, arrival order):

* events/s of ``pipeline.replay.replay_events`` (pre-parsed events, no identity
  stitching, allowed lateness 5 s, including the final flush to +inf) with the
  built-in topology and with ``topologies/commerce.yaml``; best of ``--repeat``;
* state bytes per person: a ``Processor`` over a ``MemoryStore`` driven to the
  last event (no flush), each person's state through ``encode_state``.

``--baseline DIR`` also measures another checkout of Pulse (e.g. ``git archive``
of the commit before) in a subprocess, alternating with this one, so the
ratios come from one run on the same (shared) machine.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

COMMERCE = "topologies/commerce.yaml"
LATENESS_MS = 5_000
LABELS = {"builtin": None, "commerce": COMMERCE}


def week(people: int, seed: int = 7) -> list[Any]:
    from pipeline.synthetic import SyntheticConfig, generate

    return generate(SyntheticConfig(seed=seed, people=people, days=7)).events


def pct(xs: list[float], q: float) -> float:
    """Nearest-rank percentile."""
    if not xs:
        return float("nan")
    s = sorted(xs)
    return s[min(len(s) - 1, int(q * len(s)))]


def replay_seconds(events: list[Any], topology: str | None) -> float:
    from pipeline.replay import replay_events
    from pipeline.topology import load

    topo = load(topology)
    started = time.perf_counter()
    replay_events(events, topo.operators, allowed_lateness_ms=LATENESS_MS, stage=topo.stage)
    return time.perf_counter() - started


def state_sizes(events: list[Any], topology: str | None) -> dict[str, Any]:
    """Person state after the last event (no flush to +inf), encoded as the table stores it."""
    from pipeline.core.engine import MemoryStore, Processor
    from pipeline.records import encode_state
    from pipeline.topology import load

    topo = load(topology)
    store = MemoryStore()
    proc = Processor(topo.operators, allowed_lateness_ms=LATENESS_MS, store=store, stage=topo.stage)
    for event in events:
        proc.process(event)
    sizes = [float(len(encode_state(state))) for state in store.data.values()]
    return {
        "persons": len(sizes),
        "mean": sum(sizes) / max(len(sizes), 1),
        "p50": pct(sizes, 0.5),
        "p99": pct(sizes, 0.99),
        "max": max(sizes, default=0.0),
        "pending_timers": proc.pending_timers,
    }


def measure(people: int, repeat: int, label: str) -> dict[str, Any]:
    """One side's figures: ``{topology: {"events_per_s", "runs", "state"}}``."""
    events = week(people)
    out: dict[str, Any] = {"events": len(events)}
    for name, topology in LABELS.items():
        if label and name != label:
            continue
        runs = [replay_seconds(events, topology) for _ in range(repeat)]
        out[name] = {
            "events_per_s": len(events) / min(runs),
            "runs_s": [round(r, 3) for r in runs],
            "state": state_sizes(events, topology),
        }
    return out


def measure_in(checkout: Path | None, people: int, repeat: int, label: str) -> dict[str, Any]:
    """``measure`` in a subprocess whose ``pipeline`` is the one at ``checkout``."""
    root = Path(__file__).resolve().parents[1]
    code = (
        "import json, sys; sys.path.insert(0, sys.argv[1]); sys.path.insert(0, sys.argv[2]);"
        "from core_speed import measure;"
        "print(json.dumps(measure(int(sys.argv[3]), int(sys.argv[4]), sys.argv[5])))"
    )
    where = str(checkout or root)
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    argv = [sys.executable, "-c", code, str(root / "bench"), where, str(people), str(repeat), label]
    done = subprocess.run(argv, check=True, capture_output=True, text=True, env=env, cwd=where)
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.core_speed", description=__doc__)
    p.add_argument("--people", type=int, default=2000)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--rounds", type=int, default=1, help="alternations with --baseline")
    p.add_argument("--baseline", default="", help="another checkout to measure alongside")
    p.add_argument("--json", default="", help="write the raw figures here")
    args = p.parse_args(argv)
    result: dict[str, Any] = {"people": args.people, "rounds": []}
    for _ in range(args.rounds):
        round_: dict[str, Any] = {}
        for name in LABELS:
            if args.baseline:
                round_.setdefault("before", {}).update(
                    measure_in(Path(args.baseline), args.people, args.repeat, name)
                )
            round_.setdefault("after", {}).update(
                measure_in(None, args.people, args.repeat, name)
            )
        result["rounds"].append(round_)
        for side, figures in round_.items():
            for name in LABELS:
                f = figures[name]
                st = f["state"]
                print(
                    f"{side:6} {name:8} {f['events_per_s']:9,.0f} ev/s  runs {f['runs_s']}  "
                    f"state B/person mean {st['mean']:.0f} p50 {st['p50']:.0f} "
                    f"p99 {st['p99']:.0f} max {st['max']:.0f}  timers {st['pending_timers']}"
                )
        if args.baseline:
            for name in LABELS:
                after, before = round_["after"][name], round_["before"][name]
                ratio = after["events_per_s"] / before["events_per_s"]
                print(f"ratio  {name:8} {ratio:.2f}x")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
