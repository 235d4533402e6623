"""Identity stitching through the pure core: the graph's rules and each fold's merge."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from pipeline.contract.topics import decode_output, encode_output
from pipeline.core.absence import AbsenceRule
from pipeline.core.behavior import BehaviorOperator
from pipeline.core.caps import CapPolicy
from pipeline.core.clock import POS_INF_MS
from pipeline.core.engine import IDS, MemoryStore, Processor
from pipeline.core.events import Event
from pipeline.core.identity import (
    DEFAULT_BLOCKED,
    IdentityRules,
    accept_merge,
    clean_id,
    decide_link,
    identity_record,
    person_key,
)
from pipeline.core.outputs import Output
from pipeline.core.rules import RuleStage, TriggerSpec
from pipeline.core.sessions import SessionsOperator, SessionWindows
from pipeline.core.stitching import Stitcher
from pipeline.core.traits import traits_of
from pipeline.core.triggers import MilestoneRule, RepetitionRule
from pipeline.errors import ConfigError
from pipeline.tools.replay import replay_events
from pipeline.topology.dsl import load_topology
from pipeline.topology.operators import person_traits

MIN = 60_000
T0 = 1_790_000_000_000
RULES = IdentityRules()
ABANDON = AbsenceRule("checkout_abandoned", "checkout_started", "order_completed", 30 * MIN)
RESTART = AbsenceRule(
    "checkout_abandoned", "checkout_started", "order_completed", 30 * MIN, restart_on_repeat=True
)


def ev(
    mid: str,
    name: str | None,
    at_min: float,
    *,
    anon: str | None = None,
    user: str | None = None,
    kind: str = "track",
    **props: Any,
) -> Event:
    return Event(
        message_id=mid,
        type=kind,
        event=name,
        anonymous_id=anon,
        user_id=user,
        timestamp_ms=T0 + int(at_min * MIN),
        properties=props,
        context={"timezone": "UTC"},
    )


def login(at_min: float, anon: str = "a1", user: str = "u1", mid: str = "id1") -> Event:
    return ev(mid, None, at_min, anon=anon, user=user, kind="identify")


def fired(outputs: list[Output], topic: str = "triggers") -> list[tuple[str, str, list[str]]]:
    return [(o.key, o.record["rule"], o.record["event_ids"]) for o in outputs if o.topic == topic]


def stitched(events: list[Event], ops: list[Any], lateness: int = 0, **kw: Any) -> list[Output]:
    return replay_events(events, ops, allowed_lateness_ms=lateness, identity=RULES, **kw)


# -- the identity graph's rules -------------------------------------------------------


@pytest.mark.parametrize("value", [*sorted(DEFAULT_BLOCKED), " NULL ", "Undefined", "  ", None])
def test_blocked_placeholders_are_not_ids(value: str | None) -> None:
    assert clean_id(value) is None


@pytest.mark.parametrize("value", ["a-42", "u1", "00", "nullable", "0x0"])
def test_real_ids_are_kept_as_is(value: str) -> None:
    assert clean_id(value) == value


def test_rules_validate_themselves_and_extend_the_blocked_list() -> None:
    with pytest.raises(ValueError, match="max_anonymous_per_user"):
        IdentityRules(max_anonymous_per_user=0)
    with pytest.raises(ValueError, match="priority"):
        IdentityRules(priority=("user_id", "email"))
    with pytest.raises(ValueError, match="priority"):
        IdentityRules(priority=("user_id", "user_id"))
    rules = IdentityRules.with_blocked(["Test-User"])
    assert clean_id("test-user ", rules) is None
    assert clean_id("null", rules) is None


@pytest.mark.parametrize(
    ("anon", "user", "priority", "expected"),
    [
        ("a1", "u1", ("user_id", "anonymous_id"), "u1"),
        ("a1", "u1", ("anonymous_id", "user_id"), "a1"),
        ("a1", None, ("user_id", "anonymous_id"), "a1"),
        ("a1", "null", ("user_id", "anonymous_id"), "a1"),
        ("undefined", "u1", ("anonymous_id", "user_id"), "u1"),
        ("0", "", ("user_id", "anonymous_id"), ""),
    ],
)
def test_priority_names_the_person(
    anon: str, user: str | None, priority: tuple[str, ...], expected: str
) -> None:
    rules = IdentityRules(priority=priority)
    assert person_key(ev("m", "x", 0, anon=anon, user=user), rules) == expected


@pytest.mark.parametrize(
    ("linked", "anon", "user", "kind", "reason"),
    [
        (None, "a1", "u1", "link", "new_link"),
        ("u1", "a1", "u1", "same", "already_linked"),
        ("u2", "a1", "u1", "conflict", "anonymous_id_linked_to_another_user"),
        (None, "guest", "u1", "ignored", "blocked_anonymous_id"),
        (None, "a1", "N/A", "ignored", "blocked_user_id"),
        (None, "x", "x", "same", "same_id"),
    ],
)
def test_decide_link(linked: str | None, anon: str, user: str, kind: str, reason: str) -> None:
    decision = decide_link(linked, anon, user, RULES)
    assert (decision.kind, decision.reason) == (kind, reason)


def test_accept_merge_caps_anonymous_ids_per_user() -> None:
    rules = IdentityRules(max_anonymous_per_user=2)
    assert accept_merge([], "a1", rules) == (True, None)
    assert accept_merge(["a1"], "a2", rules) == (True, None)
    assert accept_merge(["a1", "a2"], "a3", rules) == (False, "too_many_anonymous_ids")
    assert accept_merge(["a1", "a2"], "a2", rules) == (True, None)  # already merged


def test_identity_record_is_deterministic_and_fits_its_schema() -> None:
    record = identity_record("link", "a1", "u1", "new_link", T0, "m1")
    assert record == identity_record("link", "a1", "u1", "new_link", T0, "m1")
    assert (
        record["identity_id"] != identity_record("merge", "a1", "u1", None, T0, "m1")["identity_id"]
    )
    assert decode_output("identities", encode_output("identities", record)) == record


# -- the stitcher: routing and the graph --------------------------------------------------


def test_stitcher_links_once_and_reroutes_the_anonymous_id() -> None:
    s = Stitcher(RULES)
    assert s.route(ev("m1", "page_viewed", 0, anon="a1")) == ("a1", [])
    person, (action,) = s.route(login(1))
    assert (person, action.kind, action.anonymous_id, action.user_id) == ("u1", "link", "a1", "u1")
    assert action.record["kind"] == "link"
    assert s.route(ev("m2", "page_viewed", 2, anon="a1")) == ("u1", [])
    assert s.route(ev("m3", "page_viewed", 3, anon="a1", user="u1")) == ("u1", [])
    assert s.route(ev("m4", "page_viewed", 3, user="u1")) == ("u1", [])


def test_shared_device_second_user_is_a_new_person_and_a_recorded_conflict() -> None:
    s = Stitcher(RULES)
    s.route(login(0, "a1", "alice"))
    person, (action,) = s.route(login(5, "a1", "bob", mid="id2"))
    assert person == "bob"
    assert action.kind == "conflict"
    assert action.record["reason"] == "anonymous_id_linked_to_another_user"
    assert s.route(login(6, "a1", "bob", mid="id3")) == ("bob", [])  # recorded once per pair
    assert s.route(ev("m", "page_viewed", 7, anon="a1")) == ("alice", [])
    assert s.link_of("a1") == "alice"


def test_stitcher_refuses_more_than_n_anonymous_ids() -> None:
    s = Stitcher(IdentityRules(max_anonymous_per_user=2))
    for i in (1, 2):
        assert s.route(login(i, f"a{i}", "u1", mid=f"id{i}"))[1][0].kind == "link"
    person, (action,) = s.route(login(3, "a3", "u1", mid="id3"))
    assert (person, action.kind, action.record["reason"]) == (
        "u1",
        "conflict",
        "too_many_anonymous_ids",
    )
    assert s.route(ev("m", "page_viewed", 4, anon="a3")) == ("a3", [])
    assert s.anonymous_ids("u1") == ["a1", "a2"]


def test_stitcher_ignores_placeholders_and_device_priority() -> None:
    s = Stitcher(RULES)
    assert s.route(ev("m", "x", 0, anon="a1", user="undefined")) == ("a1", [])
    assert s.route(ev("m", "x", 0, anon="anonymous", user="u1")) == ("u1", [])
    assert s.links == {}
    devices = Stitcher(IdentityRules(priority=("anonymous_id", "user_id")))
    assert devices.route(login(0)) == ("a1", [])
    assert devices.links == {}


def test_stitcher_restores_its_counts_from_stored_links() -> None:
    s = Stitcher(IdentityRules(max_anonymous_per_user=1), links={"a1": "u1"})
    assert s.route(login(0, "a2", "u1"))[1][0].record["reason"] == "too_many_anonymous_ids"


# -- absence: merging two timelines gives one person's triggers ---------------------------

# (anonymous events, user-only events, login at, rule, what fires: start message ids)
ABSENCE_CASES = [
    # the user's purchase converts the anonymous checkout
    ([("c1", "checkout_started", 0)], [("o1", "order_completed", 20)], 5, ABANDON, []),
    # a cancel the anonymous person already consumed converts the user's pending start
    ([("o1", "order_completed", 10)], [("c1", "checkout_started", 0)], 15, ABANDON, []),
    # non-rearm: the earlier pending start wins, whoever it belongs to
    ([("c1", "checkout_started", 0)], [("c2", "checkout_started", 5)], 10, ABANDON, ["c1"]),
    ([("c2", "checkout_started", 5)], [("c1", "checkout_started", 0)], 10, ABANDON, ["c1"]),
    # restart: the later start wins
    ([("c1", "checkout_started", 0)], [("c2", "checkout_started", 5)], 10, RESTART, ["c2"]),
    # a start ignored while one was pending becomes pending once the other person's
    # cancel converts the first
    (
        [("c1", "checkout_started", 0), ("c2", "checkout_started", 20)],
        [("o1", "order_completed", 10)],
        25,
        ABANDON,
        ["c2"],
    ),
    # the anonymous checkout fired before the login (as a1); it still blocks the user's
    # checkout inside its window, as it would have for one person
    ([("c1", "checkout_started", 0)], [("c2", "checkout_started", 20)], 40, ABANDON, ["c1"]),
    # the purchase is before the checkout: nothing converts
    ([("c1", "checkout_started", 10)], [("o1", "order_completed", 5)], 12, ABANDON, ["c1"]),
]


@pytest.mark.parametrize(("anon", "users", "login_at", "rule", "expected"), ABSENCE_CASES)
def test_absence_merge_equals_one_person_from_the_start(
    anon: list[tuple[str, str, float]],
    users: list[tuple[str, str, float]],
    login_at: float,
    rule: AbsenceRule,
    expected: list[str],
) -> None:
    # each person sees one more event just before the login, so both have consumed
    # (decided) their own timeline when they merge
    ticks = [
        ev("tick-a", "page_viewed", login_at - 0.5, anon="a1"),
        ev("tick-u", "page_viewed", login_at - 0.5, user="u1"),
    ]
    timeline = sorted(
        [ev(m, n, t, anon="a1") for m, n, t in anon]
        + [ev(m, n, t, user="u1") for m, n, t in users]
        + [*ticks, login(login_at)],
        key=lambda e: e.timestamp_ms,
    )
    outs = stitched(timeline, [rule])
    assert [ids[0] for _, _, ids in fired(outs)] == expected
    assert {key for key, _, _ in fired(outs)} <= {"a1", "u1"}
    as_one = [Event(**{**_fields(e), "user_id": "u1"}) for e in timeline]
    baseline = replay_events(as_one, [rule], allowed_lateness_ms=0)
    assert [ids for _, _, ids in fired(outs)] == [ids for _, _, ids in fired(baseline)]


def _fields(event: Event) -> dict[str, Any]:
    return {f.name: getattr(event, f.name) for f in dataclasses.fields(event)}


def test_due_timer_fires_once_for_the_merged_person_across_processors() -> None:
    """The worker: the anonymous partition is behind, the user's already past the deadline."""
    anon_side = Processor([ABANDON], allowed_lateness_ms=0, store=MemoryStore())
    anon_side.process(ev("c1", "checkout_started", 0, anon="a1"))
    assert anon_side.advance_to(T0 + 10 * MIN) == []
    user_side = Processor([ABANDON], allowed_lateness_ms=0, store=MemoryStore())
    user_side.process(ev("p1", "page_viewed", 45, user="u1"))
    state = anon_side.extract("a1")
    assert state is not None
    assert anon_side.advance_to(POS_INF_MS) == []  # the stale index entry is skipped
    outs = user_side.merge_in("u1", state, "a1")
    assert [o.record["kind"] for o in outs if o.topic == "identities"] == ["merge"]
    (trigger,) = [o.record for o in outs if o.topic == "triggers"]
    assert (trigger["person_id"], trigger["event_ids"]) == ("u1", ["c1"])
    assert trigger["event_time_ms"] == T0 + 30 * MIN
    assert user_side.advance_to(POS_INF_MS) == []


