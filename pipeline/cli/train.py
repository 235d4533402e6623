"""``pulse train`` and ``pulse cdnow``: prediction models, and the public data set to try them on.

::

    pulse train --task T --examples DIR_OR_FILE [--kind gbdt|logistic] [--out DIR]
    pulse train --task T --bootstrap [SERVERS] [--publish] [--min-per-class N]
    pulse train --task recs|send_time --examples DIR_OR_FILE [--publish --bootstrap [SERVERS]]
    pulse cdnow --out events.jsonl [--source CDNOW_master.txt] [--max-customers N]

``pulse train`` needs the ``train`` extra (``pip install -e '.[train]'``;
``make setup`` installs it): LightGBM and numpy, which the workers never import.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

from pipeline.config import Settings
from pipeline.errors import ConfigError, ModelError


def _examples(args: argparse.Namespace, settings: Settings) -> Any:
    from pipeline.tools import train_examples as tx

    if args.examples:
        return tx.read_files(Path(args.examples), args.task, settings.topic_prefix)
    topic = settings.topic(tx.TRAINING + args.task)
    return list(tx.parse_lines(_values(args, settings), topic, args.task))


def _values(args: argparse.Namespace, settings: Settings) -> list[bytes]:
    """The records of ``pulse.training.<task>`` (file, directory or topic) as JSON lines."""
    from pipeline.tools import train_examples as tx

    if args.examples:
        found = tx.examples_file(Path(args.examples), args.task, settings.topic_prefix)
        with found.open("rb") as handle:
            return list(handle)
    if args.bootstrap is None:
        raise ConfigError("pulse train needs --examples DIR_OR_FILE or --bootstrap [SERVERS]")
    from confluent_kafka import Consumer

    consumer = Consumer(
        {
            "bootstrap.servers": settings.bootstrap_servers,
            "group.id": "pulse-train",
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
            "enable.partition.eof": True,
        }
    )
    topic = settings.topic(tx.TRAINING + args.task)
    try:
        return list(tx.values_from_topic(consumer, topic))
    finally:
        consumer.close()


def _cut_ms(text: str | None) -> int | None:
    if text is None:
        return None
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise ConfigError(f"--cut {text!r}: not an ISO-8601 time") from exc
    if when.tzinfo is None:
        raise ConfigError(f"--cut {text!r}: give a zone, e.g. {text}Z")
    return int(when.timestamp() * 1000)


def _train(args: argparse.Namespace, settings: Settings) -> int:
    try:
        from pipeline.tools import train as trainer
    except ImportError as exc:
        raise ConfigError(
            f"pulse train needs the train extra: pip install -e '.[train]' ({exc})"
        ) from exc
    if args.bootstrap:
        settings = dataclasses.replace(settings, bootstrap_servers=args.bootstrap)
    if args.publish and args.bootstrap is None:
        raise ConfigError("--publish needs --bootstrap [SERVERS]: where pulse.models is")
    if args.task in TABLE_TASKS:
        return _train_table(args, settings)
    examples = _examples(args, settings)
    model, report = trainer.train(
        examples, args.task, kind=args.kind, test_share=args.test_share, cut_ms=_cut_ms(args.cut)
    )
    problem = trainer.publish_problem(report, args.min_per_class)
    return _save(args, settings, model, report, text=trainer.format_report(report), problem=problem)


def _save(
    args: argparse.Namespace,
    settings: Settings,
    model: dict[str, Any],
    report: dict[str, Any],
    *,
    text: str,
    problem: str | None,
) -> int:
    """Write the model and its evaluation, print them, publish the model (``--publish``).

    ``problem`` (why the model may not be published) stops ``--publish``.
    """
    from pipeline.tools import train as trainer

    out = Path(args.out) if args.out else settings.home / "models"
    out.mkdir(parents=True, exist_ok=True)
    model_path = out / f"{args.task}.model.json"
    model_path.write_text(json.dumps(model, sort_keys=True, indent=1) + "\n")
    report_path = out / f"{args.task}.evaluation.json"
    report_path.write_text(json.dumps(report, sort_keys=True, indent=2) + "\n")
    print(json.dumps(report, sort_keys=True) if args.json else text)
    print(f"model: {model_path}; evaluation: {report_path}", file=sys.stderr)
    if args.publish:
        if problem:
            raise ModelError(problem)
        topic = trainer.publish(settings, model)
        print(f"published {args.task} to {topic}", file=sys.stderr)
    return 0


#: Tasks whose model is a table built from session records, not a classifier.
TABLE_TASKS = ("recs", "send_time")


def _train_table(args: argparse.Namespace, settings: Settings) -> int:
    """``pulse train --task recs|send_time``: the co-occurrence table, the send-time prior."""
    from pipeline.tools import train_recs, train_sendtime

    task: Any
    values = _values(args, settings)
    if args.task == "recs":
        task = train_recs
        model, report = task.train(task.parse_lines(values), test_share=args.test_share)
    else:
        task = train_sendtime
        visits = task.parse_lines(values)
        model, report = task.train(visits, test_share=args.test_share, strength=args.strength)
    problem = task.publish_problem(report, args.min_sessions)
    return _save(args, settings, model, report, text=task.format_report(report), problem=problem)


def _cdnow(args: argparse.Namespace, _settings: Settings) -> int:
    from pipeline.tools import cdnow
    from pipeline.tools.synthetic import write_jsonl

    events = cdnow.load(
        Path(args.source) if args.source else None, max_customers=args.max_customers
    )
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", encoding="utf-8") as handle:
        n = write_jsonl(events, handle)
    people = len({e.person_id for e in events})
    print(f"wrote {n} order_completed event(s) of {people} people to {args.out}", file=sys.stderr)
    return 0


def add_parsers(sub: Any) -> None:
    """``pulse train`` and ``pulse cdnow`` on the ``pulse`` command's subparsers."""
    train = sub.add_parser("train", help="fit, evaluate, save and publish a prediction model")
    train.add_argument(
        "--task", required=True, help="e.g. purchase_7d, churn_30d, recs or send_time"
    )
    train.add_argument("--examples", help="a JSON-lines file, or a `pulse replay --out` directory")
    train.add_argument(
        "--bootstrap",
        nargs="?",
        const="",
        default=None,
        metavar="SERVERS",
        help="Kafka: read pulse.training.<task> (without --examples) and publish there "
        "(default KAFKA_BOOTSTRAP_SERVERS)",
    )
    train.add_argument("--kind", choices=["gbdt", "logistic"], default="gbdt")
    train.add_argument(
        "--test-share", type=float, default=0.25, help="the latest share of examples to test on"
    )
    train.add_argument("--cut", help="split at this time instead (ISO-8601 with a zone)")
    train.add_argument("--out", help="where to write <task>.model.json (default .pulse/models)")
    train.add_argument("--json", action="store_true", help="print the evaluation as JSON")
    train.add_argument(
        "--publish", action="store_true", help="send the model to pulse.models (key = task)"
    )
    train.add_argument(
        "--min-per-class",
        type=int,
        default=100,
        help="publish only with this many positive and negative examples in train and test",
    )
    train.add_argument(
        "--min-sessions",
        type=int,
        default=100,
        help="recs / send_time: publish only with this many sessions",
    )
    train.add_argument(
        "--strength",
        type=float,
        default=5.0,
        help="send_time: how many engagements the population prior is worth",
    )
    train.set_defaults(func=_train)

    data = sub.add_parser("cdnow", help="the CDNOW purchase log (in lifetimes) as Pulse events")
    data.add_argument("--out", required=True, help="write JSON-lines events here")
    data.add_argument("--source", help="CDNOW_master.txt (default: the installed lifetimes')")
    data.add_argument("--max-customers", type=int, default=None, help="the first N people only")
    data.set_defaults(func=_cdnow)
