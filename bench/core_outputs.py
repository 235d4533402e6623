"""Replay outputs of a synthetic week, per topic, to compare two versions of the core.

    python -m bench.core_outputs write DIR [--people 2000] [--seed 7]
    python -m bench.core_outputs diff BEFORE_DIR AFTER_DIR

``write`` replays the synthetic week (``pipeline.tools.synthetic``, arrival order,
allowed lateness 5 s, identity stitching by each topology's rules) through the
built-in topology, ``topologies/commerce.yaml`` and ``topologies/ticketing.yaml``
and writes ``DIR/<topology>/<topic>.jsonl``: one canonical JSON record per line,
sorted. Run it with ``PYTHONPATH`` pointing at another checkout to get the
"before" side. ``diff`` counts, per topology and topic, the records only one
side has (as multisets).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path
from typing import Any

TOPOLOGIES = {
    "builtin": None,
    "commerce": "topologies/commerce.yaml",
    "ticketing": "topologies/ticketing.yaml",
}
LATENESS_MS = 5_000


def week(people: int, seed: int, days: int = 7) -> list[Any]:
    from pipeline.tools.synthetic import SyntheticConfig, generate

    return generate(SyntheticConfig(seed=seed, people=people, days=days)).events


def replay(events: list[Any], topology: str | None) -> list[Any]:
    from pipeline.tools.replay import replay_events
    from pipeline.topology.dsl import load

    topo = load(topology)
    return replay_events(
        events,
        topo.operators,
        allowed_lateness_ms=LATENESS_MS,
        stage=topo.stage,
        identity=topo.identity,
    )


def write(out: Path, people: int, seed: int) -> None:
    events = week(people, seed)
    for label, topology in TOPOLOGIES.items():
        by_topic: dict[str, list[str]] = {}
        for o in replay(events, topology):
            line = json.dumps([o.key, o.record], sort_keys=True, separators=(",", ":"))
            by_topic.setdefault(o.topic, []).append(line)
        folder = out / label
        folder.mkdir(parents=True, exist_ok=True)
        for topic, lines in by_topic.items():
            (folder / f"{topic}.jsonl").write_text("".join(f"{x}\n" for x in sorted(lines)))
        counts = ", ".join(f"{t} {len(v)}" for t, v in sorted(by_topic.items()))
        print(f"{label}: {len(events)} events -> {counts}")


def diff(before: Path, after: Path) -> int:
    changed = 0
    for label in TOPOLOGIES:
        topics = {p.name for side in (before, after) for p in (side / label).glob("*.jsonl")}
        for name in sorted(topics):
            a = _lines(before / label / name)
            b = _lines(after / label / name)
            only_a, only_b = sum((a - b).values()), sum((b - a).values())
            changed += only_a + only_b
            print(
                f"{label:9} {name[:-6]:28} before {sum(a.values()):7} after {sum(b.values()):7}"
                f"  only before {only_a:6}  only after {only_b:6}"
            )
    return 0 if changed == 0 else 1


def _lines(path: Path) -> Counter[str]:
    return Counter(path.read_text().splitlines()) if path.exists() else Counter()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.core_outputs", description=__doc__)
    sub = p.add_subparsers(dest="cmd", required=True)
    w = sub.add_parser("write")
    w.add_argument("dir")
    w.add_argument("--people", type=int, default=2000)
    w.add_argument("--seed", type=int, default=7)
    d = sub.add_parser("diff")
    d.add_argument("before")
    d.add_argument("after")
    args = p.parse_args(argv)
    if args.cmd == "write":
        write(Path(args.dir), args.people, args.seed)
        return 0
    return diff(Path(args.before), Path(args.after))


if __name__ == "__main__":
    sys.exit(main())
