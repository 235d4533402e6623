"""The ``pulse`` command line.

::

    pulse kafka start|stop|status      a local single-node Kafka (KRaft), no Docker
    pulse produce --file events.jsonl  JSON-lines events -> pulse.events (Avro)
    pulse produce --csv F --map ... | --synthetic [--predictive] [--out F]   CSV, shoppers
    pulse dlq inspect | replay [--reason R] [--max N]          the dead-letter topic
    pulse worker                       run a stream worker (exactly-once, RocksDB state)
    pulse tail TOPIC [--max N] [--timeout S]   decode a topic to JSON lines
    pulse profile ID [--url U] [--triggers]    a person now, from a worker's profile API
    pulse replay FILE [--out DIR]      run the core over a file, without Kafka
    pulse train --task T --examples D  fit, evaluate, save (and --publish) a prediction model
    pulse cdnow --out F                the public CDNOW purchase log as events

Every command uses ``KAFKA_BOOTSTRAP_SERVERS`` when it is set.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pipeline.config import Settings
from pipeline.errors import PulseError


def _kafka(args: argparse.Namespace, settings: Settings) -> int:
    from pipeline.tools.localkafka import launcher as kafka_local

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
    from pipeline.contract import produce as prod
    from pipeline.contract.topics import ensure_topics

    if args.synthetic and args.out:
        return _synthetic(args, settings)
    ensure_topics(settings, partitions=args.partitions)
    progress = None if args.no_progress else sys.stderr
    opts = {"allow_invalid": args.allow_invalid, "rate": args.rate, "progress": progress}
    if args.synthetic:
        data = _synthetic_data(args)
        sent, raw = prod.produce_events(
            settings, data.events, rate=args.rate, total=len(data.events), progress=progress
        )
    elif args.csv:
        sent, raw = prod.produce_csv(settings, args.csv, prod.parse_mapping(args.map or ""), **opts)
    else:
        sent, raw = prod.produce_file(settings, Path(args.file), **opts)
    print(
        f"produced {sent} event(s) to {settings.topic('events')}"
        + (f" and {raw} invalid line(s) for the dead-letter topic" if raw else ""),
        file=sys.stderr,
    )
    return 0


def _synthetic_data(args: argparse.Namespace) -> Any:
    from pipeline.tools import synthetic

    if args.predictive:
        from pipeline.tools import synthetic_predictive as predictive

        data = predictive.generate(
            predictive.PredictiveConfig(
                seed=args.seed, people=args.people, days=args.days, late_rate=args.late_rate
            )
        )
    else:
        config = synthetic.SyntheticConfig(
            seed=args.seed, people=args.people, days=args.days, late_rate=args.late_rate
        )
        data = synthetic.generate(config)
    out = Path(args.out) if args.out else None
    labels = (
        Path(args.labels)
        if args.labels
        else (synthetic.labels_path_for(out) if out else Path("pulse-synthetic.labels.json"))
    )
    synthetic.write_labels(data.labels, labels)
    print(f"labels: {labels}", file=sys.stderr)
    return data


def _synthetic(args: argparse.Namespace, _settings: Settings) -> int:
    from pipeline.tools import synthetic

    data = _synthetic_data(args)
    with Path(args.out).open("w", encoding="utf-8") as handle:
        n = synthetic.write_jsonl(data.events, handle)
    print(f"wrote {n} event(s) to {args.out}", file=sys.stderr)
    return 0


def _dlq(args: argparse.Namespace, settings: Settings) -> int:
    from pipeline.tools import dlq

    if args.action == "inspect":
        summary = dlq.inspect(settings)
        print(dlq.format_summary(settings.topic("events.dlq"), summary, as_json=args.json))
        return 0
    sent = dlq.replay(settings, reason=args.reason, max_records=args.max)
    print(f"re-drove {sent} record(s) to {settings.topic('events')}", file=sys.stderr)
    return 0


def _worker(args: argparse.Namespace, settings: Settings) -> int:
    import logging

    from pipeline.cli.worker import run_worker
    from pipeline.contract.topics import (
        ACTIVATIONS,
        ALL_TOPICS,
        ensure_topics,
        prediction_topics,
    )
    from pipeline.worker import metrics
    from pipeline.worker.partition import Topology

    logging.basicConfig(
        level=args.loglevel.upper(),
        format="[%(asctime)s] %(levelname)s %(name)s: %(message)s",
    )
    topo = _load_topology(args.topology, args.plugin)
    activations = [ACTIVATIONS + dest for dest in topo.destinations]
    training = prediction_topics(getattr(topo.stage, "predictions", None))
    ensure_topics(settings, [*ALL_TOPICS, *activations, *training], partitions=args.partitions)
    metrics.serve(args.metrics_port)
    topology = Topology(topo.operators, topo.stage, topo.identity)
    return run_worker(settings, topology, args.partitions)


def _profile(args: argparse.Namespace, _settings: Settings) -> int:
    import json

    from pipeline.profiles.client import fetch

    try:
        status, body = fetch(args.person_id, url=args.url, triggers=args.triggers)
    except (OSError, ValueError) as exc:
        raise PulseError(f"no profile API answered ({exc})") from exc
    print(
        json.dumps(body, indent=2, ensure_ascii=False),
        file=sys.stdout if status == 200 else sys.stderr,
    )
    return 0 if status == 200 else 1


def _tail(args: argparse.Namespace, settings: Settings) -> int:
    from pipeline.tools.tail import dumps, tail

    for record in tail(settings, args.topic, max_records=args.max, timeout_s=args.timeout):
        print(dumps(record), flush=True)
    return 0


def _replay(args: argparse.Namespace, settings: Settings) -> int:
    from pipeline.tools.replay import load_events, replay_events, write_outputs

    if args.file is None:  # `--models A B FILE`: argparse gave FILE to --models
        if not args.models:
            raise PulseError("replay: which events file? (pulse replay FILE ...)")
        args.file = args.models.pop()
    topo = _load_topology(args.topology, args.plugin)
    _load_models(topo.stage, args.models)
    outputs = replay_events(
        load_events(Path(args.file)),
        topo.operators,
        allowed_lateness_ms=settings.allowed_lateness_ms,
        stage=topo.stage,
        identity=topo.identity,
        partitions=args.partitions,
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


def _load_models(stage: Any, files: Sequence[str]) -> None:
    """``--models FILE ...``: put each model file into the stage's models, as a worker reads them.

    Warns (stderr) for each rule or segment reading ``score.<task>`` without a model.
    """
    import importlib

    from pipeline.errors import ModelError

    if not files and not hasattr(stage, "models"):
        return
    unscored = importlib.import_module("pipeline.core.models").unscored

    for name in files:
        try:
            task = stage.models.put_json(Path(name).read_bytes())
        except OSError as exc:
            raise PulseError(f"--models {name}: cannot read it ({exc.strerror})") from exc
        except ModelError as exc:
            raise PulseError(f"--models {name}: {exc}") from exc
        version = stage.models.version(task)
        print(f"pulse: model {task} (version {version}) from {name}", file=sys.stderr)
    for warning in unscored(stage, stage.models):
        print(f"pulse: warning: {warning}", file=sys.stderr)


def _load_topology(path: str | None, plugins: Sequence[str] = ()) -> Any:
    """The topology to run, after importing ``plugins``.

    Plugins are modules that register custom predicates and traits; the
    topology's warnings (likely typos) go to stderr.
    """
    import importlib

    from pipeline.topology.dsl import load

    for module in plugins:
        try:
            importlib.import_module(module)
        except ImportError as exc:
            raise PulseError(f"--plugin {module}: cannot import it ({exc})") from exc
    topo = load(path)
    for warning in topo.warnings:
        print(f"pulse: warning: {warning}", file=sys.stderr)
    return topo


def _add_topology_args(parser: argparse.ArgumentParser) -> None:
    """``--topology`` and ``--plugin``: the same for the worker and replay."""
    parser.add_argument("--topology", help="topology YAML (default: built-in checkout abandonment)")
    parser.add_argument(
        "--plugin",
        action="append",
        default=[],
        help="import this module first (custom predicates/traits)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pulse", description="Real-time behavioral events.")
    sub = parser.add_subparsers(dest="command", required=True)

    kafka = sub.add_parser("kafka", help="run a local single-node Kafka broker (no Docker)")
    kafka.add_argument("action", choices=["start", "stop", "status"])
    kafka.add_argument("--timeout", type=float, default=90.0, help="seconds to wait for readiness")
    kafka.set_defaults(func=_kafka)

    produce = sub.add_parser("produce", help="produce events onto pulse.events")
    source = produce.add_mutually_exclusive_group(required=True)
    source.add_argument("--file", help="JSON lines, Segment or schema field names (- = stdin)")
    source.add_argument("--csv", help="CSV with a header row (- = stdin); see --map")
    source.add_argument(
        "--synthetic",
        action="store_true",
        help="generate realistic shoppers (see --seed, --people, --days)",
    )
    produce.add_argument(
        "--map",
        help="CSV columns: FIELD=COLUMN,... e.g. event=Event,userId=uid,"
        "timestamp=ts,properties.revenue=amount (others become properties)",
    )
    produce.add_argument("--rate", type=float, default=None, help="at most N events per second")
    produce.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    produce.add_argument(
        "--predictive",
        action="store_true",
        help="synthetic: months of shoppers whose purchases, churn, open hours and products "
        "follow known rules (pipeline/tools/synthetic_predictive.py; e.g. --days 120)",
    )
    produce.add_argument("--seed", type=int, default=7, help="synthetic: random seed")
    produce.add_argument("--people", type=int, default=1000, help="synthetic: number of people")
    produce.add_argument("--days", type=int, default=7, help="synthetic: days of activity")
    produce.add_argument(
        "--late-rate",
        type=float,
        default=0.01,
        help="synthetic: share of events that arrive late (0..1)",
    )
    produce.add_argument(
        "--labels",
        help="synthetic: where to write the ground-truth labels "
        "(default: beside --out, else ./pulse-synthetic.labels.json)",
    )
    produce.add_argument("--out", help="synthetic: write JSON lines here instead of producing")
    produce.add_argument(
        "--allow-invalid",
        action="store_true",
        help="send invalid lines as they are (they land in the DLQ)",
    )
    produce.add_argument("--partitions", type=int, default=4, help="partitions of new topics")
    produce.set_defaults(func=_produce)

    dlq_p = sub.add_parser("dlq", help="inspect or re-drive the dead-letter topic")
    dlq_p.add_argument("action", choices=["inspect", "replay"])
    dlq_p.add_argument("--reason", help="replay: only records with this reason")
    dlq_p.add_argument("--max", type=int, default=None, help="replay: the N oldest records")
    dlq_p.add_argument("--json", action="store_true", help="inspect: print JSON")
    dlq_p.set_defaults(func=_dlq)

    worker = sub.add_parser("worker", help="run a Pulse stream worker")
    worker.add_argument("--partitions", type=int, default=4, help="partitions of Pulse's topics")
    worker.add_argument(
        "--metrics-port",
        type=int,
        default=Settings.metrics_port_from_env(),
        help="Prometheus /metrics port (0 = off; env PULSE_METRICS_PORT)",
    )
    worker.add_argument("--loglevel", default="info")
    _add_topology_args(worker)
    worker.set_defaults(func=_worker)

    profile = sub.add_parser("profile", help="a person now, from any worker's profile API")
    profile.add_argument("person_id")
    profile.add_argument(
        "--url", help="a worker's API (default PULSE_API_URL, else port 9110 here)"
    )
    profile.add_argument("--triggers", action="store_true", help="recent triggers instead")
    profile.set_defaults(func=_profile)

    tail_p = sub.add_parser("tail", help="decode a Pulse topic to JSON lines")
    tail_p.add_argument("topic")
    tail_p.add_argument("--max", type=int, default=None, help="stop after N records")
    tail_p.add_argument(
        "--timeout", type=float, default=10.0, help="stop after this many seconds without a record"
    )
    tail_p.set_defaults(func=_tail)

    replay = sub.add_parser("replay", help="run the core over a JSON-lines file, no Kafka")
    replay.add_argument("file", nargs="?", help="events, JSON lines")
    replay.add_argument(
        "--out",
        help="write DIR/<topic>.jsonl instead of stdout (with a predictions: section, the "
        "training examples too: DIR/pulse.training.<task>.jsonl, for pulse train --examples)",
    )
    replay.add_argument(
        "--models",
        nargs="+",
        default=[],
        metavar="FILE",
        help="model JSON files (pulse train's <task>.model.json) the stage scores with, "
        "as a worker uses the models on pulse.models",
    )
    replay.add_argument(
        "--partitions",
        type=int,
        default=4,
        help="partitions of pulse.events to model (the workers' --partitions; default 4)",
    )
    _add_topology_args(replay)
    replay.set_defaults(func=_replay)
    from pipeline.cli.deliver import add_parsers as add_deliver_parsers

    add_deliver_parsers(sub)
    from pipeline.cli.train import add_parsers as add_train_parsers

    add_train_parsers(sub)
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