def test_a_start_that_fired_before_the_merge_never_fires_again() -> None:
    proc = Processor([ABANDON], allowed_lateness_ms=0, store=MemoryStore())
    first = proc.process(ev("c1", "checkout_started", 0, anon="a1"))
    first += proc.process(ev("p1", "page_viewed", 31, user="u1"))
    assert [o.record["event_ids"] for o in first] == [["c1"]]
    proc.process(ev("c2", "checkout_started", 35, user="u1"))  # blocked by nothing: pending
    state = proc.extract("a1")
    assert state is not None
    assert state["checkout_abandoned"]["h0"][1] == "c1"
    outs = proc.merge_in("u1", state, "a1") + proc.advance_to(POS_INF_MS)
    assert [ids for _, _, ids in fired(outs)] == [["c2"]]


def test_absence_merge_reads_snapshots_from_before_stitching() -> None:
    old = {"buf": [], "act": [T0, "c1", {}]}  # no "w", "hist" or "h0"
    new = {"buf": [[T0 + 5 * MIN, 1, "o1", None]], "act": None, "w": T0 + MIN}
    merged = ABANDON.merge(new, old)
    assert merged is not None
    _, outs = ABANDON.on_watermark(merged, "u1", T0 + 40 * MIN)
    assert outs == []  # the purchase at +5 converted the old pending checkout
    assert ABANDON.merge(None, old) is old


