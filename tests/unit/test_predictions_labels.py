"""Labels from the stream: the ``predictions:`` section, features, label timers.

At each session close the stage snapshots the person's features; the first
outcome in ``(t, t + horizon]`` decides the label, else the deadline does; a
replay's end-of-input flush decides no label by its deadline (censored). The
examples are a function of the events and their times (hypothesis, below).
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.core.behavior import BehaviorOperator
from pipeline.core.clock import POS_INF_MS
from pipeline.core.engine import MemoryStore, Processor
from pipeline.core.events import Event
from pipeline.core.identity import IdentityRules
from pipeline.core.labels import CENSORED
from pipeline.core.outputs import Output
from pipeline.core.predictions import (
    FEATURE_NAMES,
    FEATURES_VERSION,
    PredictionsConfig,
    PredictionTask,
    features_of,
    merge_order_facts,
    observe_order,
    person_features,
)
from pipeline.core.stitching import Stitcher
from pipeline.errors import ConfigError
from pipeline.tools.replay import replay_events
from pipeline.topology.dsl import Topology, load_topology
from pipeline.topology.operators import person_traits

MIN = 60_000
HOUR = 60 * MIN
DAY = 24 * HOUR
T0 = 1_790_000_000_000  # 2026-09-21 13:46 UTC
GAP = 30 * MIN  # the default session gap
LATENESS = 10 * MIN

SECTION = """
predictions:
  tasks:
    buy_2h:   {outcome: order_completed, horizon: 2h}
    churn_3h: {outcome: any_event, horizon: 3h, label_if: absent}
  score_at: session_close
  recs: {k: 5}
  send_time: {channels: [email], min_events: 3}
"""
TRIGGERS = """
triggers:
  checkout_abandoned:
    absence: {start: checkout_started, missing: order_completed, within: 30m}
    channel: email
segments:
  buyer:
    where: {trait.orders_total: {gte: 1}}
