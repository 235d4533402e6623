"""``pulse replay FILE``: the same core as the worker, over a file, without Kafka.

Events are applied in file order with event time only; at the end of the input
the watermark moves to infinity so every pending timer fires. The output is
deterministic: the same input gives the same bytes.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import IO, Any

from pipeline.core.clock import POS_INF_MS
from pipeline.core.engine import MemoryStore, Operator, Processor, Stage
from pipeline.core.events import Event
from pipeline.core.outputs import Output
from pipeline.errors import PulseError
from pipeline.produce import BadLine, read_json_lines


def replay_events(
    events: Iterable[Event],
    operators: Sequence[Operator],
    *,
    allowed_lateness_ms: int,
    stage: Stage | None = None,
) -> list[Output]:
    """Run ``operators`` (and a topology's rule ``stage``) over ``events``.

    Events are applied in order; then the watermark moves to infinity, which
    fires every pending timer.
    """
    proc = Processor(
        operators, allowed_lateness_ms=allowed_lateness_ms, store=MemoryStore(), stage=stage
    )
    outputs: list[Output] = []
    for event in events:
        outputs.extend(proc.process(event))
    outputs.extend(proc.advance_to(POS_INF_MS))
    return outputs


def load_events(path: Path) -> list[Event]:
    with path.open("rb") as handle:
        items = list(read_json_lines(handle))
    bad = [i for i in items if isinstance(i, BadLine)]
    if bad:
        first = bad[0]
        raise PulseError(
            f"{path}:{first.line_no}: {first.reason}: {first.message}"
            + (f" (and {len(bad) - 1} more bad lines)" if len(bad) > 1 else "")
        )
    return [i for i in items if isinstance(i, Event)]


def _line(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":")) + "\n"


def write_outputs(
    outputs: Iterable[Output], *, prefix: str, out_dir: Path | None, stdout: IO[str]
) -> dict[str, int]:
    """Write outputs per topic (``DIR/<topic>.jsonl``) or to ``stdout``; returns counts."""
    counts: dict[str, int] = {}
    files: dict[str, IO[str]] = {}
    try:
        if out_dir is not None:
            out_dir.mkdir(parents=True, exist_ok=True)
        for out in outputs:
            topic = prefix + out.topic
            counts[topic] = counts.get(topic, 0) + 1
            if out_dir is None:
                stdout.write(_line({"topic": topic, "key": out.key, "record": out.record}))
                continue
            handle = files.get(topic)
            if handle is None:
                handle = files[topic] = (out_dir / f"{topic}.jsonl").open("w")
            handle.write(_line(out.record))
    finally:
        for handle in files.values():
            handle.close()
    return counts
