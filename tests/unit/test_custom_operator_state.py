"""A custom operator may keep any state, not only the built-in operators' dicts.

The compiled core checks declared types at run time: a variable first assigned
from the behavior operator (a dict or None) and then from a plugin operator (an
int here) must be declared ``Any``, or the plugin's state raises ``TypeError``.
This runs in CI on the compiled core (``PULSE_CORE=native make test``), through
every place the core hands operator state around: an event, the watermark with
and without the rule stage, a merge.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from pipeline.core.engine import MemoryStore, Processor
from pipeline.core.events import Event
from pipeline.core.outputs import Output
from pipeline.topology.dsl import load_topology

COMMERCE = Path(__file__).resolve().parents[2] / "topologies" / "commerce.yaml"
MIN = 60_000


class Count:
    """The number of a person's events (an int)."""

    name = "count"

    def on_event(self, state: Any, event: Event, person_id: str, watermark_ms: int) -> Any:
        return (state or 0) + 1, []

    def on_watermark(self, state: Any, person_id: str, watermark_ms: int) -> Any:
        return state, []

    def next_deadline_ms(self, state: Any) -> int | None:
        return None

    def merge(self, a: Any, b: Any) -> Any:
        return (a or 0) + (b or 0)


def event(mid: str, at_min: int, **ids: str) -> Event:
    return Event(message_id=mid, type="track", event="page_viewed",
                 timestamp_ms=1_790_000_000_000 + at_min * MIN, **ids)  # type: ignore[arg-type]  # fmt: skip


@pytest.mark.parametrize("with_stage", [False, True])
def test_an_operator_keeping_an_int_runs_beside_the_built_in_ones(with_stage: bool) -> None:
    topo = load_topology(COMMERCE)
    proc = Processor(
        [*topo.operators, Count()],
        allowed_lateness_ms=0,
        store=MemoryStore(),
        stage=topo.stage if with_stage else None,
        tune_gc=False,
    )
    out: list[Output] = []
    for i, who in enumerate(["u1", "u1", "a1", "u1"]):
        ids = {"user_id": who} if who.startswith("u") else {"anonymous_id": who}
        out += proc.process(event(f"m{i}", i, **ids), who)
    out += proc.advance_to(1_790_000_000_000 + 600 * MIN)  # the watermark moves on
    state = proc.extract("a1")
    assert state is not None
    assert state["count"] == 1
    out += proc.merge_in("u1", state, "a1", event_time_ms=1_790_000_000_000 + 601 * MIN)
    out += proc.advance_to(1_790_000_000_000 + 700 * MIN)
    merged = proc.store.load("u1")
    assert merged is not None
    assert merged["count"] == 4
