"""BehaviorOperator's quick "anything to do at W?" check agrees with its deadline."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.core.behavior import BehaviorOperator
from pipeline.core.events import Event

MIN = 60_000
T0 = 1_790_000_000_000
OP = BehaviorOperator(idle_ttl_ms=3 * 60 * MIN)  # a 3-hour TTL: evictions happen too


def reference_due(state: dict, watermark: int) -> bool:  # type: ignore[type-arg]
    queue = state["q"]
    if queue and queue[0][0] < watermark:
        return True
    deadline = OP.next_deadline_ms(state)
    return deadline is not None and deadline <= watermark


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 600), st.integers(0, 90)), min_size=1, max_size=25),
    st.lists(st.integers(0, 700), min_size=1, max_size=10),
)
def test_quick_due_check_matches_the_deadline(
    steps: list[tuple[int, int]], probes: list[int]
) -> None:
    """Events at increasing minutes (each arrives with a watermark up to 90 min behind it)."""
    state = None
    minute = 0
    for i, (gap, lag) in enumerate(steps):
        minute += gap
        event = Event(message_id=f"m{i}", type="track", event="page_viewed", user_id="u",
                      timestamp_ms=T0 + minute * MIN)  # fmt: skip
        watermark = T0 + (minute - lag) * MIN
        if state is not None:
            state, _ = OP.on_watermark(state, "u", watermark)
        state, _ = OP.on_event(state, event, "u", watermark)
        assert state is not None
        for p in probes:
            w = T0 + (minute - 90 + p) * MIN
            assert OP._due(state, w) == reference_due(state, w), (minute, p)
