"""The harness, one command: Pulse's runtime for speed and for reliability.

``python -m bench.run`` (full sizes), ``--quick`` (smaller), ``--tiny`` (the smoke
test's size), ``--only a,c,p,d,live,live2,shuffle,bad,crash,alo,rebalance,broker``.
Appends a dated section to ``bench/RESULTS.md``. See ``bench/README.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.common import (
    RESULTS,
    Proc,
    broker_pid,
    events_in,
    exit_on_sigterm,
    free_port,
    git_commit,
    kafka_version,
    log,
)

__all__ = ["Bench", "Proc", "broker_pid", "free_port", "git_commit", "kafka_version", "main"]

SPEED_PARTS = {"a", "c", "p", "d"}
RELIABILITY_PARTS = {"live", "live2", "shuffle", "bad", "crash", "alo", "rebalance", "broker"}
ALL = "a,c,p,d,live,live2,shuffle,bad,crash,alo,rebalance,broker"

#: (speed events, people, live events, crash events, kills, outage s, latency s)
SIZES = {
    "full": (200_000, 10_000, 200_000, 1_000_000, 20, 30.0, 15.0),
    "quick": (50_000, 3_000, 30_000, 100_000, 8, 15.0, 8.0),
    "tiny": (3_000, 300, 4_000, 5_000, 2, 5.0, 4.0),
}


class Bench:
    """What other bench modules import from here (``bench.bench_core``)."""

    @staticmethod
    def events_in(ports: list[int], topic: str) -> int:
        return events_in(ports, topic)


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__)
    size = p.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="smaller sizes (~20 min)")
    size.add_argument("--tiny", action="store_true", help="the smoke test's sizes (~1.5 min)")
    p.add_argument("--only", default=ALL, help=f"parts to run (default {ALL})")
    p.add_argument("--events", type=int, help="speed workload: events")
    p.add_argument("--people", type=int, help="speed workload: people")
    p.add_argument("--live-events", type=int, help="live ≡ replay / bad input data set")
    p.add_argument("--crash-events", type=int, help="kill / rebalance / outage data set")
    p.add_argument("--kills", type=int, help="kill -9s per crash run")
    p.add_argument("--outage-seconds", type=float, help="broker outage length")
    p.add_argument("--latency-seconds", type=float, help="per guarantee; 0 skips latency")
    p.add_argument("--latency-rate", type=float, default=0.0, help="default: half of d x1")
    p.add_argument("--commerce-x2", action="store_true", help="also d with 2 workers")
    p.add_argument("--days", type=int, default=90, help="days of event time in the data sets")
    p.add_argument("--seed", type=int, default=11)
    p.add_argument("--bad-every", type=int, default=50, help="a bad record every N good ones")
    p.add_argument(
        "--topology", default="topologies/commerce.yaml", help="topology of d and reliability"
    )
    p.add_argument("--harness-home", default="/tmp/harness-home", help="the outage broker's home")
    p.add_argument("--harness-port", type=int, default=29092, help="its port (controller +1)")
    p.add_argument("--timeout", type=float, default=900.0, help="seconds per speed system")
    p.add_argument("--label", default="", help="a note for the results heading")
    p.add_argument("--results", default=str(RESULTS), help="file to append to ('' = none)")
    p.add_argument("--json", default="", help="also write the raw results here")
    p.add_argument("--keep", action="store_true", help="keep work dirs and topics")
    p.add_argument(
        "--bootstrap", default=os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
    )
    args = p.parse_args(argv)
    args.argv = list(argv if argv is not None else sys.argv[1:])
    sizes = SIZES["tiny" if args.tiny else "quick" if args.quick else "full"]
    names = ("events", "people", "live_events", "crash_events", "kills", "outage_seconds")
    for name, value in zip((*names, "latency_seconds"), sizes, strict=True):
        if getattr(args, name) is None:
            setattr(args, name, value)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    exit_on_sigterm()
    only = {x.strip() for x in args.only.split(",") if x.strip()}
    unknown = only - SPEED_PARTS - RELIABILITY_PARTS
    if unknown:
        raise SystemExit(f"--only: unknown parts {sorted(unknown)} (known: {ALL})")
    run_id = f"bench{datetime.now(UTC):%m%d%H%M%S}{uuid.uuid4().hex[:4]}"
    result: dict[str, Any] = {"run": run_id, "commit": git_commit()}
    if only & SPEED_PARTS:
        from bench.speed import Speed

        workdir = Path(tempfile.mkdtemp(prefix=f"{run_id}-"))
        speed = Speed(args, run_id, workdir)
        try:
            result["speed"] = speed.run(only & SPEED_PARTS)
        finally:
            speed.cleanup()
            if not args.keep:
                shutil.rmtree(workdir, ignore_errors=True)
    if only & RELIABILITY_PARTS:
        from bench.reliability import Reliability

        result["reliability"] = Reliability(args).run(only & RELIABILITY_PARTS)
    from bench.report import render

    text = render(result, args)
    print(text)
    if args.results:
        path = Path(args.results)
        with path.open("a") as fh:
            fh.write("\n" + text)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1, default=str))
    rel = result.get("reliability", {})
    failed = [r["name"] for r in rel.get("runs", []) if not r["ok"]]
    if failed:
        log(f"reliability runs that did not pass: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
