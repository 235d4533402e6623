"""``pulse replay FILE``: the same core as the worker, over a file, without Kafka.

Replay models what the workers do, partition by partition, so that the same
events give the same outputs live and here. Each event's record key (its
anonymous id, else its user id: ``pipeline.contract.produce.partition_key``) names its
``pulse.events`` partition among ``partitions``, and each partition is a
:class:`~pipeline.core.intake.SourcePartition` with its own stream time,
duplicate window and identity links, exactly as a worker keeps them: an event
is late if it is earlier than *its partition's* stream time minus the allowed
lateness. The persons' watermark is the minimum over partitions of their
stream times (minus infinity until every partition has had an event), as on a
worker's person partitions; at the end of the input it moves to infinity so
every pending timer fires. Identity links move the anonymous person's state
into the user's at the event that links them. The output is deterministic:
the same input gives the same bytes. The loop that runs once per event is
:class:`~pipeline.core.replaying.ReplayRun`, in the core so that it is compiled.

**The watermark moves in steps.** A worker moves its persons' watermark once
per batch (``PULSE_BATCH_MAX`` records), not once per event; replay moves it
once it has gained :data:`WATERMARK_STEP_MS` of event time. What is decided is
a function of the events and their event times only (docs/time-and-state.md),
so the outputs are the same records whatever the step; only when, within the
run, a record is written changes. The step keeps the work per event flat as
the number of persons grows: moved at every event, the watermark of a busy
stream passes a person's buffered events one at a time, each with a timer of
its own, where a coarser step decides a burst of them at once. A 10-minute
step is what the worker's batches of 500 records amount to at about 20,000
active persons (bench/RESULTS.md, issue 12).

**The collector.** Every :data:`FREEZE_EVERY` events replay moves what is
alive into the collector's permanent generation (:func:`gc.freeze`), and
takes it back at the end. The persons' states are trees without reference
cycles, which reference counting frees frozen or not (no collection in a
replay of 20,000 people found any cyclic garbage). Unfrozen, the collector
scanned every person's state again and again, at a cost that grew with the
number of persons (1.7 us per event at 2,000 people, 7.7 at 20,000). A
thousand events leave fewer new objects than the collector's young threshold
(50,000, ``pipeline.core.gctune``), so it hardly runs (0.4 and 0.7 us per
event; 1.6 and 1.8 when frozen every 5,000). A cycle made before a freeze and
dropped after it is reclaimed only after the replay.
"""

from __future__ import annotations

import gc
import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import IO, Any

from pipeline.contract.produce import BadLine, read_json_lines
from pipeline.core.clock import POS_INF_MS
from pipeline.core.dedupe import DedupeWindow
from pipeline.core.engine import MemoryStore, Operator, Processor, Stage
from pipeline.core.events import Event
from pipeline.core.identity import IdentityRules
from pipeline.core.intake import SourcePartition
from pipeline.core.outputs import Output
from pipeline.core.replaying import ReplayRun
from pipeline.errors import PulseError

DEFAULT_PARTITIONS = 4
#: How far the persons' watermark may lag the partitions' stream times (10 min of event time).
WATERMARK_STEP_MS = 10 * 60_000
#: Every this many events, what the replay holds is moved out of the collector's sight.
FREEZE_EVERY = 1_000


def replay_events(
    events: Iterable[Event],
    operators: Sequence[Operator],
    *,
    allowed_lateness_ms: int,
    stage: Stage | None = None,
    identity: IdentityRules | None = None,
    end_ms: int = POS_INF_MS,
    processor: Processor | None = None,
    partitions: int = DEFAULT_PARTITIONS,
    dedupe_window: DedupeWindow | None = None,
    watermark_step_ms: int = WATERMARK_STEP_MS,
) -> list[Output]:
    """Run ``operators`` (and a topology's rule ``stage``) over ``events``, as the workers would.

    ``partitions`` is the partition count of ``pulse.events`` (the workers'
    ``--partitions``). With ``identity``, identities are stitched; without,
    the person is the event's user id, else its anonymous id. At the end,
    stream time moves to ``end_ms`` (by default infinity, which fires every
    pending timer). Pass ``processor`` to inspect the person states afterwards
    (its operators and stage are used instead).

    The persons' watermark moves once it has gained ``watermark_step_ms`` (and
    at the end), as a worker moves it once per batch: see the module docs.
    """
    proc = processor or Processor(
        operators,
        allowed_lateness_ms=allowed_lateness_ms,
        store=MemoryStore(),
        stage=stage,
        identity=identity,
    )
    window = DedupeWindow() if dedupe_window is None else dedupe_window
    sources = [SourcePartition(allowed_lateness_ms, identity, window) for _ in range(partitions)]
    freezing = gc.isenabled()
    run = ReplayRun(proc, sources, watermark_step_ms)
    try:
        for n, event in enumerate(events, 1):
            if freezing and n % FREEZE_EVERY == 0:
                gc.freeze()
            run.take(event)
        return run.finish(end_ms)  # (still frozen: the flush decides every person's timers)
    finally:
        if freezing:
            gc.unfreeze()


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
