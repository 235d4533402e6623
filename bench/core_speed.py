"""In-process core speed: replay events/s and person-state bytes (no Kafka).

    python -m bench.core_speed [--people 2000] [--repeat 3] [--baseline DIR] [--rounds N]
                               [--pure] [--json F]
    python -m bench.core_speed --scale 2000,20000 [--floor]

Over a synthetic week (``SyntheticConfig(people=P, days=7)``, arrival order):

* events/s of ``pipeline.tools.replay.replay_events`` (pre-parsed events, no identity
  stitching, allowed lateness 5 s, including the final flush to +inf) with the
  built-in topology and with ``topologies/commerce.yaml``; best of ``--repeat``;
* state bytes per person: a ``Processor`` over a ``MemoryStore`` driven to the
  last event (no flush), each person's state through ``encode_state``.

``--baseline DIR`` also measures another checkout of Pulse (e.g. ``git archive``
of the commit before) in a subprocess, alternating with this one, so the
ratios come from one run on the same (shared) machine. Events/s are given in
wall-clock time and in the process's CPU time (``cpu``): on a machine shared
with other work the CPU figure is the steadier one. ``--pure`` also measures this
checkout with ``PULSE_CORE=pure`` in each round (side ``pure``). Each side's
figures name the ``pipeline`` package it imported and whether its core was compiled.

``--scale P1,P2,...`` replays a synthetic week of each size through the
commerce topology once (this checkout only) and prints the CPU time per event
and per person: the cost per active person should not grow with their number.
With ``--floor`` it also prints the memory floor of each size: the persons'
states after the week, walked whole (every dict, list and value) once per event
in the events' order, with no Pulse code in the loop. Its nanoseconds per object
grow with the number of persons as the states outgrow the processor's caches;
Pulse's own cost per event cannot grow less than the share of it spent reading
state.
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


def _module(*names: str) -> Any:
    """The first of ``names`` that imports: a checkout from before the layout (issue 17),
    such as the baseline 12057c9, has ``pipeline.synthetic`` where this one has
    ``pipeline.tools.synthetic``, and so on."""
    import importlib

    for name in names[:-1]:
        try:
            return importlib.import_module(name)
        except ImportError:
            continue
    return importlib.import_module(names[-1])


def _load_topology(path: str | None) -> Any:
    return _module("pipeline.topology.dsl", "pipeline.topology").load(path)


def week(people: int, seed: int = 7) -> list[Any]:
    synthetic = _module("pipeline.tools.synthetic", "pipeline.synthetic")
    config = synthetic.SyntheticConfig(seed=seed, people=people, days=7)
    events: list[Any] = synthetic.generate(config).events
    return events


def pct(xs: list[float], q: float) -> float:
    """Nearest-rank percentile."""
    if not xs:
        return float("nan")
    s = sorted(xs)
    return s[min(len(s) - 1, int(q * len(s)))]


def replay_seconds(events: list[Any], topology: str | None) -> tuple[float, float]:
    """(wall, CPU) seconds of one replay."""
    replay_events = _module("pipeline.tools.replay", "pipeline.replay").replay_events
    topo = _load_topology(topology)
    started, cpu = time.perf_counter(), time.process_time()
    replay_events(events, topo.operators, allowed_lateness_ms=LATENESS_MS, stage=topo.stage)
    return time.perf_counter() - started, time.process_time() - cpu


def state_sizes(events: list[Any], topology: str | None) -> dict[str, Any]:
    """Person state after the last event (no flush to +inf), encoded as the table stores it."""
    from pipeline.core.engine import MemoryStore, Processor

    encode_state = _module("pipeline.worker.records", "pipeline.records").encode_state
    topo = _load_topology(topology)
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


def core_in_use() -> str:
    """``compiled`` or ``pure`` (checkouts from before the compiled core: ``pure``)."""
    try:
        from pipeline.core.native import STATUS
    except ImportError:
        return "pure"
    return "compiled" if STATUS.active else "pure"


def measure(people: int, repeat: int, label: str) -> dict[str, Any]:
    """One side's figures: ``{topology: {"events_per_s", "runs", "state"}}``."""
    events = week(people)
    import pipeline

    out: dict[str, Any] = {"events": len(events), "core": core_in_use(),
                           "pipeline": str(Path(pipeline.__file__).parent)}  # fmt: skip
    for name, topology in LABELS.items():
        if label and name != label:
            continue
        runs = [replay_seconds(events, topology) for _ in range(repeat)]
        out[name] = {
            "events_per_s": len(events) / min(r[0] for r in runs),
            "events_per_cpu_s": len(events) / min(r[1] for r in runs),
            "runs_s": [round(r[0], 3) for r in runs],
            "state": state_sizes(events, topology),
        }
    return out


