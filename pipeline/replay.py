"""``pulse replay FILE``: the same core as the worker, over a file, without Kafka.

Events are applied in file order with event time only; at the end of the input
the watermark moves to infinity so every pending timer fires. The output is
deterministic: the same input gives the same bytes.

With ``identity`` rules (the CLI passes the topology's), replay stitches
identities like the worker: a :class:`~pipeline.core.stitching.Stitcher` routes
each event to its person, and a link moves the anonymous person's state into
the user's (``Processor.extract`` / ``merge_in``) before the event is applied.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import IO, Any

from pipeline.core.clock import POS_INF_MS
from pipeline.core.engine import MemoryStore, Operator, Processor, Stage
from pipeline.core.events import Event
from pipeline.core.identity import IDENTITIES, IdentityRules
from pipeline.core.outputs import Output
from pipeline.core.stitching import StitchAction, Stitcher
from pipeline.errors import PulseError
from pipeline.produce import BadLine, read_json_lines


def replay_events(
    events: Iterable[Event],
    operators: Sequence[Operator],
    *,
    allowed_lateness_ms: int,
    stage: Stage | None = None,
    identity: IdentityRules | None = None,
    end_ms: int = POS_INF_MS,
    processor: Processor | None = None,
) -> list[Output]:
    """Run ``operators`` (and a topology's rule ``stage``) over ``events``.

    Events are applied in order; then stream time moves to ``end_ms`` (by
    default infinity, which fires every pending timer). With ``identity``,
    identities are stitched (see the module docstring); without, the person is
    the event's user id, else its anonymous id. Pass ``processor`` to inspect
    the person states afterwards (its operators and stage are used instead).
    """
    proc = processor or Processor(
        operators,
        allowed_lateness_ms=allowed_lateness_ms,
        store=MemoryStore(),
        stage=stage,
        identity=identity,
    )
    stitcher = None if identity is None else Stitcher(identity)
    outputs: list[Output] = []
    for event in events:
        if stitcher is None:
            outputs.extend(proc.process(event))
            continue
        person, actions = stitcher.route(event)
        for action in actions:
            outputs.extend(_apply(proc, action, event))
        outputs.extend(proc.process(event, person or None))
    outputs.extend(proc.advance_to(end_ms))
    return outputs


def _apply(proc: Processor, action: StitchAction, event: Event) -> list[Output]:
    """Emit the identity record; on a link, move the anonymous person into the user.

    Like the worker, a link always merges (an anonymous id without state merges
    ``{}``: it still counts towards the user's ``max_anonymous_per_user``).
    """
    outputs = [Output(IDENTITIES, action.user_id, action.record)]
    if action.kind != "link":
        return outputs
    state = proc.extract(action.anonymous_id) or {}
    merged = proc.merge_in(
        action.user_id,
        state,
        action.anonymous_id,
        event_time_ms=event.timestamp_ms,
        message_id=event.message_id,
    )
    outputs.extend(merged)
    if merged[0].record["kind"] == "conflict" and state:
        outputs.extend(proc.restore(action.anonymous_id, state))
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
