"""Ingest throughput: the SDK's produce rate on a broker, the decoder's rate per format.

    python bench/bench_ingest.py [--events 100000] [--decode 50000] [--no-broker]

* SDK: ``PulseClient.send`` of synthetic shopper events (pipeline.tools.synthetic) to
  a fresh topic on ``KAFKA_BOOTSTRAP_SERVERS`` (default 127.0.0.1:9092), timed
  from the first send to the end of ``flush`` (every event acknowledged,
  acks=all, idempotent, lz4, linger 5 ms).
* Decoder: ``pipeline.contract.wire.decode_event`` in-process over the same events in
  each wire format: Avro single-object, registry framing (writer schema cached
  after the first lookup) and JSON (Segment field names). Validation included.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipeline.config import Settings
from pipeline.contract.avro import load_schema
from pipeline.contract.registry import RegistryDecoder, frame
from pipeline.contract.wire import decode_event, encode_event
from pipeline.tools.synthetic import SyntheticConfig, event_to_json, generate


def bench_decode(events: list, n: int) -> dict[str, float]:  # type: ignore[type-arg]
    events = events[:n]
    single = [encode_event(e) for e in events]
    registry = RegistryDecoder(fetch=lambda _id: load_schema("event").canonical)
    framed = [frame(1, data[10:]) for data in single]
    as_json = [json.dumps(event_to_json(e), separators=(",", ":")).encode() for e in events]
    rates: dict[str, float] = {}
    for name, records, reg in (
        ("avro single-object", single, None),
        ("registry-framed (cached schema)", framed, registry),
        ("json (Segment names)", as_json, None),
    ):
        started = time.perf_counter()
        for data in records:
            decode_event(data, registry=reg)
        rates[name] = len(records) / (time.perf_counter() - started)
    return rates


def bench_sdk(events: list, bootstrap: str) -> float:  # type: ignore[type-arg]
    from pipeline.contract.topics import ensure_topics
    from pipeline.sdk import PulseClient

    settings = Settings(
        bootstrap_servers=bootstrap,
        bootstrap_from_env=True,
        topic_prefix=f"bench{uuid.uuid4().hex[:8]}.",
    )
    ensure_topics(settings, ["events"], partitions=4)
    with PulseClient(settings=settings) as client:
        started = time.perf_counter()
        for event in events:
            client.send(event)
        client.flush(120)
        elapsed = time.perf_counter() - started
    assert client.delivered == len(events), (client.delivered, client.failed)
    return len(events) / elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=100_000, help="events for the SDK run")
    parser.add_argument("--decode", type=int, default=50_000, help="records per decoder format")
    parser.add_argument("--no-broker", action="store_true", help="decoder only")
    args = parser.parse_args()
    started = time.perf_counter()
    data = generate(SyntheticConfig(seed=1, people=max(100, args.events // 15), days=7))
    gen_rate = len(data.events) / (time.perf_counter() - started)
    events = data.events[: max(args.events, args.decode)]
    rows = [("synthetic generator (in-process)", gen_rate)]
    rows += list(bench_decode(events, args.decode).items())
    if not args.no_broker:
        bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
        rows.append(
            (
                f"SDK produce -> broker ({min(len(events), args.events)} events)",
                bench_sdk(events[: args.events], bootstrap),
            )
        )
    width = max(len(name) for name, _ in rows)
    print(f"{'what':<{width}}  events/s")
    print(f"{'-' * width}  --------")
    for name, rate in rows:
        print(f"{name:<{width}}  {rate:>8,.0f}")


if __name__ == "__main__":
    main()