def measure_in(
    checkout: Path | None,
    people: int,
    repeat: int,
    label: str,
    env: dict[str, str] | None = None,
) -> dict[str, Any]:
    """``measure`` in a subprocess whose ``pipeline`` is the one at ``checkout``.

    ``env`` is added to the subprocess's environment (e.g. ``PULSE_CORE=pure``).
    """
    root = Path(__file__).resolve().parents[1]
    code = (
        "import json, sys; sys.path.insert(0, sys.argv[1]); sys.path.insert(0, sys.argv[2]);"
        "from core_speed import measure;"
        "print(json.dumps(measure(int(sys.argv[3]), int(sys.argv[4]), sys.argv[5])))"
    )
    where = str(checkout or root)
    full = {**os.environ, "PYTHONHASHSEED": "0", **(env or {})}
    argv = [sys.executable, "-c", code, str(root / "bench"), where, str(people), str(repeat), label]
    done = subprocess.run(argv, check=True, capture_output=True, text=True, env=full, cwd=where)
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def _walk(value: Any) -> int:
    """Objects in ``value``, visiting each (dicts' values, lists' items)."""
    n = 1
    if type(value) is dict:
        for item in value.values():
            n += _walk(item)
    elif type(value) is list:
        for item in value:
            n += _walk(item)
    return n


def memory_floor(events: list[Any]) -> dict[str, float]:
    """Nanoseconds per object of walking each event's person state (see the module doc)."""
    import gc

    from pipeline.core.engine import MemoryStore, Processor

    topo = _load_topology(COMMERCE)
    store = MemoryStore()
    proc = Processor(topo.operators, allowed_lateness_ms=LATENESS_MS, store=store, stage=topo.stage)
    for event in events:
        proc.process(event)
    states = store.data
    order = [states[e.person_id] for e in events if e.person_id in states]
    gc.collect()
    gc.freeze()
    try:
        cpu = time.process_time()
        objects = sum(_walk(state) for state in order)
        cpu = time.process_time() - cpu
    finally:
        gc.unfreeze()
    return {"ns_per_object": cpu / objects * 1e9, "objects_per_event": objects / len(order)}


def scale(sizes: list[int], floor: bool = False) -> list[dict[str, Any]]:
    """CPU time per event and per person of a synthetic week of each size (commerce)."""
    rows = []
    for people in sizes:
        events = week(people)
        persons = len({e.person_id for e in events})
        _, cpu = replay_seconds(events, COMMERCE)
        row = {"people": people, "events": len(events), "persons": persons, "cpu_s": cpu,
               "us_per_event": cpu / len(events) * 1e6,
               "ms_per_person": cpu / persons * 1e3}  # fmt: skip
        line = (f"scale  {core_in_use():8} {people:6} people {len(events):8,} events "
                f"{persons:6,} persons  {row['us_per_event']:6.1f} us/event  "
                f"{row['ms_per_person']:6.2f} ms/person")  # fmt: skip
        if floor:
            row.update(memory_floor(events))
            line += (f"  floor {row['ns_per_object']:5.1f} ns/object "
                     f"({row['objects_per_event']:.0f} objects/event)")  # fmt: skip
        print(line, flush=True)
        rows.append(row)
        del events
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.core_speed", description=__doc__)
    p.add_argument("--people", type=int, default=2000)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--rounds", type=int, default=1, help="alternations with --baseline")
    p.add_argument("--baseline", default="", help="another checkout to measure alongside")
    p.add_argument("--json", default="", help="write the raw figures here")
    p.add_argument(
        "--pure", action="store_true", help="also this checkout with PULSE_CORE=pure ('pure')"
    )
    p.add_argument("--scale", default="", help="comma-separated sizes: CPU cost per person")
    p.add_argument("--floor", action="store_true", help="with --scale: the memory floor too")
    args = p.parse_args(argv)
    if args.scale:
        rows = scale([int(x) for x in args.scale.split(",")], floor=args.floor)
        if args.json:
            Path(args.json).write_text(json.dumps(rows, indent=1))
        return 0
    result: dict[str, Any] = {"people": args.people, "rounds": []}
    for _ in range(args.rounds):
        round_: dict[str, Any] = {}
        for name in LABELS:
            if args.baseline:
                round_.setdefault("before", {}).update(
                    measure_in(Path(args.baseline), args.people, args.repeat, name)
                )
            round_.setdefault("after", {}).update(measure_in(None, args.people, args.repeat, name))
            if args.pure:
                round_.setdefault("pure", {}).update(
                    measure_in(None, args.people, args.repeat, name, {"PULSE_CORE": "pure"})
                )
        result["rounds"].append(round_)
        for side, figures in round_.items():
            for name in LABELS:
                f = figures[name]
                st = f["state"]
                cpu = f.get("events_per_cpu_s", 0.0)
                print(
                    f"{side:6} {name:8} {figures.get('core', 'pure'):8} "
                    f"{f['events_per_s']:9,.0f} ev/s {cpu:9,.0f} ev/cpu-s  "
                    f"runs {f['runs_s']}  "
                    f"state B/person mean {st['mean']:.0f} p50 {st['p50']:.0f} "
                    f"p99 {st['p99']:.0f} max {st['max']:.0f}  timers {st['pending_timers']}"
                )
        if args.baseline:
            for side in ("after", "pure") if args.pure else ("after",):
                for name in LABELS:
                    after, before = round_[side][name], round_["before"][name]
                    ratio = after["events_per_s"] / before["events_per_s"]
                    cpu_ratio = after["events_per_cpu_s"] / before["events_per_cpu_s"]
                    print(f"ratio  {name:8} {side:6} {ratio:.2f}x wall  {cpu_ratio:.2f}x cpu")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
