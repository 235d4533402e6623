"""Summarise a py-spy speedscope profile: where the main thread's time goes.

``python -m bench.profile_top FILE.speedscope.json [--top 25]`` prints the
functions with the most inclusive and self time, and a split by area (Faust's
stream loop, aiokafka consumer/producer, asyncio, logging, RocksDB, Avro, Pulse).
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path

AREAS = (
    ("bench decode (fastavro)", ("bench/workload.py",)),
    ("logging", ("/logging/",)),
    ("avro (fastavro + pipeline.contract.avro)", ("fastavro", "pipeline/contract/avro.py")),
    (
        "pulse decode/validate (wire, events)",
        ("pipeline/contract/wire.py", "pipeline/core/events.py"),
    ),
    ("pulse core (engine, rules)", ("pipeline/core/",)),
    ("pulse state encode (records)", ("pipeline/worker/records.py",)),
    ("pulse metrics / prometheus", ("prometheus_client", "pipeline/worker/metrics.py")),
    ("faust tables + rocksdb", ("faust/tables/", "faust/stores/", "rocksdict")),
    ("aiokafka producer", ("aiokafka/producer",)),
    ("aiokafka consumer", ("aiokafka/consumer", "aiokafka/record", "aiokafka/protocol")),
    ("faust transport/consumer", ("faust/transport/",)),
    (
        "faust streams/agents/topics",
        ("faust/streams", "faust/agents", "faust/topics", "faust/channels", "faust/events"),
    ),
    ("mode / asyncio scheduling", ("mode/", "/asyncio/")),
)


def area(path: str) -> str | None:
    for name, needles in AREAS:
        if any(n in path for n in needles):
            return name
    return None


def summarise(path: Path, top: int = 25) -> str:
    data = json.loads(path.read_text())
    frames = data["shared"]["frames"]
    out = []
    for prof in data["profiles"]:
        total = sum(prof["weights"]) or 1
        if len(prof["samples"]) < 200:
            continue
        incl: Counter[str] = Counter()
        self_: Counter[str] = Counter()
        areas: Counter[str] = Counter()
        idle = 0
        for stack, wgt in zip(prof["samples"], prof["weights"], strict=True):
            names = [frames[i] for i in stack]
            if not names:
                continue
            leaf = names[-1]
            lname = f"{leaf['name']} ({Path(leaf.get('file', '?')).name}:{leaf.get('line', 0)})"
            if leaf["name"] in (
                "select",
                "poll",
                "epoll_wait",
                "_run_once",
            ) and "selectors" in leaf.get("file", ""):
                idle += wgt
            self_[lname] += wgt
            seen = set()
            for f in names:
                key = f"{f['name']} ({Path(f.get('file', '?')).name})"
                if key not in seen:
                    incl[key] += wgt
                    seen.add(key)
            # attribute the sample to the innermost frame that belongs to a known area
            for f in reversed(names):
                a = area(f.get("file", ""))
                if a:
                    areas[a] += wgt
                    break
            else:
                areas["other"] += wgt
        out.append(
            f"### thread {prof['name']}: {len(prof['samples'])} samples, "
            f"idle in select {idle / total:.0%}"
        )
        out.append("area (innermost known frame) | share")
        out += [f"  {a}: {n / total:.1%}" for a, n in areas.most_common()]
        out.append("top self:")
        out += [f"  {n / total:5.1%} {k}" for k, n in self_.most_common(top // 2)]
        out.append("top inclusive:")
        out += [f"  {n / total:5.1%} {k}" for k, n in incl.most_common(top)]
    return "\n".join(out)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("file")
    p.add_argument("--top", type=int, default=30)
    a = p.parse_args()
    print(summarise(Path(a.file), a.top))


if __name__ == "__main__":
    main()
