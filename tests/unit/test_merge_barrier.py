"""The worker's merge crosses partitions: until the anonymous state arrives, the
known person's timers wait (Processor.process(..., awaits=...))."""

from __future__ import annotations

from pipeline.core.clock import POS_INF_MS
from pipeline.core.engine import MemoryStore, Processor
from tests.unit.helpers import CHECKOUT as RULE
from tests.unit.helpers import MIN, T0, ev


def test_timers_wait_for_the_merge_then_fire_once_for_the_user() -> None:
    # the anonymous half lives on another partition: its processor
    anon_side = Processor([RULE], allowed_lateness_ms=0, store=MemoryStore())
    anon_side.process(ev("c1", "checkout_started", 0, anonymous_id="a"))
    user_side = Processor([RULE], allowed_lateness_ms=0, store=MemoryStore())
    # the login reaches the user's partition before the anonymous state does
    assert (
        user_side.process(ev("l1", "logged_in", 1, anonymous_id="a", user_id="u"), "u", awaits="a")
        == []
    )
    # the user also starts a checkout on another device: one person, one journey
    user_side.process(ev("c2", "checkout_started", 2, user_id="u"), "u")
    # the watermark passes the checkout's deadline: nothing may fire on half a person
    assert [o for o in user_side.advance_to(T0 + 45 * MIN) if o.topic == "triggers"] == []
    state = anon_side.extract("a")
    assert state is not None
    outputs = user_side.merge_in("u", state, "a")
    fired = [o.record for o in outputs if o.topic == "triggers"]
    assert [(r["person_id"], r["event_ids"]) for r in fired] == [("u", ["c1"])]
    assert [o for o in user_side.advance_to(POS_INF_MS) if o.topic == "triggers"] == []