"""


def topology(text: str = SECTION) -> Topology:
    return load_topology("pred.yaml", text)


def ev(mid: str, name: str, at_ms: int, user: str = "u1", **props: Any) -> Event:
    return Event(
        message_id=mid,
        type="track",
        event=name,
        user_id=user,
        timestamp_ms=T0 + at_ms,
        properties=props,
        context={"timezone": "UTC"},
    )


def processor(topo: Topology, idle_ttl_ms: int | None = None) -> Processor:
    ops = topo.operators
    if idle_ttl_ms is not None:
        ops = (BehaviorOperator(idle_ttl_ms=idle_ttl_ms),)
    return Processor(ops, allowed_lateness_ms=LATENESS, store=MemoryStore(), stage=topo.stage)


def run(events: list[Event], topo: Topology | None = None, **kw: Any) -> list[Output]:
    """In event-time order, then the end-of-input flush."""
    proc = processor(topo or topology(), **kw)
    out: list[Output] = []
    for e in sorted(events, key=lambda e: (e.timestamp_ms, e.message_id)):
        out += proc.process(e)
    out += proc.advance_to(POS_INF_MS)
    return out


def examples(outs: list[Output], task: str) -> list[dict[str, Any]]:
    return [o.record for o in outs if o.topic == f"training.{task}"]


# -- the section ------------------------------------------------------------------------


def test_the_section_is_parsed_into_a_frozen_config() -> None:
    cfg = topology().stage.predictions
    assert cfg == PredictionsConfig(
        tasks=(
            PredictionTask("buy_2h", "order_completed", 2 * HOUR),
            PredictionTask("churn_3h", "any_event", 3 * HOUR, "absent"),
        ),
        score_at="session_close",
        recs_k=5,
        send_channels=("email",),
        send_min_events=3,
    )
    assert topology(TRIGGERS).stage.predictions is None
    assert topology(TRIGGERS).stage.plan.labels is None


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("  tasks: {t: {outcome: order_completed}}", "predictions.tasks.t.horizon"),
        ("  tasks: {t: {outcome: x, horizon: soon}}", "a duration"),
        ("  tasks: {t: {outcome: x, horizon: 1d, label_if: maybe}}", "present or absent"),
        ("  tasks: {t: {outcome: x, horizon: 1d, when: 1}}", "predictions.tasks.t.when"),
        ("  tasks: {recs: {outcome: x, horizon: 1d}}", "reserved"),
        ("  score_at: every_event", "session_close"),
        ("  recs: {k: 0}", "an integer >= 1"),
        ("  other: 1", "predictions.other"),
    ],
)
def test_a_bad_section_names_the_line_and_field(body: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        topology(f"predictions:\n{body}\n")


def test_commerce_has_the_section() -> None:
    cfg = load_topology("topologies/commerce.yaml").stage.predictions
    assert cfg is not None
    assert [t.name for t in cfg.tasks] == ["purchase_7d", "churn_30d"]
    assert cfg.recs_k == 10


# -- features ---------------------------------------------------------------------------


def test_features_carry_the_baseline_names() -> None:
    outs = run([
        ev("m1", "order_completed", 0, revenue=10.0),
        ev("m2", "order_completed", 5 * MIN, revenue=20.0),  # the same day
        ev("m3", "product_viewed", DAY, product_id="p1"),
        ev("m4", "order_completed", DAY + MIN, revenue=30.0),
        ev("m5", "page_viewed", DAY + 2 * HOUR),  # decides the churn label of +1d 0h31
    ])  # fmt: skip
    last = max(examples(outs, "churn_3h"), key=lambda r: r["scored_at_ms"])
    f = last["features"]
    assert last["scored_at_ms"] == T0 + DAY + MIN + GAP
    assert f["purchases"] == 3.0
    assert f["purchase_days"] == 2.0
    assert f["days_since_first_purchase"] == pytest.approx((DAY + MIN + GAP) / DAY)
    assert f["days_since_last_purchase"] == pytest.approx(GAP / DAY)
    assert f["views_7d"] == 1.0
    assert f["orders_30d"] == 3.0
    assert set(f) <= set(FEATURE_NAMES)
    assert last["features_version"] == FEATURES_VERSION


def test_no_order_leaves_the_purchase_recency_missing() -> None:
    f = features_of({"events_total": 1, "last_seen_ms": 0, "first_seen_ms": 0}, DAY)
    assert f["purchases"] == 0.0
    assert f["purchase_days"] == 0.0
    assert "days_since_last_purchase" not in f
    assert "days_since_first_purchase" not in f
    assert f["days_since_last_seen"] == 1.0


def test_online_features_equal_the_snapshot_features() -> None:
    """What scoring reads (``person_features`` over the stage's traits) is what was labelled."""
    topo = topology()
    proc = processor(topo)
    for e in [ev("m1", "order_completed", 0, revenue=5.0), ev("m2", "page_viewed", HOUR)]:
        proc.process(e)
    proc.advance_to(T0 + HOUR + GAP + LATENESS)  # the second session closed: waiting
    state = proc.store.load("u1")
    assert state is not None
    scored_at, values, _ = state["rules"]["lab"][-1]
    assert scored_at == T0 + HOUR + GAP
    online = person_features(state, scored_at, person_traits)
    assert online == {n: v for n, v in zip(FEATURE_NAMES, values, strict=True) if v is not None}
    assert online["purchase_days"] == 1.0


def test_order_facts_fold_and_merge() -> None:
    facts = observe_order(None, T0)
    facts = observe_order(facts, T0 + HOUR)
    assert facts[1] == 1
    facts = observe_order(facts, T0 + DAY)
    assert facts[1] == 2
    other = observe_order(None, T0 - DAY)
    assert merge_order_facts(facts, other) == [T0 - DAY, 3, (T0 + DAY) // DAY]
    assert merge_order_facts(None, other) == other
    assert merge_order_facts(None, None) is None


# -- labels -----------------------------------------------------------------------------


def test_an_order_within_the_horizon_is_label_1_at_the_order() -> None:
    outs = run([ev("m1", "product_viewed", 0), ev("m2", "order_completed", 2 * HOUR)])
    close = T0 + GAP
    buy = examples(outs, "buy_2h")
    assert buy[0] == {
        "task": "buy_2h",
        "person": "u1",
        "scored_at_ms": close,
        "horizon_ms": 2 * HOUR,
        "outcome_at_ms": T0 + 2 * HOUR,
        "label": 1,
        "features": buy[0]["features"],
        "features_version": "stream/1",
    }
    churn = examples(outs, "churn_3h")[0]  # the order is an event: not churned
    assert (churn["label"], churn["outcome_at_ms"]) == (0, T0 + 2 * HOUR)


@pytest.mark.parametrize(("after", "label"), [(2 * HOUR, 1), (2 * HOUR + 1, 0)])
def test_the_window_is_closed_at_its_end(after: int, label: int) -> None:
    later = ev("m3", "page_viewed", 10 * HOUR)  # the watermark passes the deadline
    outs = run([ev("m1", "product_viewed", 0), ev("m2", "order_completed", GAP + after), later])
    first = examples(outs, "buy_2h")[0]
    assert first["scored_at_ms"] == T0 + GAP
    assert first["label"] == label
    assert first["outcome_at_ms"] == (T0 + GAP + after if label else None)


def test_no_outcome_is_decided_by_the_deadline() -> None:
    outs = run([ev("m1", "product_viewed", 0), ev("m2", "page_viewed", 10 * HOUR)])
    buy = examples(outs, "buy_2h")[0]
    assert (buy["scored_at_ms"], buy["label"], buy["outcome_at_ms"]) == (T0 + GAP, 0, None)
    churn = examples(outs, "churn_3h")[0]
    assert (churn["scored_at_ms"], churn["label"], churn["outcome_at_ms"]) == (T0 + GAP, 1, None)


def test_an_event_at_the_scoring_time_is_outside_the_window() -> None:
    later = ev("m3", "page_viewed", 10 * HOUR)
    outs = run([ev("m1", "product_viewed", 0), ev("m2", "order_completed", GAP), later])
    first = examples(outs, "buy_2h")[0]
    assert first["scored_at_ms"] == T0 + GAP
    assert first["label"] == 0  # (t, t + h]: an order at t itself is not in it


def test_labels_survive_the_eviction() -> None:
    """The snapshot is in the stage's slice: evicted at +1 h, labelled at +3 h anyway."""
    outs = run(
        [ev("m1", "order_completed", 0), ev("m2", "page_viewed", 5 * HOUR)], idle_ttl_ms=HOUR
    )
    assert [o.topic for o in outs].count("persons.evicted") == 2
    churn = examples(outs, "churn_3h")[0]
    assert (churn["scored_at_ms"], churn["label"]) == (T0 + GAP, 1)
    assert churn["features"]["purchases"] == 1.0
    later = [r for r in examples(outs, "buy_2h") if r["scored_at_ms"] > T0 + GAP]
    assert later == []  # the second session's labels are past the real data: censored
    # the order facts went with the traits: nothing of the first order is left
    censored = [o.record for o in outs if o.topic == CENSORED]
    assert {c["scored_at_ms"] for c in censored} == {T0 + 5 * HOUR + GAP}


def test_the_end_of_input_censors_instead_of_deciding() -> None:
    """Replay: a label due after the last real watermark is censored, not labelled."""
    events = [
        ev("m1", "product_viewed", 0),  # closes at +30m: due at +2h30 (buy), +3h30 (churn)
        ev("m2", "page_viewed", 3 * HOUR),  # decides churn (0); closes at +3h30
        ev("m3", "order_completed", 4 * HOUR + 1),  # past the first window; decides the 2nd
    ]
    outs = replay_events(events, topology().operators, stage=topology().stage,
                         allowed_lateness_ms=LATENESS, partitions=1)  # fmt: skip
    last_real = T0 + 4 * HOUR + 1 - LATENESS
    decided = [*examples(outs, "buy_2h"), *examples(outs, "churn_3h")]
    for r in decided:
        if r["outcome_at_ms"] is None:
            assert r["scored_at_ms"] + r["horizon_ms"] + 1 <= last_real
    assert {(r["task"], r["scored_at_ms"], r["label"]) for r in decided} == {
        ("buy_2h", T0 + GAP, 0),  # its deadline (+2h30) was passed by real data
        ("churn_3h", T0 + GAP, 0),  # the page view at +3h
        ("buy_2h", T0 + 3 * HOUR + GAP, 1),  # an order in the input, in the flush: it happened
        ("churn_3h", T0 + 3 * HOUR + GAP, 0),
    }
    censored = {(c["task"], c["scored_at_ms"]) for c in (o.record for o in outs)
                if c.get("deadline_ms") is not None}  # fmt: skip
    last = T0 + 4 * HOUR + 1 + GAP
    assert censored == {("buy_2h", last), ("churn_3h", last)}


def test_an_anonymous_visitors_labels_follow_them_into_the_user() -> None:
    """Scored as ``a1``, merged into ``u1`` at the login: ``u1``'s order labels it."""
    events = [
        Event(message_id="m1", type="track", event="product_viewed", anonymous_id="a1",
              timestamp_ms=T0, properties={"product_id": "p1"}),
        Event(message_id="m2", type="identify", anonymous_id="a1", user_id="u1",
              timestamp_ms=T0 + HOUR),
        Event(message_id="m3", type="track", event="order_completed", user_id="u1",
              timestamp_ms=T0 + 90 * MIN, properties={"revenue": 10.0}),
        Event(message_id="m4", type="track", event="page_viewed", user_id="u1",
              timestamp_ms=T0 + 10 * HOUR),
    ]  # fmt: skip
    topo = topology()
    outs = replay_events(events, topo.operators, stage=topo.stage, identity=IdentityRules(),
                         allowed_lateness_ms=LATENESS, partitions=1)  # fmt: skip
    first = [r for r in examples(outs, "buy_2h") if r["scored_at_ms"] == T0 + GAP]
    assert len(first) == 1
    assert (first[0]["label"], first[0]["outcome_at_ms"]) == (1, T0 + 90 * MIN)
    assert first[0]["person"] == "u1"


def test_without_the_section_nothing_changes() -> None:
    events = [ev(f"m{i}", n, i * 20 * MIN) for i, n in enumerate(
        ["product_viewed", "checkout_started", "order_completed", "page_viewed",
         "checkout_started", "product_viewed"])]  # fmt: skip
    plain = topology(TRIGGERS)
    with_section = topology(TRIGGERS + SECTION.split("  score_at")[0])  # labels only
    a = run(events, plain)
    b = run(events, with_section)
    assert not [o for o in a if o.topic.startswith("training.")]
    assert sorted(json.dumps([o.topic, o.record], sort_keys=True) for o in a) == sorted(
        json.dumps([o.topic, o.record], sort_keys=True)
        for o in b
        if not o.topic.startswith("training.")
    )


def test_a_closed_session_gives_the_recs_and_send_time_records() -> None:
    outs = run([
        ev("m1", "product_viewed", 0, product_id="p1"),
        ev("m2", "product_added", MIN, product_id="p2"),
        ev("m3", "email_opened", 2 * MIN),
    ])  # fmt: skip
    recs = [o.record for o in outs if o.topic == "training.recs"]
    assert len(recs) == 1
    assert (recs[0]["viewed"], recs[0]["added"], recs[0]["scored_at_ms"]) == (
        ["p1"], ["p2"], T0 + 2 * MIN + GAP)  # fmt: skip
    send = [o.record for o in outs if o.topic == "training.send_time"]
    assert len(send) == 1
    assert send[0]["engagements"] == {"email": 1}


def test_replay_out_writes_the_examples_pulse_train_reads(tmp_path: Path) -> None:
    from pipeline.cli.main import main

    src = tmp_path / "events.jsonl"
    events = [ev("m1", "product_viewed", 0), ev("m2", "order_completed", HOUR),
              ev("m3", "page_viewed", DAY)]  # fmt: skip
    src.write_text("".join(json.dumps(e.to_record()) + "\n" for e in events))
    topo = tmp_path / "t.yaml"
    topo.write_text(SECTION)
    out = tmp_path / "out"
    args = ["replay", str(src), "--topology", str(topo), "--out", str(out), "--partitions", "1"]
    assert main(args) == 0
    lines = (out / "pulse.training.buy_2h.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines]
    assert [(r["scored_at_ms"], r["label"]) for r in records] == [
        (T0 + GAP, 1),
        (T0 + HOUR + GAP, 0),
    ]


# -- arrival order (hypothesis) ----------------------------------------------------------

NAMES = ["page_viewed", "product_viewed", "product_added", "order_completed", "email_opened"]


@st.composite
def histories(draw: st.DrawFn) -> tuple[list[Event], list[int], int]:
    """People's events over 12 hours (a visitor ``a1`` who may log in as ``u1``), arrival
    jitter within the lateness, a final watermark."""
    events = []
    for i in range(draw(st.integers(1, 16))):
        name = draw(st.sampled_from(NAMES))
        at = draw(st.integers(0, 12 * 60)) * MIN + draw(st.sampled_from([0, 1, 999]))
        props = {"revenue": 12.5} if name == "order_completed" else {"product_id": "p1"}
        who = draw(st.sampled_from(["u1", "u2", "a1"]))
        e = ev(f"m{i:03d}", name, at, who, **props)
        if who == "a1":
            e = Event(message_id=e.message_id, type="track", event=name, anonymous_id="a1",
                      timestamp_ms=e.timestamp_ms, properties=props)  # fmt: skip
        events.append(e)
    if draw(st.booleans()):  # the visitor logs in: a1 is u1 from then on
        at = T0 + draw(st.integers(0, 12 * 60)) * MIN
        events.append(Event(message_id="login", type="identify", anonymous_id="a1",
                            user_id="u1", timestamp_ms=at))  # fmt: skip
    jitter = [draw(st.integers(0, LATENESS)) for _ in events]
    end = max(e.timestamp_ms for e in events) + draw(st.integers(0, 6 * 60)) * MIN
    return events, jitter, end


def live(
    events: list[Event], jitter: list[int], seed: int, end: int, ttl: int | None
) -> list[Output]:
    """Arrival order ``ts + jitter``; the watermark moved at random allowed points, then ``end``."""
    rng = random.Random(seed)
    order = sorted(range(len(events)), key=lambda i: (events[i].timestamp_ms + jitter[i], i))
    arrivals = [events[i] for i in order]
    proc, out = processor(topology(), ttl), []
    stitcher = Stitcher(IdentityRules())
    for n, event in enumerate(arrivals):
        person, actions = stitcher.route(event)
        for action in actions:
            if action.kind == "link":
                state = proc.extract(action.anonymous_id) or {}
                out += proc.merge_in(action.user_id, state, action.anonymous_id,
                                     event_time_ms=event.timestamp_ms,
                                     message_id=event.message_id)  # fmt: skip
        out += proc.process(event, person, advance_clock=False)
        if rng.random() < 0.5:
            ceiling = min((e.timestamp_ms for e in arrivals[n + 1 :]), default=end)
            if ceiling > proc.watermark_ms:
                out += proc.advance_to(rng.randint(max(proc.watermark_ms, ceiling - 3 * HOUR),
                                                   ceiling) + LATENESS)  # fmt: skip
    out += proc.advance_to(end + LATENESS)  # the last real watermark: ``end``
    out += proc.advance_to(POS_INF_MS)  # the end-of-input flush
    return out


def labelled(outs: list[Output]) -> list[str]:
    return sorted(
        json.dumps([o.topic, o.key, o.record], sort_keys=True)
        for o in outs
        if o.topic.startswith("training.")
    )


@settings(max_examples=300, deadline=None)
@given(histories(), st.integers(0, 2**32), st.sampled_from([None, 2 * HOUR]))
def test_examples_do_not_depend_on_arrival_order_within_the_lateness(
    history: tuple[list[Event], list[int], int], seed: int, ttl: int | None
) -> None:
    events, jitter, end = history
    want = live(events, [0] * len(events), 0, end, ttl)  # in event time, the clock following
    got = live(events, jitter, seed, end, ttl)
    assert not [o for o in got if o.topic == "events.late"]
    assert labelled(got) == labelled(want)
    # the flush decided no label by a deadline past the last real watermark
    for o in got:
        r = o.record
        if o.topic == CENSORED:
            assert r["deadline_ms"] > end
        elif o.topic not in ("training.buy_2h", "training.churn_3h"):
            continue
        elif r["outcome_at_ms"] is None:
            assert r["scored_at_ms"] + r["horizon_ms"] + 1 <= end
        else:
            assert r["scored_at_ms"] < r["outcome_at_ms"] <= r["scored_at_ms"] + r["horizon_ms"]


# -- timed delivery: the topology's deliver_at -------------------------------------------


def test_deliver_at_is_read_and_gives_send_at() -> None:
    text = (
        SECTION
        + """
triggers:
  browse_abandoned:
    absence: {start: product_viewed, missing: product_added, within: 30m}
    channel: email
    destinations: [email]
    deliver_at: best_hour
    max_delay: 12h
"""
    )
    topo = topology(text)
    spec = topo.stage.triggers[0]
    assert spec.deliver_at is not None
    assert spec.deliver_at.max_delay_ms == 12 * HOUR
    outs = run([ev("m1", "product_viewed", 0, product_id="p1")], topo)
    sent = [o.record for o in outs if o.topic == "activations.email"]
    assert len(sent) == 1
    assert sent[0]["send_at_ms"] is not None
    assert T0 + 30 * MIN <= sent[0]["send_at_ms"] <= T0 + 30 * MIN + 12 * HOUR


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ("deliver_at: best_hour", "max_delay"),
        ("max_delay: 2h", "deliver_at with it"),
        ("deliver_at: soon\n    max_delay: 2h", "a valid timing"),
        ("deliver_at: best_hour\n    max_delay: 8d", "a valid timing"),
    ],
)
def test_a_bad_deliver_at_names_the_field(fields: str, message: str) -> None:
    text = f"triggers:\n  t:\n    immediate: product_viewed\n    {fields}\n"
    with pytest.raises(ConfigError, match=message):
        topology(text)


def test_deliver_at_without_send_time_warns() -> None:
    text = "triggers:\n  t:\n    immediate: product_viewed\n    deliver_at: best_hour\n" \
        "    max_delay: 2h\n"  # fmt: skip
    assert any("first allowed hour" in w for w in topology(text).warnings)