def test_absence_history_is_bounded_by_the_window() -> None:
    state: dict[str, Any] | None = None
    for i in range(200):
        e = ev(f"o{i}", "order_completed", i, user="u1")
        state, _ = ABANDON.on_event(state, e, "u1", e.timestamp_ms + 1)
    assert state is not None
    assert len(state["hist"]) == 30  # within 30 minutes of the watermark
    state, _ = ABANDON.on_watermark(state, "u1", T0 + 300 * MIN)
    assert state is None


# -- rule stage: milestones, repetition, caps, time zone, segments --------------------------


def test_first_purchase_as_anonymous_then_as_user_fires_once() -> None:
    t = load_topology("t.yaml", "triggers:\n  first_purchase:\n    milestone: order_completed\n")
    events = [
        ev("o1", "order_completed", 0, anon="a1"),
        login(10),
        ev("o2", "order_completed", 20, anon="a1", user="u1"),
        ev("o3", "order_completed", 30, user="u1"),
    ]
    outs = stitched(events, list(t.operators), stage=t.stage)
    assert fired(outs) == [("a1", "first_purchase", ["o1"])]


def test_repetition_counts_both_persons_views() -> None:
    t = load_topology(
        "t.yaml",
        "triggers:\n  revisit:\n    repetition:\n"
        "      {event: product_viewed, at_least: 2, within: 1d, same: product_id}\n",
    )
    events = [
        ev("v1", "product_viewed", 0, anon="a1", product_id="p1"),
        login(5),
        ev("v2", "product_viewed", 10, user="u1", product_id="p1"),
    ]
    assert fired(stitched(events, list(t.operators), stage=t.stage)) == [
        ("u1", "revisit", ["v1", "v2"])
    ]
    rule = RepetitionRule("r", "product_viewed", 2, 60 * MIN, same="product_id")
    a = {"p1": [[1, "v1"]], "!": 0}
    b = {"p1": [[2, "v2"], [1, "v1"]], "p2": [[3, "v3"]], "!": 5}
    assert rule.merge(a, b) == {"!": 5, "p1": [[1, "v1"], [2, "v2"]], "p2": [[3, "v3"]]}
    assert rule.merge(None, b) == b
    assert MilestoneRule.merge(None, True) is True
    assert MilestoneRule.merge(None, None) is None


