"""Replay moves the persons' watermark in steps: the outputs do not depend on the step.

``replay_events`` moves the watermark once it has gained ``watermark_step_ms`` of
event time, as a worker moves it once per batch (``pipeline/tools/replay.py``).
Over a month of synthetic shoppers in arrival order, with identity stitching,
every step gives the same records (as a multiset) as moving it at every event,
and a replay that stops early decides as much and leaves as much pending.
"""

from __future__ import annotations

import json
from collections import Counter
from functools import cache

import pytest

from pipeline.core.clock import POS_INF_MS
from pipeline.core.engine import MemoryStore, Processor
from pipeline.core.events import Event
from pipeline.core.outputs import Output
from pipeline.tools.replay import WATERMARK_STEP_MS, replay_events
from pipeline.tools.synthetic import SyntheticConfig, generate
from pipeline.topology.dsl import Topology, load

LATENESS_MS = 5_000
HOUR = 3_600_000


@cache
def month() -> list[Event]:
    return generate(SyntheticConfig(seed=11, people=120, days=30)).events


@cache
def commerce() -> Topology:
    return load("topologies/commerce.yaml")


def replayed(
    step_ms: int, end_ms: int | None = None, events: list[Event] | None = None
) -> tuple[Counter[str], Counter[str]]:
    """The replay's records, and what its persons still had pending (flushed afterwards)."""
    topo = commerce()
    proc = Processor(topo.operators, allowed_lateness_ms=LATENESS_MS, store=MemoryStore(),
                     stage=topo.stage, identity=topo.identity)  # fmt: skip
    extra = {} if end_ms is None else {"end_ms": end_ms}
    outs = replay_events(month() if events is None else events, topo.operators,
                         allowed_lateness_ms=LATENESS_MS, stage=topo.stage,
                         identity=topo.identity, processor=proc, watermark_step_ms=step_ms,
                         **extra)  # fmt: skip
    return counted(outs), counted(proc.advance_to(POS_INF_MS))


def counted(outs: list[Output]) -> Counter[str]:
    return Counter(json.dumps([o.topic, o.key, o.record], sort_keys=True) for o in outs)


@pytest.mark.parametrize("step_ms", [WATERMARK_STEP_MS, 6 * HOUR])
def test_the_outputs_do_not_depend_on_the_watermark_step(step_ms: int) -> None:
    every_event, none = replayed(0)
    assert not none  # the replay flushed everything
    stepped, _ = replayed(step_ms)
    assert sum(every_event.values()) > 2_000  # a month of shoppers: a real workload
    assert stepped == every_event


def test_a_replay_that_stops_early_decides_what_moving_every_event_decides() -> None:
    events = month()[: len(month()) // 2]
    end = events[len(events) // 2].timestamp_ms  # behind the last watermark
    records_every, pending_every = replayed(0, end_ms=end, events=events)
    records_stepped, pending_stepped = replayed(6 * HOUR, end_ms=end, events=events)
    assert records_stepped == records_every
    assert pending_every  # persons still waiting for their deadlines
    assert pending_stepped == pending_every
