"""System (a): confluent-kafka consume + Avro decode, count per person, nothing else.

``python -m bench.raw_consume BOOTSTRAP TOPIC N {fast|wire}`` prints one JSON line.
"""

from __future__ import annotations

import json
import sys
import time
import uuid
from collections import Counter

from confluent_kafka import Consumer

from bench.workload import fast_decoder, person_key


def main() -> None:
    bootstrap, topic, n, mode = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    if mode == "fast":
        decode = fast_decoder()
        key_of = person_key
    else:
        from pipeline.contract.produce import partition_key
        from pipeline.contract.wire import decode_event

        decode = decode_event
        key_of = partition_key
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"bench-raw-{uuid.uuid4().hex[:8]}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "fetch.max.bytes": 52_428_800,
            "queued.max.messages.kbytes": 262_144,
        }
    )
    consumer.subscribe([topic])
    counts: Counter[str] = Counter()
    seen = 0
    first = last = 0.0
    deadline = time.monotonic() + 600
    while seen < n and time.monotonic() < deadline:
        for msg in consumer.consume(1000, 1.0):
            if msg.error() is not None:
                continue
            if not seen:
                first = time.time()
            counts[key_of(decode(msg.value()))] += 1
            seen += 1
        last = time.time()
    consumer.close()
    print(
        json.dumps(
            {
                "count": seen,
                "people": len(counts),
                "sum": sum(counts.values()),
                "first": first,
                "last": last,
            }
        )
    )


if __name__ == "__main__":
    main()