def test_caps_count_both_persons_deliveries() -> None:
    t = load_topology(
        "t.yaml",
        "triggers:\n  added: {immediate: product_added, channel: push}\n"
        "caps:\n  limits: [{name: one_a_day, channel: push, max: 1, per: 1d}]\n",
    )
    events = [
        ev("a1", "product_added", 0, anon="a1"),
        login(5),
        ev("a2", "product_added", 10, user="u1"),
    ]
    outs = stitched(events, list(t.operators), stage=t.stage)
    assert fired(outs) == [("a1", "added", ["a1"])]
    (suppressed,) = [o.record for o in outs if o.topic == "triggers.suppressed"]
    assert suppressed["reason"] == "cap:one_a_day"
    assert CapPolicy.merge(
        {"sent": [[2, "r", None, "d"]]}, {"sent": [[1, "r", None, "d"]], "neg": [3]}
    ) == {
        "sent": [[1, "r", None, "d"], [2, "r", None, "d"]],
        "neg": [3],
    }


def test_stage_merge_keeps_the_known_time_zone_and_memberships() -> None:
    stage = RuleStage((TriggerSpec(MilestoneRule("first", "order_completed")),))
    known = {"rules": {"tz": "Europe/Paris", "seg": ["vip"], "t": {"first": True}}}
    anon = {"rules": {"tz": "Asia/Tokyo", "seg": ["browsers"], "t": {"stale_rule": 1}}}
    assert stage.merge(known, anon) == {
        "rules": {"tz": "Europe/Paris", "seg": ["vip"], "t": {"first": True}}
    }
    assert stage.merge({}, anon) == {}  # a time zone alone is not kept (as in after_event)
    assert stage.merge({}, {}) == {}


