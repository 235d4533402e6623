"""Best send time: the engagement fold, the prior model, the posterior, best hour and send_at."""

from __future__ import annotations

import json
from typing import Any

import pytest

from pipeline.core.facts import Fact
from pipeline.core.localtime import HOUR_MS
from pipeline.core.sendtime import (
    HOURS,
    EngagementHours,
    SendTimePrior,
    best_hour,
    best_hour_of,
    engagement_channel,
    hour_of_week,
    load_send_time_model,
    posterior,
    send_at,
    session_example,
)
from pipeline.core.traits import Traits, TraitsConfig
from pipeline.errors import ModelError

MONDAY = 1_767_571_200_000  # 2026-01-05 00:00 UTC, a Monday
DAY_MS = 86_400_000


def fact(ts: int, name: str, tz: str | None = None) -> Fact:
    return Fact(ts, f"m{ts}-{name}", name, tz, None, None, False, (), None)


def model_doc(hours: dict[str, list[float]], strength: float = 5.0) -> dict[str, Any]:
    return {"format": "pulse-model", "version": 1, "task": "send_time", "kind": "send_time",
            "send_time": {"strength": strength, "hours": hours}}  # fmt: skip


def peaked(how: int) -> list[float]:
    shares = [0.1] * HOURS
    shares[how] = 100.0
    return shares


@pytest.mark.parametrize(
    ("ts", "tz", "how"),
    [
        (MONDAY, None, 0),
        (MONDAY + 13 * HOUR_MS, None, 13),
        (MONDAY + 6 * 24 * HOUR_MS + 23 * HOUR_MS, None, 167),
        (MONDAY, "America/New_York", 6 * 24 + 19),  # Sunday 19:00 in New York
        (MONDAY, "Asia/Kolkata", 5),  # +05:30
    ],
)
def test_hour_of_week(ts: int, tz: str | None, how: int) -> None:
    assert hour_of_week(ts, tz) == how


@pytest.mark.parametrize(
    ("name", "channel"),
    [("email_opened", "email"), ("push_clicked", "push"), ("opened", None),
     ("product_viewed", None), ("_opened", None)],
)  # fmt: skip
def test_engagement_channel(name: str, channel: str | None) -> None:
    assert engagement_channel(name) == channel


def test_fold_counts_channels_and_sessions_and_merges() -> None:
    fold = EngagementHours(("email",))
    s = fold.initialize()
    nine = MONDAY + 9 * HOUR_MS
    ten = MONDAY + 10 * HOUR_MS
    for ts, name in [(nine, "email_opened"), (nine + 5, "email_clicked"),
                     (ten, "push_opened"), (MONDAY, "product_viewed")]:  # fmt: skip
        s = fold.aggregate(s, fact(ts, name))
    s = fold.aggregate_session(s, MONDAY + 20 * HOUR_MS, None)
    assert fold.result(s, 0) == {"engagement_hours": {"*": {"20": 1}, "email": {"9": 2}}}
    other = fold.aggregate(fold.initialize(), fact(MONDAY + 9 * HOUR_MS, "email_opened"))
    merged = fold.merge(s, other)
    assert merged["email"] == {"9": 3}
    assert s["email"] == {"9": 2}  # inputs untouched


def test_fold_is_bounded() -> None:
    fold = EngagementHours(("email",))
    s = fold.initialize()
    for i in range(5000):
        s = fold.aggregate(s, fact(MONDAY + (i % 168) * HOUR_MS, "email_opened"))
    assert len(s["email"]) <= HOURS
    assert sum(s["email"].values()) <= 1000


def test_traits_without_predictions_unchanged() -> None:
    plain, pred = Traits(), Traits(TraitsConfig(send_channels=("email",), recent_products=True))
    a, b = plain.initialize(), pred.initialize()
    assert set(a) == set(b) - {"eh", "rp"}
    for f in [fact(MONDAY, "email_opened", "Europe/Paris"), fact(MONDAY + 1, "product_viewed")]:
        plain.aggregate(a, f)
        pred.aggregate(b, f)
    ra, rb = plain.result(a, MONDAY + 10), pred.result(b, MONDAY + 10)
    assert "engagement_hours" not in ra
    assert "purchased_products" not in ra
    assert {k: v for k, v in rb.items() if k in ra} == ra
    assert rb["engagement_hours"] == {"email": {"1": 1}}  # Monday 01:00 in Paris


