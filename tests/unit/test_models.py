"""Online scoring: the ModelSet, ``score.<task>`` in predicates and segments, the load warning."""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Mapping
from typing import Any

import pytest

from pipeline.core import scoring
from pipeline.core.engine import MemoryStore, Processor
from pipeline.core.models import ModelSet, score_path, unscored, version_of, warn_unscored
from pipeline.core.outputs import Output
from pipeline.core.rules import RuleStage
from pipeline.errors import ConfigError, ModelError
from pipeline.tools.replay import replay_events
from pipeline.topology.dsl import load_topology
from tests.unit.helpers import MIN, T0, ev

CUTS = [i / 100 for i in range(1, 100)]
HOUR = 60 * MIN


def views_of(traits: Mapping[str, Any], at_ms: int) -> dict[str, float | None]:
    """A stand-in for the stream's features: product views so far, hours since the last event."""
    counts = traits.get("event_counts_total") or {}
    last = traits.get("last_seen_ms")
    return {
        "views": float(counts.get("product_viewed", 0)),
        "idle_h": None if last is None else (at_ms - last) / HOUR,
    }


def model_doc(task: str = "purchase_7d", leaf_high: float = 2.0) -> dict[str, Any]:
    """views > 2.5 scores sigmoid(leaf_high), else sigmoid(-2); idle > 48 h lowers it by 4."""
    return {
        "format": "pulse-model",
        "version": 1,
        "task": task,
        "features": ["views", "idle_h"],
        "kind": "gbdt",
        "gbdt": {
            "base": 0.0,
            "trees": [
                {
                    "feature": [0, -1, -1],
                    "threshold": [2.5, 0.0, 0.0],
                    "left": [1, -1, -1],
                    "right": [2, -1, -1],
                    "missing_left": [1, 0, 0],
                    "value": [0.0, -2.0, leaf_high],
                },
                {
                    "feature": [1, -1, -1],
                    "threshold": [48.0, 0.0, 0.0],
                    "left": [1, -1, -1],
                    "right": [2, -1, -1],
                    "missing_left": [1, 0, 0],
                    "value": [0.0, 0.0, -4.0],
                },
            ],
        },
        "percentiles": CUTS,
    }


TOPOLOGY = """
triggers:
  likely_buyer_added:
    immediate: product_added
    where: {score.purchase_7d: {gte: 0.5}}
    destinations: [crm]
segments:
  likely_buyers:
    where: {score.purchase_7d.percentile: {gte: 50}}
"""


def stage_with(models: ModelSet) -> RuleStage:
    stage = load_topology("t.yaml", TOPOLOGY).stage
    assert isinstance(stage, RuleStage)
    return dataclasses.replace(stage, models=models)


def run(events: list[Any], models: ModelSet, lateness: int = 0) -> list[Output]:
    t = load_topology("t.yaml", TOPOLOGY)
    ops = list(t.operators)
    return replay_events(events, ops, allowed_lateness_ms=lateness, stage=stage_with(models))


def shopper(pid: str, views: int, start: int = 0) -> list[Any]:
    out = [ev(f"{pid}-v{i}", "product_viewed", start + i, user_id=pid) for i in range(views)]
    out.append(ev(f"{pid}-a", "product_added", start + views, user_id=pid))
    return out


def triggers(outs: list[Output]) -> list[tuple[str, str]]:
    return [(o.key, o.record["rule"]) for o in outs if o.topic == "triggers"]


def changes(outs: list[Output]) -> list[tuple[str, str, str, int]]:
    return [
        (o.key, o.record["segment"], o.record["change"], o.record["event_time_ms"])
        for o in outs
        if o.topic == "segments"
    ]


# -- the ModelSet ----------------------------------------------------------------------------


def test_put_get_version_and_replace() -> None:
    models = ModelSet(features=views_of)
    assert models.get("purchase_7d") is None
    assert models.version("purchase_7d") is None
    assert len(models) == 0
    assert "purchase_7d" not in models
    assert models.put(model_doc()) == "purchase_7d"
    first = models.get("purchase_7d")
    assert first is not None
    assert models.version("purchase_7d") == version_of(model_doc())
    assert models.tasks() == models.scoring_tasks() == ("purchase_7d",)
    # the same model again: the same version; a retrained one replaces it
    models.put_json(json.dumps(model_doc()))
    assert models.version("purchase_7d") == version_of(model_doc())
    models.put(model_doc(leaf_high=3.0))
    assert models.version("purchase_7d") != version_of(model_doc())
    assert models.get("purchase_7d") is not first
    assert models.drop("purchase_7d")
    assert models.get("purchase_7d") is None
    assert not models.drop("purchase_7d")


