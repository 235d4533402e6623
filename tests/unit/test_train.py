"""pulse train: the example format, the time split, training end to end, publishing."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from pipeline.cli.main import main
from pipeline.config import Settings
from pipeline.core import scoring
from pipeline.errors import ConfigError, ModelError
from pipeline.tools import batch_examples, cdnow
from pipeline.tools import train as trainer
from pipeline.tools import train_examples as tx

RECORD = {
    "task": "purchase_7d", "person": "u-1", "scored_at_ms": 1_000, "horizon_ms": 7,
    "outcome_at_ms": None, "label": 0, "features": {"a": 1, "b": None, "c": 2.5},
    "features_version": "stream/1",
}  # fmt: skip


def test_an_example_round_trips_and_null_features_are_missing() -> None:
    ex = tx.parse_example(RECORD)
    assert ex.features == {"a": 1.0, "c": 2.5}
    assert tx.parse_example(ex.to_json()) == ex


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"label": 2}, "label must be 0 or 1"),
        ({"label": True}, "label must be 0 or 1"),
        ({"person": ""}, "non-empty"),
        ({"features": [1]}, "features must be an object"),
        ({"features": {"a": "x"}}, "'a' is not a number"),
        ({"features": {"a": float("inf")}}, "'a' is not finite"),
        ({"scored_at_ms": 1.5}, "scored_at_ms must be an integer"),
        ({"outcome_at_ms": "soon"}, "outcome_at_ms must be an integer or null"),
        ({"features_version": None}, "features_version"),
    ],
)
def test_a_bad_example_is_refused_with_its_line(change: dict[str, Any], words: str) -> None:
    lines = [json.dumps(RECORD), json.dumps({**RECORD, **change})]
    with pytest.raises(ConfigError, match=rf"f.jsonl:2: not a training example: .*{words}"):
        list(tx.parse_lines(lines, "f.jsonl", "purchase_7d"))


def test_files_are_found_as_pulse_replay_writes_them(tmp_path: Path) -> None:
    other = {**RECORD, "task": "churn_30d"}
    path = tmp_path / "pulse.training.purchase_7d.jsonl"
    path.write_text(json.dumps(RECORD) + "\n\n" + json.dumps(other) + "\n")
    assert len(tx.read_files(tmp_path, "purchase_7d")) == 1  # the other task is skipped
    assert len(tx.read_files(path, "purchase_7d")) == 1
    with pytest.raises(ConfigError, match=r"no training examples at .*churn_30d"):
        tx.read_files(tmp_path, "churn_30d")


def _ex(at: int, horizon: int, label: int = 0) -> tx.Example:
    return tx.Example("t", f"p{at}", at, horizon, None, label, {"a": float(at)}, "v")


def test_the_split_never_trains_on_a_label_settled_after_the_cut() -> None:
    xs = [_ex(t, 10) for t in range(0, 100, 5)]
    split = trainer.split_by_time(xs, test_share=0.25)
    assert split.cut_ms == 75
    assert [x.scored_at_ms for x in split.test] == [75, 80, 85, 90, 95]
    assert max(x.scored_at_ms + x.horizon_ms for x in split.train) <= 75
    assert split.unsettled == 1  # scored at 70: its horizon ends at 80, after the cut
    assert trainer.split_by_time(xs, cut_ms=50).cut_ms == 50


def test_examples_whose_horizon_ends_after_the_input_are_set_aside() -> None:
    # negatives are decided at their deadline, positives at their outcome: near the end of
    # the input only positives exist, so those scored then would make a one-class test set
    negatives = [_ex(t, 10) for t in range(0, 90, 5)]  # deadlines up to 95
    positives = [
        tx.Example("t", f"q{t}", t, 10, t + 1, 1, {"a": float(t)}, "v") for t in range(0, 100, 5)
    ]
    split = trainer.split_by_time(negatives + positives, test_share=0.25)
    assert split.end_ms == 96  # the positive scored at 95, decided at 96
    assert split.beyond_end == 2  # the positives scored at 90 and 95 (horizons end at 100, 105)
    kept = split.train + split.test
    assert all(x.scored_at_ms + x.horizon_ms <= 96 for x in kept)
    assert {x.label for x in split.test} == {0, 1}
    assert sum(x.label for x in split.test) == len(split.test) // 2


@pytest.fixture(scope="module")
def sample_examples() -> dict[str, list[tx.Example]]:
    events = cdnow.load(max_customers=6000)
    return {t: batch_examples.derive(events, t) for t in ("purchase_7d", "churn_30d")}


@pytest.mark.parametrize("task", ["purchase_7d", "churn_30d"])
def test_training_on_cdnow_beats_chance_and_reports_the_baselines(
    sample_examples: dict[str, list[tx.Example]], task: str
) -> None:
    model, report = trainer.train(sample_examples[task], task)
    assert report["model"]["auc"] > 0.7
    assert report["baselines"]["bgnbd_alive"]["auc"] > 0.6
    assert report["baselines"]["bgnbd_expected"]["auc"] > 0.6
    assert report["baselines"]["rf_heuristic"]["auc"] > 0.6
    assert report["model"]["top_decile"]["lift"] > 1.0
    assert len(report["model"]["calibration"]) == 10
    assert "positive" in report["split"]["train"]
    loaded = scoring.load_model(model)
    assert loaded.features == tuple(report["features"])
    assert "days_since_previous_purchase" in loaded.features  # a sometimes-missing feature
    text = trainer.format_report(report)
    assert "bgnbd_expected" in text
    assert "calibration" in text


def test_never_buyers_are_scored_by_the_heuristic_and_bgnbd_reports_on_buyers(
    sample_examples: dict[str, list[tx.Example]],
) -> None:
    # the stream leaves the purchase-time features out for a person who never bought;
    # give a third of the examples that shape (first seen instead)
    mixed = []
    for i, x in enumerate(sample_examples["purchase_7d"]):
        f = dict(x.features)
        if i % 3 == 0:
            f["days_since_first_seen"] = f.pop("days_since_first_purchase")
            f.pop("days_since_last_purchase")
            f["purchases"] = 0.0
        mixed.append(tx.Example(x.task, x.person, x.scored_at_ms, x.horizon_ms,
                                x.outcome_at_ms, x.label, f, x.features_version))  # fmt: skip
    _, report = trainer.train(mixed, "purchase_7d")
    baselines = report["baselines"]
    assert baselines["rf_heuristic"]["auc"] > 0.55  # never-buyers counted from first seen
    assert "bgnbd_alive" not in baselines
    buyers = baselines["bgnbd_expected_buyers"]
    assert buyers["auc"] > 0.6
    def size(ev: dict[str, Any]) -> int:  # ceil(examples / 10)
        return int(ev["top_decile"]["size"])

    assert size(baselines["model_buyers"]) == size(buyers) < size(report["model"])
    assert "model_buyers" in trainer.format_report(report)


def test_a_task_without_a_class_cannot_train() -> None:
    with pytest.raises(ModelError, match="0 positive and 30 negative"):
        trainer.train([_ex(t, 1) for t in range(40)], "t")


def test_publishing_is_refused_below_the_minimum_naming_the_counts() -> None:
    report = {"task": "t", "split": {"train": {"positive": 250, "negative": 900},
                                     "test": {"positive": 40, "negative": 300}}}  # fmt: skip
    problem = trainer.publish_problem(report)
    assert problem is not None
    assert "40 positive test example(s)" in problem
    assert "at least 100" in problem
    assert trainer.publish_problem(report, min_per_class=40) is None


class FakeProducer:
    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes, bytes]] = []

    def produce(self, topic: str, *, key: bytes, value: bytes, on_delivery: Any) -> None:
        self.sent.append((topic, key, value))
        on_delivery(None, None)

    def flush(self, _timeout: float) -> int:
        return 0


def test_publish_sends_the_model_keyed_by_task() -> None:
    producer = FakeProducer()
    topic = trainer.publish(Settings(topic_prefix="x."), {"task": "t", "kind": "gbdt"},
                            producer=producer)  # fmt: skip
    assert topic == "x.models"
    assert producer.sent == [("x.models", b"t", b'{"kind":"gbdt","task":"t"}')]


class _Msg:
    def __init__(self, partition: int, value: bytes | None, eof: bool = False) -> None:
        self._p, self._v, self._eof = partition, value, eof

    def error(self) -> Any:
        if not self._eof:
            return None
        from confluent_kafka import KafkaError

        return KafkaError(KafkaError._PARTITION_EOF)

    def partition(self) -> int:
        return self._p

    def value(self) -> bytes | None:
        return self._v


class FakeConsumer:
    """Partition 0 has two records, 1 is empty (never assigned), 2 has one."""

    def __init__(self) -> None:
        self.queue = [_Msg(0, b"a"), _Msg(2, b"c"), _Msg(0, b"b"), _Msg(2, None, eof=True),
                      _Msg(0, None, eof=True), _Msg(0, b"after the end")]  # fmt: skip
        self.assigned: list[int] = []

    def list_topics(self, topic: str, timeout: float) -> Any:
        meta = type("T", (), {"error": None, "partitions": {0: 0, 1: 0, 2: 0}})
        return type("M", (), {"topics": {topic: meta}})

    def get_watermark_offsets(self, tp: Any, timeout: float) -> tuple[int, int]:
        return (0, 0) if tp.partition == 1 else (0, 5)

    def assign(self, tps: list[Any]) -> None:
        self.assigned = [tp.partition for tp in tps]

    def poll(self, _timeout: float) -> Any:
        return self.queue.pop(0) if self.queue else None


def test_the_topic_is_read_to_its_end_as_of_now() -> None:
    consumer = FakeConsumer()
    assert list(tx.values_from_topic(consumer, "pulse.training.t")) == [b"a", b"c", b"b"]
    assert consumer.assigned == [0, 2]


def test_pulse_train_on_files_writes_the_model_and_refuses_to_publish_small(
    tmp_path: Path, sample_examples: dict[str, list[tx.Example]], capsys: Any
) -> None:
    tx.write_jsonl(sample_examples["churn_30d"], tmp_path / "pulse.training.churn_30d.jsonl")
    out = tmp_path / "models"
    args = ["train", "--task", "churn_30d", "--examples", str(tmp_path), "--out", str(out)]
    assert main([*args, "--kind", "logistic"]) == 0
    model = json.loads((out / "churn_30d.model.json").read_text())
    assert model["kind"] == "logistic"
    assert scoring.load_model(model).task == "churn_30d"
    report = json.loads((out / "churn_30d.evaluation.json").read_text())
    assert report["model"]["auc"] > 0.7
    assert "AUC" in capsys.readouterr().out
    # refused before any broker is asked: the address is not a broker
    code = main([*args, "--publish", "--bootstrap", "127.0.0.1:9", "--min-per-class", "10000"])
    err = capsys.readouterr().err
    assert code == 2
    assert "not publishing" in err
    assert "at least 10000" in err
    assert main([*args, "--publish"]) == 2
    assert "--publish needs --bootstrap" in capsys.readouterr().err
