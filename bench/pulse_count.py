"""The per-person count on Pulse's runtime: ``python -m bench.pulse_count worker --partitions N``.

Exactly ``pulse worker`` (``pipeline.cli.worker.run_worker``: the same consumer
loop, stores and changelog, transactions, clocks, dedupe, lateness and DLQ)
with one operator instead of a topology: a count per person, kept in the
person's state. No sessions, traits, rules or identity stitching (a person is
the event's user id, else its anonymous id), so it measures the runtime, the
way ``bench/quix_count.py`` measures Quix Streams. A topology YAML cannot
express it: every topology file runs the built-in session and trait
operators.
"""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Any

from pipeline.core.events import Event
from pipeline.core.outputs import Output


class CountOperator:
    """``state`` is the number of the person's events (merged persons add up)."""

    name = "count"

    def on_event(
        self, state: Any, event: Event, person_id: str, watermark_ms: int
    ) -> tuple[Any, list[Output]]:
        return (state or 0) + 1, []

    def on_watermark(
        self, state: Any, person_id: str, watermark_ms: int
    ) -> tuple[Any, list[Output]]:
        return state, []

    def next_deadline_ms(self, state: Any) -> int | None:
        return None

    def merge(self, a: Any, b: Any) -> Any:
        return (a or 0) + (b or 0)


def main(argv: list[str] | None = None) -> int:
    from pipeline.cli.worker import run_worker
    from pipeline.config import Settings
    from pipeline.contract.topics import ALL_TOPICS, ensure_topics
    from pipeline.worker import metrics
    from pipeline.worker.partition import Topology

    p = argparse.ArgumentParser(prog="python -m bench.pulse_count")
    p.add_argument("command", choices=["worker"])
    p.add_argument("--partitions", type=int, default=4)
    args = p.parse_args(argv)
    logging.basicConfig(level="INFO", format="[%(asctime)s] %(levelname)s %(name)s: %(message)s")
    settings = Settings.from_env()
    ensure_topics(settings, list(ALL_TOPICS), partitions=args.partitions)
    metrics.serve(Settings.metrics_port_from_env())
    topology = Topology([CountOperator()], identity=None)  # type: ignore[arg-type]
    return run_worker(settings, topology, args.partitions)


if __name__ == "__main__":
    sys.exit(main())