def test_a_broken_model_is_refused_and_the_old_one_stays() -> None:
    models = ModelSet(features=views_of)
    models.put(model_doc())
    broken = model_doc()
    broken["percentiles"] = CUTS[:10]
    with pytest.raises(ModelError):
        models.put(broken)
    with pytest.raises(ModelError):
        models.put_json(b"{not json")
    with pytest.raises(ModelError):
        models.put_json(b"[1, 2]")
    assert models.version("purchase_7d") == version_of(model_doc())


def recs_doc() -> dict[str, Any]:
    table = {"neighbours": {"a": [["b", 0.5]]}, "popular": ["b"], "self_weight": 1.0}
    return {"format": "pulse-model", "version": 1, "task": "recs", "kind": "recs", "recs": table}


def test_other_kinds_are_parsed_by_their_modules_or_kept_as_documents() -> None:
    models = ModelSet(features=views_of)
    assert models.put(recs_doc()) == "recs"
    assert models.document("recs") == recs_doc()
    assert models.get("recs") is None
    assert models.parsed("recs") is not None
    assert models.tasks() == ("recs",)
    assert models.scoring_tasks() == ()
    with pytest.raises(ModelError):  # a broken table is refused like a broken GBDT
        models.put({"format": "pulse-model", "version": 1, "task": "recs", "kind": "recs"})
    assert models.document("recs") == recs_doc()
    other = {"format": "pulse-model", "version": 1, "task": "x", "kind": "custom"}
    assert models.put(other) == "x"
    assert models.parsed("x") is None
    with pytest.raises(ModelError):
        models.put({"format": "pulse-model", "task": "x"})  # no kind


def test_scores_of_a_person() -> None:
    models = ModelSet(features=views_of)
    traits = {"event_counts_total": {"product_viewed": 3}, "last_seen_ms": T0}
    assert models.scores(traits, T0) == {}
    models.put(model_doc())
    s = models.score("purchase_7d", traits, T0)
    assert s == scoring.Score(scoring.sigmoid(2.0), 88)
    assert models.scores(traits, T0) == {
        "purchase_7d": {
            "probability": scoring.sigmoid(2.0),
            "percentile": 88,
            "version": models.version("purchase_7d"),
        }
    }
    assert models.score("purchase_7d", {}, T0) is None  # no traits: no score
    assert models.score("churn_30d", traits, T0) is None


@pytest.mark.parametrize(
    ("path", "parsed"),
    [
        ("score.purchase_7d", ("purchase_7d", "probability")),
        ("score.purchase_7d.probability", ("purchase_7d", "probability")),
        ("score.churn_30d.percentile", ("churn_30d", "percentile")),
        ("score.churn_30d.other", None),
        ("score", None),
        ("score.", None),
        ("trait.x", None),
    ],
)
def test_score_paths(path: str, parsed: tuple[str, str] | None) -> None:
    assert score_path(path) == parsed


def test_the_topology_refuses_a_bad_score_path() -> None:
    with pytest.raises(ConfigError, match=r"score.<task>"):
        load_topology("t.yaml", "segments:\n  s:\n    where: {score.x.bogus: {gte: 1}}\n")


# -- score.* in triggers and segments -------------------------------------------------------


def test_without_a_model_no_score_and_no_output() -> None:
    outs = run(shopper("u1", 3), ModelSet(features=views_of))
    assert triggers(outs) == []
    assert changes(outs) == []


def test_with_a_model_triggers_and_segments_read_the_score() -> None:
    models = ModelSet(features=views_of)
    models.put(model_doc())
    outs = run([*shopper("u1", 3), *shopper("u2", 1)], models)
    assert triggers(outs) == [("u1", "likely_buyer_added")]
    activations = [o for o in outs if o.topic == "activations.crm"]
    assert [o.key for o in activations] == ["u1"]
    payload = activations[0].record["payload"]  # the score as of the trigger, flat keys
    assert payload["score.purchase_7d"] == scoring.sigmoid(2.0)
    assert payload["score.purchase_7d.percentile"] == 88
    # u1 enters at the third view (views > 2.5), and leaves when 48 idle hours pass
    entered = T0 + 2 * MIN
    assert changes(outs)[0] == ("u1", "likely_buyers", "entered", entered)
    assert [c for c in changes(outs) if c[0] == "u2"] == []


def test_time_alone_moves_a_score_out_of_a_segment() -> None:
    models = ModelSet(features=views_of)
    models.put(model_doc())
    outs = run(shopper("u1", 3), models)
    exited = [c for c in changes(outs) if c[2] == "exited"]
    assert len(exited) == 1
    # re-checked on the 6-hour grid: the first grid point past 48 idle hours
    last = T0 + 3 * MIN
    assert last + 48 * HOUR < exited[0][3] <= last + 48 * HOUR + 6 * HOUR


