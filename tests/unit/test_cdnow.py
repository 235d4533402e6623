"""The CDNOW log as events (pulse cdnow) and the batch example fixture built on it."""

from __future__ import annotations

import io
from datetime import UTC, datetime

import pytest

from pipeline.contract.produce import BadLine, read_json_lines
from pipeline.core.events import MIN_TIMESTAMP_MS
from pipeline.errors import ConfigError
from pipeline.tools import batch_examples, cdnow
from pipeline.tools.replay import replay_events
from pipeline.tools.synthetic import write_jsonl

SAMPLE = """ customer_id  date number_of_cds  dollar_value
 00001 19970101  1   11.77
 00002 19970112  1   12.00
 00002 19970112  5   77.00
 00003 19970102  2   20.76
 00003 19970330  2   20.76
 00003 19970402  2   19.54
"""
DAY = 86_400_000


def _utc(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


def test_each_purchase_is_an_order_on_the_same_weekday_28_years_later() -> None:
    events = cdnow.to_events(cdnow.read_purchases(io.StringIO(SAMPLE)))
    assert [e.message_id for e in events] == [
        "cdnow-00001-19970101-1", "cdnow-00003-19970102-1", "cdnow-00002-19970112-1",
        "cdnow-00002-19970112-2", "cdnow-00003-19970330-1", "cdnow-00003-19970402-1",
    ]  # fmt: skip
    first = events[0]
    assert (first.event, first.type, first.user_id) == ("order_completed", "track", "cdnow-00001")
    assert _utc(first.timestamp_ms) == datetime(2025, 1, 1, 12, tzinfo=UTC)
    assert _utc(first.timestamp_ms).weekday() == datetime(1997, 1, 1, tzinfo=UTC).weekday()
    second_same_day = events[3]
    assert second_same_day.timestamp_ms - events[2].timestamp_ms == 60_000
    assert dict(second_same_day.properties) == {
        "order_id": "cdnow-00002-19970112-2", "revenue": 77.0, "quantity": 5, "currency": "USD",
    }  # fmt: skip


def test_a_bad_line_is_refused_with_its_place() -> None:
    with pytest.raises(ConfigError, match=r"x:2: not 'customer date cds dollars'"):
        list(cdnow.read_purchases(io.StringIO(SAMPLE.replace("19970101", "1997-01-01")), "x"))


@pytest.fixture(scope="module")
def cdnow_events():  # type: ignore[no-untyped-def]
    return cdnow.load()


def test_the_shipped_log_is_all_there_and_valid(cdnow_events) -> None:  # type: ignore[no-untyped-def]
    assert len(cdnow_events) == 69_659
    assert len({e.person_id for e in cdnow_events}) == cdnow.CUSTOMERS
    assert len({e.message_id for e in cdnow_events}) == len(cdnow_events)
    assert cdnow_events[0].timestamp_ms >= MIN_TIMESTAMP_MS
    assert _utc(cdnow_events[-1].timestamp_ms).date().isoformat() == "2026-06-30"
    handle = io.StringIO()
    write_jsonl(cdnow_events[:5000], handle)
    back = list(read_json_lines(io.BytesIO(handle.getvalue().encode())))
    assert not [b for b in back if isinstance(b, BadLine)]
    assert back == cdnow_events[:5000]


def test_replay_takes_every_event_and_a_day_is_one_session(cdnow_events) -> None:  # type: ignore[no-untyped-def]
    from pipeline.topology.dsl import load

    people = {e.person_id for e in cdnow_events[:3000]}
    sample = [e for e in cdnow_events if e.person_id in people]
    topo = load("topologies/commerce.yaml")
    outputs = replay_events(
        sample, topo.operators, allowed_lateness_ms=5_000, stage=topo.stage, identity=topo.identity
    )
    topics = {o.topic for o in outputs}
    assert "events.late" not in topics
    days = {(e.person_id, e.timestamp_ms // DAY) for e in sample}
    assert sum(o.topic == "sessions" for o in outputs) == len(days)


def test_the_batch_fixture_labels_and_censors_by_hand() -> None:
    events = cdnow.to_events(cdnow.read_purchases(io.StringIO(SAMPLE)))
    end = events[-1].timestamp_ms + 31 * DAY
    purchase = batch_examples.derive(events, "purchase_7d", end_ms=end)
    by = {(x.person, x.scored_at_ms): x for x in purchase}
    t_0330 = events[4].timestamp_ms
    later = by["cdnow-00003", t_0330]  # next order 3 days later
    assert (later.label, later.outcome_at_ms) == (1, events[5].timestamp_ms)
    first = by["cdnow-00001", events[0].timestamp_ms]
    assert (first.label, first.outcome_at_ms) == (0, None)
    assert len(purchase) == 5  # one example per person-day
    # without the extra month, the days whose horizon ends after the data are left out
    censored = batch_examples.derive(events, "purchase_7d")
    assert {(x.person, x.scored_at_ms) for x in censored} == {
        (x.person, x.scored_at_ms) for x in purchase if x.scored_at_ms < t_0330
    }
    # one scoring point per person-day: person 2's two orders on one day are one example
    assert sum(x.person == "cdnow-00002" for x in purchase) == 1
    two = by["cdnow-00002", events[3].timestamp_ms]
    assert two.features["purchases"] == 2
    assert two.features["purchase_days"] == 1
    assert "days_since_previous_purchase" not in two.features  # missing until a second day
    assert later.features["days_since_previous_purchase"] == pytest.approx(87.0)
    churn = batch_examples.derive(events, "churn_30d", end_ms=end)
    assert {x.label for x in churn if x.person == "cdnow-00001"} == {1}
    c = next(x for x in churn if x.person == "cdnow-00003" and x.scored_at_ms == t_0330)
    assert (c.label, c.outcome_at_ms) == (0, events[5].timestamp_ms)


def test_the_batch_fixture_adds_periodic_scoring_points() -> None:
    events = cdnow.to_events(cdnow.read_purchases(io.StringIO(SAMPLE)))
    every = batch_examples.derive(events, "churn_30d", every_days=30)
    plain = batch_examples.derive(events, "churn_30d")
    assert len(every) > len(plain)
    one = [x for x in every if x.person == "cdnow-00001"]
    assert [round(x.features["days_since_last_purchase"], 3) for x in one][:3] == [0, 30, 60]


def test_pulse_cdnow_writes_events_replay_reads(tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    from pipeline.cli.main import main
    from pipeline.tools.replay import load_events

    source = tmp_path / "CDNOW_master.txt"
    source.write_text(SAMPLE)
    out = tmp_path / "events.jsonl"
    assert main(["cdnow", "--out", str(out), "--source", str(source), "--max-customers", "2"]) == 0
    assert "wrote 3 order_completed event(s) of 2 people" in capsys.readouterr().err
    assert [e.user_id for e in load_events(out)] == ["cdnow-00001", "cdnow-00002", "cdnow-00002"]


def test_make_cdnow_steps_train_on_examples_the_stream_made(tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    """What ``make cdnow`` runs, on the first 3,000 customers: pulse cdnow, pulse replay
    through the commerce topology (its predictions: section makes the examples), pulse
    train. The model must beat chance on the later quarter and carry its evaluation."""
    import json

    from pipeline.cli.main import main

    events, replayed, models = tmp_path / "a" / "events.jsonl", tmp_path / "r", tmp_path / "m"
    assert main(["cdnow", "--out", str(events), "--max-customers", "3000"]) == 0
    from pathlib import Path

    topology = str(Path(__file__).resolve().parents[2] / "topologies" / "commerce.yaml")
    assert main(["replay", str(events), "--topology", topology, "--out", str(replayed)]) == 0
    made = (replayed / "pulse.training.purchase_7d.jsonl").read_text().splitlines()
    assert len(made) > 5_000
    assert {json.loads(line)["features_version"] for line in made} == {"stream/1"}
    capsys.readouterr()
    task = ["--task", "purchase_7d", "--examples", str(replayed), "--out", str(models)]
    assert main(["train", *task]) == 0
    report = json.loads((models / "purchase_7d.evaluation.json").read_text())
    assert report["split"]["test"]["positive"] >= 100
    assert report["model"]["auc"] > 0.6
    assert json.loads((models / "purchase_7d.model.json").read_text())["task"] == "purchase_7d"
