"""System (b): a minimal Faust agent that decodes and counts per person in a RocksDB table.

Configured by environment (``bench.run`` sets it): BENCH_BOOTSTRAP, BENCH_TOPIC,
BENCH_APP, BENCH_DATADIR, BENCH_STATS (a JSON file: count, first, last wall times),
BENCH_TUNED=1 (the same Faust settings Pulse's worker uses when tuned).
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


@app.agent(topic)
async def count(stream: Any) -> None:
    async for value in stream:
        key = person_key(decode(value)).encode()
        counts[key] = b"%d" % (int(counts.get(key) or 0) + 1)
        now = time.time()
        if not stats["count"]:
            stats["first"] = now
        stats["count"] += 1
        stats["last"] = now


@app.timer(0.5)
async def dump_stats() -> None:
    STATS.write_text(json.dumps(stats))


if __name__ == "__main__":
    app.main()