def test_a_model_published_mid_run_is_used_from_then_on() -> None:
    models = ModelSet(features=views_of)
    t = load_topology("t.yaml", TOPOLOGY)
    stage = stage_with(models)
    proc = Processor(list(t.operators), allowed_lateness_ms=0, store=MemoryStore(), stage=stage)
    outs: list[Output] = []
    for e in shopper("u1", 3):
        outs += proc.process(e)
    outs += proc.advance_to(T0 + 10 * MIN)
    assert triggers(outs) == []
    assert changes(outs) == []
    models.put(model_doc())  # what the worker's model reader does
    # the next event is scored; the segment is re-checked without an event, on its grid
    outs = proc.process(ev("u1-a2", "product_added", 20, user_id="u1"))
    outs += proc.advance_to(T0 + 30 * MIN)
    assert triggers(outs) == [("u1", "likely_buyer_added")]
    assert [c[2] for c in changes(outs)] == ["entered"]


def test_a_segment_enters_on_the_grid_when_a_model_arrives_without_events() -> None:
    models = ModelSet(features=views_of)
    t = load_topology("t.yaml", TOPOLOGY)
    proc = Processor(
        list(t.operators), allowed_lateness_ms=0, store=MemoryStore(), stage=stage_with(models)
    )
    for e in shopper("u1", 3):
        proc.process(e)
    assert changes(proc.advance_to(T0 + 10 * MIN)) == []
    models.put(model_doc())
    outs = proc.advance_to(T0 + 7 * HOUR)
    # re-checked at the next point that can change a score: the session's close
    # (30 minutes after the last event), else the 6-hour grid
    assert changes(outs) == [("u1", "likely_buyers", "entered", T0 + 33 * MIN)]


def test_live_order_does_not_matter_with_a_fixed_model() -> None:
    models = ModelSet(features=views_of)
    models.put(model_doc())
    events = [*shopper("u1", 3), *shopper("u2", 4, start=1)]
    forward = run(events, models, HOUR)
    backward = run(sorted(events, key=lambda e: -e.timestamp_ms), models, HOUR)
    assert triggers(forward) == [("u1", "likely_buyer_added"), ("u2", "likely_buyer_added")]
    key = lambda outs: sorted((o.topic, o.key, json.dumps(o.record, sort_keys=True)) for o in outs)  # noqa: E731
    assert key(forward) == key(backward)


# -- the warning on load --------------------------------------------------------------------


def test_rules_reading_a_score_without_a_model_are_named(caplog: pytest.LogCaptureFixture) -> None:
    stage = stage_with(ModelSet(features=views_of))
    with caplog.at_level(logging.WARNING):
        warnings = warn_unscored(stage, stage.models, logging.getLogger("t"))
    assert len(warnings) == 2
    assert "rule 'likely_buyer_added' reads score.purchase_7d" in warnings[0]
    assert "segment 'likely_buyers' reads score.purchase_7d" in warnings[1]
    assert [r.getMessage() for r in caplog.records] == warnings
    stage.models.put(model_doc())
    assert unscored(stage, stage.models) == []


# -- the worker's model reader, without a broker --------------------------------------------


def test_the_reader_puts_refuses_and_drops(tmp_path: Any) -> None:
    from pipeline.config import Settings
    from pipeline.worker import metrics
    from pipeline.worker.models import ModelReader

    models = ModelSet(features=views_of)
    reader = ModelReader(Settings(home=tmp_path), models)
    assert reader.apply(b"purchase_7d", json.dumps(model_doc()).encode()) == "purchase_7d"
    version = models.version("purchase_7d")
    assert metrics.MODELS_LOADED._value.get() == 1
    assert reader.apply(b"purchase_7d", b'{"format": "pulse-model"}') is None  # refused
    assert models.version("purchase_7d") == version
    assert reader.apply(b"purchase_7d", None) == "purchase_7d"  # a tombstone
    assert models.get("purchase_7d") is None
    assert metrics.MODELS_LOADED._value.get() == 0


def test_training_records_are_json_on_their_topics() -> None:
    from pipeline.contract.topics import decode_output, encode_output, prediction_topics
    from pipeline.core.predictions import PredictionsConfig, PredictionTask

    record = {"task": "purchase_7d", "person": "u1", "label": 1, "features": {"a": 1.0}}
    raw = encode_output("training.purchase_7d", record)
    assert json.loads(raw) == record
    assert decode_output("training.purchase_7d", raw) == record
    config = PredictionsConfig(
        tasks=(PredictionTask("purchase_7d", "order_completed", 7 * 24 * HOUR),),
        recs_k=10,
        send_channels=("email",),
    )
    assert prediction_topics(config) == [
        "training.purchase_7d",
        "training.recs",
        "training.send_time",
    ]
    assert prediction_topics(None) == []


# -- the profile: the API's view, and the pulse.profiles record's schema ----------------------


