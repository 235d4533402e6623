"""System (c): Quix Streams decodes and counts per person in its RocksDB state.

Environment: BENCH_BOOTSTRAP, BENCH_TOPIC, BENCH_APP (consumer group), BENCH_DATADIR
(state dir), BENCH_STATS (a JSON file: count, first and last wall times),
BENCH_QUIX_GUARANTEE (``at-least-once``, Quix's default, or ``exactly-once``).
Quix's own defaults otherwise (commit every 5 s, changelog topics on).
Run: ``python -m bench.quix_count``.
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path
from typing import Any

from quixstreams import Application

from bench.workload import fast_decoder, person_key

ENV = os.environ


def main() -> None:
    app = Application(
        broker_address=ENV.get("BENCH_BOOTSTRAP", "127.0.0.1:9092"),
        consumer_group=ENV.get("BENCH_APP", "bench-quix"),
        auto_offset_reset="earliest",
        state_dir=ENV.get("BENCH_DATADIR", "/tmp/bench-quix"),
        loglevel="INFO",
        processing_guarantee=ENV.get("BENCH_QUIX_GUARANTEE") or "at-least-once",
    )
    topic = app.topic(
        ENV.get("BENCH_TOPIC", "bench.events"), key_deserializer="bytes", value_deserializer="bytes"
    )
    decode = fast_decoder()
    stats = {"count": 0, "first": 0.0, "last": 0.0}
    path = Path(ENV.get("BENCH_STATS", "/tmp/bench-quix.json"))

    def count(value: bytes, state: Any) -> None:
        person_key(decode(value))  # keyed by the record key, the same person id
        state.set("count", state.get("count", 0) + 1)
        now = time.time()
        if not stats["count"]:
            stats["first"] = now
        stats["count"] += 1
        stats["last"] = now

    def dump() -> None:
        while True:
            path.write_text(json.dumps(stats))
            time.sleep(0.5)

    threading.Thread(target=dump, daemon=True).start()
    sdf = app.dataframe(topic)
    sdf.update(count, stateful=True)
    app.run()


if __name__ == "__main__":
    main()