def test_segment_membership_is_recomputed_after_the_merge() -> None:
    t = load_topology(
        "t.yaml", "segments:\n  repeat_buyers:\n    where: {trait.orders_total: {gte: 2}}\n"
    )
    events = [
        ev("o1", "order_completed", 0, anon="a1", revenue=10),
        ev("o2", "order_completed", 1, user="u1", revenue=10),
        ev("x", "page_viewed", 2, user="someone-else"),  # moves the watermark past both
        login(3),
    ]
    outs = stitched(events, list(t.operators), stage=t.stage, end_ms=T0 + 3 * MIN)
    changes = [(o.key, o.record["change"]) for o in outs if o.topic == "segments"]
    assert changes == [("u1", "entered")]


# -- behavior: sessions and traits -----------------------------------------------------------


def test_open_anonymous_and_known_sessions_merge_into_one_holding_the_anonymous_events() -> None:
    ops = [BehaviorOperator(SessionWindows(inactivity_gap_ms=30 * MIN))]
    events = [
        ev("p1", "page_viewed", 0, anon="a1"),
        ev("s1", "order_completed", 3, user="u1", revenue=5.0),  # server-side, user id only
        ev("p2", "product_viewed", 5, anon="a1", product_id="x"),
        login(7),
        ev("p3", "page_viewed", 9, anon="a1", user="u1"),
    ]
    outs = stitched(events, ops)
    (session,) = [o.record for o in outs if o.topic == "sessions"]
    assert session["person_id"] == "u1"
    assert session["event_count"] == 5
    assert session["first_event_id"] == "p1"
    assert session["products"] == ["x"]
    assert session["converted"] is True
    (evicted,) = [o.record for o in outs if o.topic == "persons.evicted"]
    assert (evicted["person_id"], evicted["events_total"]) == ("u1", 5)


