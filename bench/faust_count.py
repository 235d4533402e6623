"""System (b): a minimal Faust agent that decodes and counts per person in a RocksDB table.

Configured by environment (``bench.run`` sets it): BENCH_BOOTSTRAP, BENCH_TOPIC,
BENCH_APP, BENCH_DATADIR, BENCH_STATS (a JSON file: count, first, last wall times),
BENCH_FAUST_SETTINGS (JSON Faust settings, e.g. the producer linger Pulse uses),
BENCH_FAUST_TAKE=N (batches of up to N events with ``take_events``: one table read
and write per key per batch), BENCH_FAUST_STATELESS=1 (with TAKE: decode and
count in memory, no table: the ceiling of Faust's stream path itself).
Run: ``python -m bench.faust_count worker -l info``.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import faust

from bench.workload import fast_decoder, person_key
from pipeline.worker.partition import in_partition_of

ENV = os.environ
TUNED: dict[str, Any] = json.loads(ENV.get("BENCH_FAUST_SETTINGS", "{}"))

app = faust.App(
    ENV.get("BENCH_APP", "bench-faust"),
    broker=f"kafka://{ENV.get('BENCH_BOOTSTRAP', '127.0.0.1:9092')}",
    store="rocksdb://",
    datadir=ENV.get("BENCH_DATADIR", "/tmp/bench-faust"),
    topic_partitions=4,
    topic_replication_factor=1,
    web_enabled=False,
    key_serializer="raw",
    value_serializer="raw",
    consumer_auto_offset_reset="earliest",
    **TUNED,
)
topic = app.topic(ENV.get("BENCH_TOPIC", "bench.events"), partitions=4)
# Raw bytes in and out (like Pulse's person-state table): the count as ASCII digits.
counts = app.Table("counts", partitions=4, key_type=bytes, value_type=bytes)
decode = fast_decoder()
stats = {"count": 0, "first": 0.0, "last": 0.0}
STATS = Path(ENV.get("BENCH_STATS", "/tmp/bench-faust.json"))


TAKE = int(ENV.get("BENCH_FAUST_TAKE") or 0)
STATELESS = ENV.get("BENCH_FAUST_STATELESS") == "1"


def _seen(n: int) -> None:
    now = time.time()
    if not stats["count"]:
        stats["first"] = now
    stats["count"] += n
    stats["last"] = now


async def count_each(stream: Any) -> None:
    async for value in stream:
        key = person_key(decode(value)).encode()
        counts[key] = b"%d" % (int(counts.get(key) or 0) + 1)
        _seen(1)


async def count_batches(stream: Any) -> None:
    async for events in stream.take_events(TAKE, within=0.05):
        # per partition: Faust routes a table read or write to the partition of the
        # "current event", which take_events leaves unset in the agent's task
        groups: dict[int, tuple[Any, dict[bytes, int]]] = {}
        for event in events:
            group = groups.setdefault(event.message.partition, (event, {}))[1]
            key = person_key(decode(event.value)).encode()
            group[key] = group.get(key, 0) + 1
        for event, group in [] if STATELESS else groups.values():
            with in_partition_of(event):
                for key, n in group.items():
                    counts[key] = b"%d" % (int(counts.get(key) or 0) + n)
        _seen(len(events))


app.agent(topic, name="count")(count_batches if TAKE else count_each)


@app.timer(0.5)
async def dump_stats() -> None:
    STATS.write_text(json.dumps(stats))


if __name__ == "__main__":
    app.main()
