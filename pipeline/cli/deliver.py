"""``pulse deliver``: run the delivery worker, show its state, enable a destination again.

::

    pulse deliver [run] --destinations F [--partitions N] [--metrics-port P]
    pulse deliver check --destinations F [--topology T]   validate the file and exit
    pulse deliver status --destinations F [--json]   disabled destinations, backlog per topic
    pulse deliver enable NAME | disable NAME [--reason R]

It also adds ``--activations`` to ``pulse dlq inspect|replay``: the same tools
on ``pulse.activations.dlq`` (replay re-drives each record to its
destination's ``pulse.activations.<dest>`` topic).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from typing import Any

from pipeline.config import Settings

ENV_FILE = "PULSE_DESTINATIONS"
ENV_METRICS_PORT = "PULSE_DELIVER_METRICS_PORT"


def _destinations(args: argparse.Namespace) -> Any:
    from pipeline.deliver.config import load_destinations
    from pipeline.errors import ConfigError

    path = args.destinations or os.environ.get(ENV_FILE)
    if not path:
        raise ConfigError(f"pulse deliver needs --destinations FILE (or {ENV_FILE})")
    return load_destinations(path)


def _unconfigured(topology: str | None, destinations: Any) -> list[str]:
    """Destinations the topology names that have no entry (their activations would wait)."""
    if topology is None:
        return []
    from pipeline.topology.dsl import load

    missing = sorted(set(load(topology).destinations) - set(destinations.by_name))
    return [
        f"{topology}: destination {name!r} has no entry in {destinations.source}: "
        "its activations wait on their topic"
        for name in missing
    ]


def _deliver(args: argparse.Namespace, settings: Settings) -> int:
    from pipeline.errors import ConfigError

    if args.action in ("enable", "disable"):
        from pipeline.deliver.state import write_state

        if not args.name:
            raise ConfigError(f"pulse deliver {args.action} needs a destination name")
        write_state(settings, args.name, disabled=args.action == "disable", reason=args.reason)
        print(f"{args.name}: {args.action}d", file=sys.stderr)
        return 0
    destinations = _destinations(args)
    if args.action == "check":
        for warning in _unconfigured(args.topology, destinations):
            print(f"pulse: warning: {warning}", file=sys.stderr)
        for d in destinations:
            print(
                f"{d.name}: {d.format} to {d.url} ({len(d.secrets)} secret(s), "
                f"batch {d.batch.max_records}, {d.retry.attempts} attempts, {d.order})"
            )
        return 0
    if args.action == "status":
        from pipeline.deliver.status import render_status, status

        report = status(settings, destinations, group_id=args.group)
        print(json.dumps(report, indent=1) if args.json else render_status(report))
        return 0
    from pipeline.deliver.worker import run

    logging.basicConfig(
        level=getattr(logging, args.loglevel.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    for warning in _unconfigured(args.topology, destinations):
        logging.getLogger("pulse.deliver").warning("%s", warning)
    run(settings, destinations, partitions=args.partitions, metrics_port=args.metrics_port,
        group_id=args.group)  # fmt: skip
    return 0


def _dlq_with_activations(original: Any) -> Any:
    """Wrap ``pulse dlq``'s handler: ``--activations`` works on ``pulse.activations.dlq``."""

    def handler(args: argparse.Namespace, settings: Settings) -> int:
        if not getattr(args, "activations", False):
            return int(original(args, settings))
        from pipeline.deliver.records import DLQ
        from pipeline.tools import dlq

        if args.action == "inspect":
            summary = dlq.inspect(settings, topic=DLQ)
            print(dlq.format_summary(settings.topic(DLQ), summary, as_json=args.json))
            return 0
        sent = dlq.replay(settings, reason=args.reason, max_records=args.max, topic=DLQ)
        print(f"re-drove {sent} record(s) to their {settings.topic('activations.')}<destination> "
              "topics", file=sys.stderr)  # fmt: skip
        return 0

    return handler


def add_parsers(subparsers: Any) -> None:
    """Register ``pulse deliver`` (and ``pulse dlq --activations``) on the CLI's subparsers."""
    deliver = subparsers.add_parser(
        "deliver", help="deliver activations to webhook destinations (signed, retried, DLQ)"
    )
    deliver.add_argument("action", nargs="?", default="run",
                         choices=["run", "check", "status", "enable", "disable"])  # fmt: skip
    deliver.add_argument("name", nargs="?", help="enable/disable: the destination")
    deliver.add_argument("--destinations", "--config", dest="destinations",
                         help=f"destinations YAML (env {ENV_FILE})")  # fmt: skip
    deliver.add_argument("--topology", help="warn about destinations it names with no entry")
    deliver.add_argument("--partitions", type=int, default=4,
                         help="partitions of activation topics it has to create")  # fmt: skip
    deliver.add_argument(
        "--metrics-port", type=int, default=int(os.environ.get(ENV_METRICS_PORT, "9109")),
        help=f"Prometheus /metrics port (0 = off; env {ENV_METRICS_PORT}, default 9109)",
    )  # fmt: skip
    deliver.add_argument("--group", default=None,
                         help="consumer group (default <prefix>-deliver)")  # fmt: skip
    deliver.add_argument("--reason", default="disabled by hand", help="disable: why")
    deliver.add_argument("--json", action="store_true", help="status: print JSON")
    deliver.add_argument("--loglevel", default="info")
    deliver.set_defaults(func=_deliver)

    dlq = subparsers.choices.get("dlq")
    if dlq is not None:
        dlq.add_argument(
            "--activations",
            action="store_true",
            help="work on pulse.activations.dlq (undeliverable activations)",
        )
        dlq.set_defaults(func=_dlq_with_activations(dlq.get_default("func")))