def test_sessions_operator_merge() -> None:
    op = SessionsOperator(SessionWindows(inactivity_gap_ms=10 * MIN))
    a, _ = op.on_event(None, ev("m1", "x", 0, user="u1"), "u1", T0)
    b, _ = op.on_event(None, ev("m2", "x", 5, anon="a1"), "a1", T0)
    far, _ = op.on_event(None, ev("m3", "x", 60, anon="a1"), "a1", T0)
    merged = op.merge(a, b)
    assert merged is not None
    assert len(merged["open"]) == 1
    assert merged["open"][0].c == 2
    assert len((op.merge(a, far) or {})["open"]) == 2
    assert op.merge(None, b) is b


# -- the processor: extract, merge_in, restore, the limit -----------------------------------


def test_merge_in_refuses_beyond_the_limit_and_the_caller_restores() -> None:
    proc = Processor(
        [ABANDON],
        allowed_lateness_ms=0,
        store=MemoryStore(),
        identity=IdentityRules(max_anonymous_per_user=1),
    )
    proc.process(ev("c1", "checkout_started", 0, anon="a1"))
    proc.process(ev("c2", "checkout_started", 1, anon="a2"))
    first = proc.extract("a1")
    assert first is not None
    assert "_next" not in first
    assert [o.record["kind"] for o in proc.merge_in("u1", first, "a1")] == ["merge"]
    assert proc.store.load("u1")[IDS] == ["a1"]  # type: ignore[index]
    before = dict(proc.store.load("u1") or {})
    second = proc.extract("a2")
    assert second is not None
    (refused,) = proc.merge_in("u1", second, "a2", event_time_ms=T0, message_id="id2")
    assert (refused.topic, refused.key) == ("identities", "u1")
    assert (refused.record["kind"], refused.record["reason"]) == (
        "conflict",
        "too_many_anonymous_ids",
    )
    assert proc.store.load("u1") == before
    assert proc.extract("a2") is None
    assert proc.restore("a2", second) == []
    outs = proc.advance_to(POS_INF_MS)
    assert sorted((o.key, o.record["event_ids"][0]) for o in outs) == [("a2", "c2"), ("u1", "c1")]


def test_replay_restores_a_refused_merge_and_keeps_the_person_apart() -> None:
    rules = IdentityRules(max_anonymous_per_user=1)
    events = [
        ev("c1", "checkout_started", 0, anon="a1"),
        ev("c2", "checkout_started", 0, anon="a2"),
        login(1, "a1", "u1", "id1"),
        login(2, "a2", "u1", "id2"),
    ]
    # one partition: its stitcher refuses the second link itself
    outs = replay_events(events, [ABANDON], allowed_lateness_ms=0, identity=rules, partitions=1)
    kinds = [(o.record["kind"], o.record["anonymous_id"]) for o in outs if o.topic == "identities"]
    assert kinds == [("link", "a1"), ("merge", "a1"), ("conflict", "a2")]
    assert sorted((k, ids[0]) for k, _, ids in fired(outs)) == [("a2", "c2"), ("u1", "c1")]
    # the ids on two partitions: each links, the user's processor refuses the merge and
    # the anonymous state goes back where it was
    outs = replay_events(events, [ABANDON], allowed_lateness_ms=0, identity=rules, partitions=3)
    kinds = [(o.record["kind"], o.record["anonymous_id"]) for o in outs if o.topic == "identities"]
    assert kinds == [("link", "a1"), ("merge", "a1"), ("link", "a2"), ("conflict", "a2")]
    assert sorted((k, ids[0]) for k, _, ids in fired(outs)) == [("a2", "c2"), ("u1", "c1")]