def test_old_state_without_the_fold_still_loads() -> None:
    plain, pred = Traits(), Traits(TraitsConfig(send_channels=("email",), recent_products=True))
    old = plain.initialize()
    plain.aggregate(old, fact(MONDAY, "product_viewed"))
    state = json.loads(json.dumps(old))
    assert pred.result(state, MONDAY + 1)["engagement_hours"] == {}
    assert pred.lazy_result(state, MONDAY + 1)["purchased_products"] == []
    pred.merge(state, pred.initialize())
    pred.aggregate(state, fact(MONDAY + 5, "email_opened"))
    pred.aggregate_session(state, MONDAY, None)
    assert pred.result(state, MONDAY + 6)["engagement_hours"] == {"*": {"0": 1}, "email": {"0": 1}}


def test_model_round_trip_and_refusals() -> None:
    prior = load_send_time_model(json.loads(json.dumps(model_doc({"email": peaked(10)}))))
    assert abs(sum(prior.of("email")) - 1.0) < 1e-9
    assert prior.of("push") == prior.of("sms")  # uniform fallback
    for bad in (
        {"format": "x"},
        {**model_doc({}), "kind": "gbdt"},
        model_doc({"email": [1.0] * 10}),
        model_doc({"email": [-1.0] + [1.0] * 167}),
        model_doc({"email": [0.0] * 168}),
        model_doc({"email": [1.0] * 168}, strength=0),
    ):
        with pytest.raises(ModelError):
            load_send_time_model(bad)


def test_no_model_needs_min_events() -> None:
    few = {"email": {"30": 2}}
    assert best_hour(few, "email", None, min_events=5) is None
    assert best_hour({"email": {"30": 5}}, "email", None, min_events=5).how == 30  # type: ignore[union-attr]


def test_population_prior_when_few_events() -> None:
    prior = load_send_time_model(model_doc({"email": peaked(100)}))
    b = best_hour({"email": {"30": 2}}, "email", prior, min_events=5)
    assert b is not None
    assert b.how == 100
    assert b.source == "population"
    assert b.hour == 100 % 24
    assert b.weekday == 100 // 24
    assert b.confidence > 0.8


def test_shrinkage_moves_with_evidence() -> None:
    prior = load_send_time_model(model_doc({"*": peaked(100)}, strength=10))
    weak = best_hour({"email": {"30": 6}}, "email", prior, min_events=5)
    strong = best_hour({"email": {"30": 40}}, "email", prior, min_events=5)
    assert weak is not None
    assert weak.how == 100
    assert strong is not None
    assert strong.how == 30
    assert strong.source == "person"
    assert 0 < strong.confidence <= 1


def test_posterior_sums_to_one() -> None:
    prior = load_send_time_model(model_doc({"email": peaked(3)}))
    found = posterior({"email": {"1": 7}, "*": {"2": 4}}, "email", prior, 5)
    assert found is not None
    post, total, source = found
    assert total == 9.0
    assert source == "person"
    assert abs(sum(post) - 1) < 1e-9


def test_best_hour_of_reads_traits() -> None:
    assert best_hour_of(None, {}, "email") is None
    assert best_hour_of(None, {"engagement_hours": {"email": {"7": 9}}}, "email").how == 7  # type: ignore[union-attr]


def test_best_hour_wraps_the_week() -> None:
    b = best_hour({"email": {"167": 5, "0": 5}}, "email", None, min_events=5)
    assert b is not None
    assert b.how in (167, 0)


def test_send_at_picks_best_reachable_hour() -> None:
    post = [0.001] * HOURS
    post[20] = 0.5  # Monday 20:00
    post[14] = 0.1
    at = MONDAY + 9 * HOUR_MS + 123
    assert send_at(at, post, None, 24 * HOUR_MS) == MONDAY + 20 * HOUR_MS
    assert send_at(at, post, None, 6 * HOUR_MS) == MONDAY + 14 * HOUR_MS
    assert send_at(at, post, None, 0) == at
    # quiet hours 19-08 skip 20:00
    assert send_at(at, post, None, 24 * HOUR_MS, quiet=(19, 8)) == MONDAY + 14 * HOUR_MS
    assert send_at(MONDAY + 22 * HOUR_MS, post, None, HOUR_MS, quiet=(19, 8)) is None


def test_send_at_in_half_hour_zone() -> None:
    post = [0.0] * HOURS
    post[10] = 1.0  # Monday 10:00 in Kolkata = 04:30 UTC
    assert send_at(MONDAY, post, "Asia/Kolkata", 24 * HOUR_MS) == MONDAY + 4 * HOUR_MS + 1_800_000


def test_session_example() -> None:
    record = {"session_id": "s", "start_ms": MONDAY + HOUR_MS, "end_ms": MONDAY + 2 * HOUR_MS,
              "closed_at_ms": MONDAY + 3 * HOUR_MS, "timezone": None, "channel": "web",
              "event_counts": {"email_opened": 1, "email_clicked": 2, "page_viewed": 4},
              }  # fmt: skip
    ex = session_example(record, "u1")
    assert ex == {"task": "send_time", "person": "u1", "scored_at_ms": MONDAY + 3 * HOUR_MS,
                  "start_ms": MONDAY + HOUR_MS, "timezone": None, "how": 1, "channel": "web",
                  "engagements": {"email": 3}}  # fmt: skip
    assert SendTimePrior({}).of("x")[0] == pytest.approx(1 / 168)


