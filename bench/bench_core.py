"""Core and topology figures (issues 4, 5 and 12), in-process, in one run.

    python -m bench.bench_core [--people 2000] [--tiny] [--results FILE|''] [--json FILE]

No Kafka: over a synthetic week (``SyntheticConfig(people=P, days=7)``):

* ``pulse replay`` events/s: ``pipeline.tools.replay.replay_events`` with the built-in
  topology and with ``topologies/commerce.yaml`` (includes the final flush to +inf);
* state bytes per person after the week: a ``Processor`` over a ``MemoryStore``
  driven to the last event, *without* the flush, then
  ``len(encode_state(state))`` per person (mean, p50, p99, max).

The live figures (the worker's events/s, trigger latency per processing
guarantee, 1 vs 2 workers) are the runtime harness's: ``python -m bench.run``
(``bench/README.md``). ``bench/core_speed.py`` compares two checkouts of the core.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.procstat import machine
from bench.run import git_commit

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "RESULTS.md"
COMMERCE = "topologies/commerce.yaml"
HEADING = "Core and topology (issues 4, 5 and 12), in-process"


def log(msg: str) -> None:
    print(f"[bench_core {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def pct(xs: list[float], q: float) -> float:
    """Nearest-rank percentile (q=0.99 of 20 samples is the largest)."""
    if not xs:
        return float("nan")
    s = sorted(xs)
    return s[min(len(s) - 1, int(q * len(s)))]


def week(people: int, seed: int = 7) -> list[Any]:
    from pipeline.tools.synthetic import SyntheticConfig, generate

    return generate(SyntheticConfig(seed=seed, people=people, days=7)).events


def replay_rate(events: list[Any], topology: str | None, lateness_ms: int) -> dict[str, Any]:
    from pipeline.tools.replay import replay_events
    from pipeline.topology.dsl import load

    topo = load(topology)
    started = time.perf_counter()
    outputs = replay_events(
        events, topo.operators, allowed_lateness_ms=lateness_ms, stage=topo.stage
    )
    secs = time.perf_counter() - started
    return {"events_per_s": len(events) / secs, "seconds": secs, "outputs": len(outputs)}


def state_sizes(events: list[Any], topology: str | None, lateness_ms: int) -> dict[str, Any]:
    """Person state after the last event (no flush to +inf), encoded as the store keeps it."""
    from pipeline.core.engine import MemoryStore, Processor
    from pipeline.topology.dsl import load
    from pipeline.worker.records import encode_state

    topo = load(topology)
    store = MemoryStore()
    proc = Processor(topo.operators, allowed_lateness_ms=lateness_ms, store=store, stage=topo.stage)
    for event in events:
        proc.process(event)
    sizes = [float(len(encode_state(state))) for state in store.data.values()]
    return {
        "persons": len(sizes),
        "mean": sum(sizes) / max(len(sizes), 1),
        "p50": pct(sizes, 0.5),
        "p99": pct(sizes, 0.99),
        "max": max(sizes, default=0.0),
        "total_bytes": int(sum(sizes)),
        "pending_timers": proc.pending_timers,
    }


def core_in_use() -> str:
    """Which core this process runs: compiled by mypyc or pure Python (``PULSE_CORE``)."""
    from pipeline.core.native import STATUS

    return "compiled (mypyc)" if STATUS.active else f"pure Python ({STATUS.reason})"


def run(args: argparse.Namespace) -> dict[str, Any]:
    started = time.monotonic()
    events = week(args.people)
    result: dict[str, Any] = {
        "workload": {
            "people": args.people,
            "days": 7,
            "events": len(events),
            "persons": len({e.person_id for e in events}),
        },
        "in_process": {},
        "core": core_in_use(),
    }
    log(f"synthetic week of {args.people} people, {len(events)} events; core: {result['core']}")
    for label, topo in (("builtin", None), ("commerce", COMMERCE)):
        rate = replay_rate(events, topo, args.lateness_ms)
        sizes = state_sizes(events, topo, args.lateness_ms)
        result["in_process"][label] = {"replay": rate, "state": sizes}
        log(
            f"replay {label}: {rate['events_per_s']:,.0f} ev/s; state B/person mean "
            f"{sizes['mean']:.0f} p50 {sizes['p50']:.0f} p99 {sizes['p99']:.0f} "
            f"max {sizes['max']:.0f} over {sizes['persons']} persons"
        )
    result["seconds"] = time.monotonic() - started
    return result


def render(result: dict[str, Any], args: argparse.Namespace) -> str:
    m = machine()
    wl, ip = result["workload"], result["in_process"]
    lines = [
        f"## {HEADING}: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, commit {git_commit()}"
        + (f" ({args.label})" if args.label else ""),
        "",
        f"Machine: {m['cores']} cores, {m['ram']} RAM, {m['cpu']}; Python {m['python']}. "
        f"Workload: synthetic week (`SyntheticConfig(people={wl['people']}, days=7)`), "
        f"{wl['events']} events of {wl['persons']} persons; allowed lateness "
        f"{args.lateness_ms} ms. `python -m bench.bench_core"
        + (" --tiny" if args.tiny else "")
        + f"`, {result['seconds']:.0f} s. Core: {result.get('core', '?')}.",
        "",
        "| figure | built-in topology | commerce topology | how |",
        "|---|---:|---:|---|",
    ]
    rb, rc = ip["builtin"]["replay"], ip["commerce"]["replay"]
    lines.append(
        f"| `pulse replay` in-process, events/s | {rb['events_per_s']:,.0f} | "
        f"{rc['events_per_s']:,.0f} | `replay_events` over the week incl. the flush to +inf |"
    )
    sb, sc = ip["builtin"]["state"], ip["commerce"]["state"]
    for key in ("mean", "p50", "p99", "max"):
        how = f"`encode_state` per person, no flush ({sb['persons']} persons)"
        lines.append(
            f"| state B/person after the week, {key} | {sb[key]:,.0f} | {sc[key]:,.0f} | "
            f"{how if key == 'mean' else ''} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.bench_core", description=__doc__)
    p.add_argument("--people", type=int, default=2000, help="people of the synthetic week")
    p.add_argument("--lateness-ms", type=int, default=5000, help="PULSE_ALLOWED_LATENESS_MS")
    p.add_argument("--tiny", action="store_true", help="smoke test size (a few seconds)")
    p.add_argument("--label", default="", help="a note for the results heading")
    p.add_argument("--results", default=str(RESULTS), help="file to append to ('' = none)")
    p.add_argument("--json", default="", help="also write the raw results here")
    args = p.parse_args(argv)
    if args.tiny:
        args.people = 100
    result = run(args)
    text = render(result, args)
    print(text)
    if args.results:
        with Path(args.results).open("a") as fh:
            fh.write("\n" + text)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
