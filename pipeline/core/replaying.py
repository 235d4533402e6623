"""Replay's per-event path, compiled with the core: source partitions, then persons.

``pulse replay`` (:mod:`pipeline.tools.replay`) feeds every event through
:meth:`ReplayRun.take`: the event's source partition (from its record key)
decides duplicates, lateness and identity, as a worker's does; the persons'
processor takes it; the persons' watermark, the minimum of the partitions'
stream times, moves once it has gained ``step_ms`` of event time (see the
module docs of :mod:`pipeline.tools.replay`). It lives in the core so that
mypyc compiles the loop that runs once per event.
"""

from __future__ import annotations

from pipeline.core.clock import NEG_INF_MS
from pipeline.core.engine import Processor
from pipeline.core.events import Event
from pipeline.core.identity import IDENTITIES
from pipeline.core.intake import SourcePartition
from pipeline.core.outputs import Output
from pipeline.core.partitioning import partition_for, partition_key
from pipeline.core.stitching import StitchAction


class ReplayRun:
    """The source partitions' stream times and the outputs of one replay."""

    def __init__(self, proc: Processor, sources: list[SourcePartition], step_ms: int) -> None:
        self.proc = proc
        self.sources = sources
        self.step_ms = step_ms
        self.times: list[int] = [NEG_INF_MS] * len(sources)
        self.outputs: list[Output] = []

    def take(self, event: Event) -> None:
        """One event through its source partition and the persons, as a worker takes it."""
        proc, times, outputs = self.proc, self.times, self.outputs
        s = partition_for(partition_key(event), len(times))
        verdict = self.sources[s].accept(event)
        if verdict.kind == "duplicate":
            return
        if verdict.kind == "late":
            late = verdict.late
            assert late is not None
            outputs.append(late)
            return
        for action in verdict.actions:
            outputs.extend(apply_action(proc, action, event))
        outputs.extend(proc.process(event, verdict.person, advance_clock=False))
        ts = event.timestamp_ms
        if ts > times[s]:
            times[s] = ts
            watermark = min(times)
            if watermark >= proc.clock.stream_time_ms + self.step_ms:
                outputs.extend(proc.advance_to(watermark))

    def finish(self, end_ms: int) -> list[Output]:
        """Move to the last watermark, then to ``end_ms``; returns every output of the run."""
        proc, outputs = self.proc, self.outputs
        watermark = min(self.times)
        if watermark > proc.clock.stream_time_ms:
            outputs.extend(proc.advance_to(watermark))
        outputs.extend(proc.advance_to(end_ms))
        return outputs


def apply_action(proc: Processor, action: StitchAction, event: Event) -> list[Output]:
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