def test_the_profile_api_shows_the_scores_as_of_the_watermark() -> None:
    from pipeline.profiles.page import render
    from pipeline.profiles.view import ProfileView

    models = ModelSet(features=views_of)
    t = load_topology("t.yaml", TOPOLOGY)
    stage = stage_with(models)
    proc = Processor(list(t.operators), allowed_lateness_ms=0, store=MemoryStore(), stage=stage)
    for e in shopper("u1", 3):
        proc.process(e)
    proc.advance_to(T0 + 10 * MIN)
    view = ProfileView(t.operators, stage)
    state = proc.store.load("u1")
    assert state is not None
    assert view.profile("u1", state, proc.watermark_ms)["predictions"] == {}
    models.put(model_doc())  # published: the next lookup shows it, no restart
    got = view.profile("u1", state, proc.watermark_ms)
    assert got["predictions"] == {
        "purchase_7d": {
            "probability": scoring.sigmoid(2.0),
            "percentile": 88,
            "version": models.version("purchase_7d"),
        }
    }
    json.dumps(got)
    assert 'id="predictions"' in render(got, [])


def test_the_profile_record_takes_scores_and_old_records_still_read() -> None:
    from pathlib import Path

    from pipeline.contract.avro import encode_single_object, parse_schema
    from pipeline.contract.topics import decode_output, encode_output

    t = load_topology("t.yaml", TOPOLOGY)
    outs = replay_events(shopper("u1", 3), list(t.operators), allowed_lateness_ms=0, stage=t.stage)
    (record,) = [o.record for o in outs if o.topic == "profiles"]
    assert decode_output("profiles", encode_output("profiles", record))["scores"] is None
    scores = {"purchase_7d": {"probability": 0.25, "percentile": 40, "version": "0123abcd"}}
    scored = {**record, "scores": scores}
    assert decode_output("profiles", encode_output("profiles", scored))["scores"] == scores
    history = Path(__file__).resolve().parents[2] / "schemas" / "history" / "profile.v1.avsc"
    v1 = parse_schema(json.loads(history.read_text()), "v1")
    old = decode_output("profiles", encode_single_object(v1, record))
    assert old["scores"] is None
    assert old["traits"]["purchased_products"] is None


# -- recs and best_hour.<channel> ------------------------------------------------------------


def test_recs_and_best_hour_lookups() -> None:
    from pipeline.core.lookup import compile_predicate
    from pipeline.core.predicates import Predicate

    traits = {
        "product_interest": {"a": 1.0},
        "purchased_products": [],
        "engagement_hours": {"email": {"10": 6, "34": 3}},
        "last_seen_ms": T0,
    }

    def traits_of(person: Mapping[str, Any], as_of: int) -> Mapping[str, Any]:
        return traits

    models = ModelSet(features=views_of)

    def holds(path: str, op: str, expected: Any) -> bool:
        pred = Predicate(((path, op, expected),))
        part = compile_predicate(pred, traits_of, frozenset(), segment=True, models=models).state
        return part({}, T0, frozenset())

    assert holds("recs", "exists", False)  # no recs model: MISSING
    assert holds("best_hour.email", "eq", 10)  # no send_time model: the person's own hours
    assert holds("best_hour.email.weekday", "eq", 0)
    assert holds("best_hour.push", "exists", False)  # too few engagements on push
    models.put(recs_doc())
    assert holds("recs", "eq", ["a", "b"])  # (self_weight 1: the viewed product stays)
    load_topology("t.yaml", "segments:\n  s:\n    where: {recs: {exists: true}}\n")
    load_topology("t.yaml", "segments:\n  s:\n    where: {best_hour.email: {gte: 9}}\n")


def test_the_profile_record_of_a_close_carries_the_scores() -> None:
    text = (
        TOPOLOGY
        + "predictions:\n  tasks:\n    purchase_7d: {outcome: order_completed, horizon: 7d}\n"
    )
    t = load_topology("t.yaml", text)
    doc = model_doc()
    doc["features"] = ["views_7d", "unused"]  # the stream's own features (features_of)
    models = ModelSet()
    stage = dataclasses.replace(t.stage, models=models)
    events = shopper("u1", 3)
    plain = replay_events(events, list(t.operators), allowed_lateness_ms=0, stage=stage)
    assert [o.record.get("scores") for o in plain if o.topic == "profiles"] == [None]
    models.put(doc)
    outs = replay_events(events, list(t.operators), allowed_lateness_ms=0, stage=stage)
    (profile,) = [o.record for o in outs if o.topic == "profiles"]
    assert profile["scores"] == {
        "purchase_7d": {
            "probability": scoring.sigmoid(2.0),
            "percentile": 88,
            "version": models.version("purchase_7d"),
        }
    }