def test_trainer_prior_and_evaluation() -> None:
    from pipeline.tools.train_sendtime import fit, parse_lines, publish_problem, train

    day = 24 * HOUR_MS
    lines = []
    for week in range(4):
        for person in range(30):
            hour = 9 if person % 2 else 20  # two kinds of people
            start = MONDAY + week * 7 * day + (person % 5) * day + hour * HOUR_MS
            lines.append(json.dumps({"task": "send_time", "person": f"u{person}",
                                     "scored_at_ms": start + 1_800_000, "start_ms": start,
                                     "how": hour_of_week(start, None), "channel": "email",
                                     "engagements": {"email": 1}}))  # fmt: skip
    visits = parse_lines(lines)
    hours = fit(visits)
    assert set(hours) == {"*", "email"}
    assert abs(sum(hours["email"]) - 1) < 1e-6
    doc, report = train(visits, strength=5.0, min_events=2)
    prior = load_send_time_model(doc)
    assert prior.strength == 5.0
    ev = report["evaluation_by_strength"]["5"]
    assert ev["hit_rate"] == 1.0  # every person engages at their own hour
    assert ev["population_hit_rate"] == pytest.approx(0.5, abs=0.1)
    assert publish_problem(report) is None
    with pytest.raises(ModelError):
        parse_lines(['{"task": "send_time", "person": "u", "scored_at_ms": 1, "how": 400}'])


@pytest.mark.parametrize("task", ["send_time", "recs"])
def test_pulse_train_table_tasks_on_files(task: str, tmp_path: Any, capsys: Any) -> None:
    from pipeline.cli.main import main

    rows = []
    for i in range(50):
        start = MONDAY + i * HOUR_MS
        rows.append({"task": task, "person": f"u{i % 7}", "scored_at_ms": start + 1,
                     "start_ms": start,
                     "end_ms": start, "how": hour_of_week(start, None), "channel": "email",
                     "engagements": {"email": 1}, "viewed": [f"p{i % 5}", f"p{(i + 1) % 5}"],
                     "added": [], "purchased": []})  # fmt: skip
    (tmp_path / f"pulse.training.{task}.jsonl").write_text(
        "".join(json.dumps(r) + "\n" for r in rows)
    )
    out = tmp_path / "models"
    args = ["train", "--task", task, "--examples", str(tmp_path), "--out", str(out)]
    assert main(args) == 0
    model = json.loads((out / f"{task}.model.json").read_text())
    assert model["kind"] == task
    assert f"task {task}" in capsys.readouterr().out
    code = main([*args, "--publish", "--bootstrap", "127.0.0.1:9", "--min-sessions", "10000"])
    assert code == 2
    assert "not publishing" in capsys.readouterr().err


def test_profiles_carry_the_folds_and_ignore_arrival_order() -> None:
    import random

    from pipeline.core.behavior import BehaviorOperator
    from pipeline.core.events import Event
    from pipeline.tools.replay import replay_events

    traits = Traits(TraitsConfig(send_channels=("email", "push"), recent_products=True))
    rng = random.Random(3)
    events = []
    for i in range(60):
        name = rng.choice(["email_opened", "push_clicked", "product_viewed", "order_completed"])
        props = {"product_id": f"p{rng.randrange(5)}", "revenue": 3.0}
        events.append(Event(message_id=f"m{i}", type="track", event=name, user_id="u1",
                            timestamp_ms=MONDAY + i * 7 * HOUR_MS + rng.randrange(HOUR_MS),
                            properties=props, context={"timezone": "Europe/Paris"}))  # fmt: skip

    def profiles(order: list[Any]) -> list[Any]:
        out = replay_events(
            order, [BehaviorOperator(traits=traits)], allowed_lateness_ms=30 * DAY_MS
        )
        return [o.record for o in out if o.topic == "profiles"]

    first = profiles(events)
    shuffled = events[:]
    rng.shuffle(shuffled)
    assert profiles(shuffled) == first
    last = first[-1]["traits"]
    assert set(last["engagement_hours"]) == {"*", "email", "push"}
    assert last["purchased_products"]
    plain = replay_events(events, [BehaviorOperator()], allowed_lateness_ms=30 * DAY_MS)
    assert (
        "engagement_hours" not in [o for o in plain if o.topic == "profiles"][-1].record["traits"]
    )
