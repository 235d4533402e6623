"""The ``pulse`` command line.

::

    pulse kafka start|stop|status      a local single-node Kafka (KRaft), no Docker
    pulse produce --file events.jsonl  JSON-lines events -> pulse.events (Avro)
    pulse worker                       run the stream worker (ingest + behavior agents)
    pulse tail TOPIC [--max N] [--timeout S]   decode a topic to JSON lines
    pulse replay FILE [--out DIR]      run the core over a file, without Kafka

Every command uses ``KAFKA_BOOTSTRAP_SERVERS`` when it is set.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from pipeline.config import Settings
from pipeline.errors import PulseError


def _kafka(args: argparse.Namespace, settings: Settings) -> int:
    from pipeline import kafka_local

    lk = kafka_local.LocalKafka.from_settings(settings)
    if args.action == "start":
        kafka_local.start(lk, timeout_s=args.timeout)
    elif args.action == "stop":
        kafka_local.stop(lk)
    else:
        st = kafka_local.status(lk)
        print(st)
        return 0 if st.running else 1
    return 0


def _produce(args: argparse.Namespace, settings: Settings) -> int:
    from pipeline.produce import produce_file
    from pipeline.topics import ensure_topics

    ensure_topics(settings, partitions=args.partitions)
    sent, raw = produce_file(settings, Path(args.file), allow_invalid=args.allow_invalid)
    print(
        f"produced {sent} event(s) to {settings.topic('events')}"
        + (f" and {raw} invalid line(s) for the dead-letter topic" if raw else ""),
        file=sys.stderr,
    )
    return 0


def _worker(args: argparse.Namespace, settings: Settings) -> int:
    from pipeline import metrics
    from pipeline.topics import ensure_topics
    from pipeline.topology import default_operators
    from pipeline.worker.app import PulseWorker

    ensure_topics(settings, partitions=args.partitions)
    metrics.serve(args.metrics_port)
    worker = PulseWorker(settings, default_operators(), partitions=args.partitions)
    from faust.worker import Worker

    # Logging at info, not warn: below info Faust turns on its terminal spinner,
    # which sets the root logger to DEBUG (every library debug call then costs).
    Worker(worker.app, loglevel=args.loglevel, quiet=True).execute_from_commandline()


def _tail(args: argparse.Namespace, settings: Settings) -> int:
    from pipeline.tail import dumps, tail

    for record in tail(settings, args.topic, max_records=args.max, timeout_s=args.timeout):
        print(dumps(record), flush=True)
    return 0


def _replay(args: argparse.Namespace, settings: Settings) -> int:
    from pipeline.replay import load_events, replay_events, write_outputs
    from pipeline.topology import default_operators

    outputs = replay_events(
        load_events(Path(args.file)),
        default_operators(),
        allowed_lateness_ms=settings.allowed_lateness_ms,
    )
    counts = write_outputs(
        outputs,
        prefix=settings.topic_prefix,
        out_dir=Path(args.out) if args.out else None,
        stdout=sys.stdout,
    )
    summary = ", ".join(f"{n} to {t}" for t, n in sorted(counts.items())) or "no outputs"
    print(f"replayed {args.file}: {summary}", file=sys.stderr)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pulse", description="Real-time behavioral events.")
    sub = parser.add_subparsers(dest="command", required=True)

    kafka = sub.add_parser("kafka", help="run a local single-node Kafka broker (no Docker)")
    kafka.add_argument("action", choices=["start", "stop", "status"])
    kafka.add_argument("--timeout", type=float, default=90.0, help="seconds to wait for readiness")
    kafka.set_defaults(func=_kafka)

    produce = sub.add_parser("produce", help="produce events onto pulse.events")
    produce.add_argument("--file", required=True, help="JSON lines, Segment or schema field names")
    produce.add_argument(
        "--allow-invalid",
        action="store_true",
        help="send invalid lines as they are (they land in the DLQ)",
    )
    produce.add_argument("--partitions", type=int, default=4, help="partitions of new topics")
    produce.set_defaults(func=_produce)

    worker = sub.add_parser("worker", help="run a Pulse stream worker")
    worker.add_argument("--partitions", type=int, default=4, help="partitions of Pulse's topics")
    worker.add_argument(
        "--metrics-port",
        type=int,
        default=Settings.metrics_port_from_env(),
        help="Prometheus /metrics port (0 = off; env PULSE_METRICS_PORT)",
    )
    worker.add_argument("--loglevel", default="info")
    worker.set_defaults(func=_worker)

    tail_p = sub.add_parser("tail", help="decode a Pulse topic to JSON lines")
    tail_p.add_argument("topic")
    tail_p.add_argument("--max", type=int, default=None, help="stop after N records")
    tail_p.add_argument(
        "--timeout", type=float, default=10.0, help="stop after this many seconds without a record"
    )
    tail_p.set_defaults(func=_tail)

    replay = sub.add_parser("replay", help="run the core over a JSON-lines file, no Kafka")
    replay.add_argument("file")
    replay.add_argument("--out", help="write DIR/<topic>.jsonl instead of stdout")
    replay.set_defaults(func=_replay)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = Settings.from_env()
        return int(args.func(args, settings))
    except PulseError as err:
        print(f"pulse: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