def test_merged_ids_go_with_the_person_when_evicted() -> None:
    ops = [BehaviorOperator(SessionWindows(inactivity_gap_ms=MIN), idle_ttl_ms=MIN)]
    store = MemoryStore()
    proc = Processor(ops, allowed_lateness_ms=0, store=store)
    replay_events([ev("p1", "page_viewed", 0, anon="a1"), login(0.5)], ops, allowed_lateness_ms=0,
                  identity=RULES, processor=proc, end_ms=T0 + MIN // 2)  # fmt: skip
    assert store.data["u1"][IDS] == ["a1"]
    proc.advance_to(T0 + 10 * MIN)
    assert store.data == {}


# -- the topology's identity section ----------------------------------------------------------


def test_topology_identity_section() -> None:
    t = load_topology(
        "t.yaml",
        "identity:\n  max_anonymous_per_user: 3\n  blocked: [test, 12345]\n"
        "  priority: [user_id, anonymous_id]\n",
    )
    assert t.identity.max_anonymous_per_user == 3
    assert clean_id("TEST", t.identity) is None
    assert clean_id("12345", t.identity) is None
    assert clean_id("null", t.identity) is None
    assert load_topology("t.yaml", "name: x\n").identity == IdentityRules()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "identity:\n  max_anonymous_per_user: 0\n",
            "t.yaml:2: identity.max_anonymous_per_user: expected an integer >= 1",
        ),
        ("identity:\n  blocked: nope\n", "t.yaml:2: identity.blocked: expected a list"),
        ("identity:\n  blocked: [[1]]\n", "t.yaml:2: identity.blocked[0]: expected a single value"),
        (
            "identity:\n  priority: [user_id, email]\n",
            "t.yaml:2: identity.priority: expected user_id and anonymous_id",
        ),
        ("identity:\n  merge: always\n", "t.yaml:2: identity.merge: expected one of"),
        ("identity: [1]\n", "t.yaml:1: identity: expected a mapping"),
    ],
)
def test_topology_identity_errors_name_file_line_and_field(text: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_topology("t.yaml", text)
    assert message in str(info.value)


# -- the journey of the issue ---------------------------------------------------------------


def test_browse_anonymously_checkout_log_in_abandon_gives_one_trigger_for_the_user() -> None:
    t = load_topology(
        "t.yaml",
        "triggers:\n  checkout_abandoned:\n"
        "    absence: {start: checkout_started, missing: order_completed, within: 30m}\n",
    )
    events = [
        ev("v1", "product_viewed", 0, anon="a1", product_id="p1"),
        ev("v2", "product_added", 2, anon="a1", product_id="p1", value=80),
        ev("c1", "checkout_started", 4, anon="a1", value=80),
        login(6),
        ev("c2", "checkout_started", 7, anon="a1", user="u1", value=80),  # after login: again
        ev("p1", "payment_info_entered", 8, anon="a1", user="u1"),
    ]
    lateness = 5 * MIN
    arrival = [events[0], events[2], events[1], events[4], events[3], events[5]]
    outs = stitched(arrival, list(t.operators), lateness, stage=t.stage)
    assert fired(outs) == [("u1", "checkout_abandoned", ["c1"])]
    (session,) = [o.record for o in outs if o.topic == "sessions"]
    assert (session["person_id"], session["event_count"], session["first_event_id"]) == (
        "u1",
        6,
        "v1",
    )
    final = Processor(
        list(t.operators), allowed_lateness_ms=lateness, store=MemoryStore(), stage=t.stage
    )
    stitched(arrival, [], lateness, processor=final, end_ms=T0 + 60 * MIN)  # session closed
    assert set(final.store.data) == {"u1"}
    assert traits_of(final.store.data["u1"])["events_total"] == 6
    assert person_traits(final.store.data["u1"])["cart_value_max"] == 80


def test_a_second_device_merges_too() -> None:
    store = MemoryStore()
    proc = Processor([ABANDON, BehaviorOperator()], allowed_lateness_ms=0, store=store)
    events = [
        ev("c1", "checkout_started", 0, anon="phone"),
        login(1, "phone", "u1", "id1"),
        ev("c2", "checkout_started", 60, anon="laptop"),
        ev("o2", "order_completed", 62, user="u1"),  # converts the laptop's checkout
        login(61, "laptop", "u1", "id2"),
    ]
    outs = stitched(events, [], processor=proc, end_ms=T0 + 62 * MIN)
    assert [
        (o.record["kind"], o.record["anonymous_id"]) for o in outs if o.topic == "identities"
    ] == [
        ("link", "phone"),
        ("merge", "phone"),
        ("link", "laptop"),
        ("merge", "laptop"),
    ]
    assert store.data["u1"][IDS] == ["phone", "laptop"]
    assert set(store.data) == {"u1"}
    assert fired(outs + proc.advance_to(POS_INF_MS)) == [("u1", "checkout_abandoned", ["c1"])]
