"""The profile API's adapter over the core's person state (``pipeline/profiles/view.py``).

If the core changes its per-person layout, these tests (and only the adapter)
must change: they build persons with the real core and check what the API
would show, and that an unexpected layout fails loudly.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from pipeline.core.engine import MemoryStore, Processor
from pipeline.core.opensession import plain
from pipeline.profiles.view import LayoutChanged, ProfileView
from pipeline.topology.dsl import load, load_topology
from tests.integration.runtime_helpers import COMMERCE
from tests.unit.helpers import MIN, T0, ev


def commerce() -> tuple[Processor, ProfileView]:
    topo = load_topology(COMMERCE)
    proc = Processor(topo.operators, allowed_lateness_ms=0, store=MemoryStore(), stage=topo.stage,
                     identity=topo.identity)  # fmt: skip
    return proc, ProfileView(topo.operators, topo.stage)


def profile(proc: Processor, view: ProfileView, person: str) -> dict[str, Any]:
    state = proc.store.load(person)
    assert state is not None
    before = json.dumps(plain(state), sort_keys=True)  # (plain: sessions as their stored dicts)
    got = view.profile(person, state, proc.watermark_ms)
    assert json.dumps(plain(state), sort_keys=True) == before, "the adapter changed the person"
    json.dumps(got)  # plain JSON
    return got


def test_a_started_checkout_is_a_pending_timer_with_its_deadline_and_cause() -> None:
    proc, view = commerce()
    proc.process(ev("m1", "product_viewed", 0, user_id="u1"), "u1")
    proc.process(ev("m2", "checkout_started", 1, user_id="u1"), "u1")
    proc.advance_to(T0 + 2 * MIN)  # both are final: the absence rule has started
    got = profile(proc, view, "u1")
    timers = {t["rule"]: t for t in got["pending_timers"]}
    assert timers["checkout_abandoned"]["deadline_ms"] == T0 + 31 * MIN
    assert timers["checkout_abandoned"]["caused_by"] == {"message_id": "m2",
                                                         "event_time_ms": T0 + MIN}  # fmt: skip
    assert timers["checkout_abandoned"]["cancelled_by"] == "order_completed"
    assert timers["session_close"]["deadline_ms"] == T0 + 31 * MIN  # 30 min gap after m2
    assert got["traits"]["events_total"] == 2
    assert got["traits"]["event_counts_total"] == {"product_viewed": 1, "checkout_started": 1}
    assert "active_this_week" in got["segments"]
    assert got["open_session"]["event_count"] == 2
    assert got["as_of_ms"] == T0 + 2 * MIN
    assert got["awaiting_watermark"] == []
    # a purchase cancels it; an event not yet final is shown as awaiting the watermark
    proc.process(ev("m3", "order_completed", 3, user_id="u1"), "u1")
    got = profile(proc, view, "u1")
    assert [e["message_id"] for e in got["awaiting_watermark"]] == ["m3"]
    proc.advance_to(T0 + 4 * MIN)
    got = profile(proc, view, "u1")
    assert [t["rule"] for t in got["pending_timers"]] == ["browse_abandoned", "session_close"]


def test_merged_anonymous_ids_and_the_heat_map() -> None:
    proc, view = commerce()
    proc.process(ev("a1", "product_viewed", 0, anonymous_id="anon-1"), "anon-1")
    proc.advance_to(T0 + MIN)
    anon = proc.extract("anon-1") or {}
    proc.merge_in("u2", anon, "anon-1", event_time_ms=T0 + 2 * MIN, message_id="l1")
    proc.process(ev("l1", "logged_in", 2, anonymous_id="anon-1", user_id="u2"), "u2")
    got = profile(proc, view, "u2")
    ids = got["identities"]
    assert ids["anonymous_ids"] == ["anon-1"]
    proc.advance_to(T0 + 3 * MIN)  # the watermark passed the link: one person
    got = profile(proc, view, "u2")
    assert got["identities"]["anonymous_ids"] == ["anon-1"]
    assert got["identities"]["joining"] == []
    assert got["identities"]["awaiting_merge"] == []
    heat = got["activity_heatmap"]
    assert heat["total"] == 2
    assert sum(map(sum, heat["cells"])) == 2
    assert len(heat["cells"]) == 7
    assert all(len(row) == 24 for row in heat["cells"])
    assert got["scores"]["category_interest"] == {} or isinstance(got["scores"], dict)


def test_the_builtin_topology_timer_is_its_own_operator() -> None:
    topo = load(None)
    proc = Processor(topo.operators, allowed_lateness_ms=0, store=MemoryStore(), stage=topo.stage)
    view = ProfileView(topo.operators, topo.stage)
    proc.process(ev("m1", "checkout_started", 0, user_id="u1"), "u1")
    proc.advance_to(T0 + MIN)
    timers = profile(proc, view, "u1")["pending_timers"]
    assert sorted((t["rule"], t["deadline_ms"]) for t in timers) == [
        ("checkout_abandoned", T0 + 30 * MIN),
        ("session_close", T0 + 30 * MIN),
    ]


@pytest.mark.parametrize(
    "broken",
    [
        {"rules": {"seg": "night_shopper"}},
        {"rules": {"t": {"checkout_abandoned": {"no": "act"}}}},
        {"_ids": "anon-1"},
        {"behavior": {"o": "open"}},
        {"behavior": {"t": {"a": [1, 2, 1, {}]}, "o": []}},
    ],
)
def test_an_unexpected_layout_fails_loudly(broken: dict[str, Any]) -> None:
    _, view = commerce()
    with pytest.raises((LayoutChanged, KeyError, TypeError, IndexError)):
        view.profile("u1", broken, T0)
