"""``pulse train --task T``: fit a model on training examples, evaluate it, save and publish it.

1. **Split by time.** Examples are sorted by ``scored_at_ms``; the cut is
   the scoring time below which ``1 - test_share`` of them fall (or
   ``--cut``). The model trains on the examples whose label was settled
   before the cut (``scored_at_ms + horizon_ms <= cut``: nothing after the
   cut leaks into training) and is tested on those scored at or after it.
   Examples scored before the cut whose horizon crosses it are in neither.
   Before the split, examples whose horizon ends after the last decision in
   the input (the *end*: the latest outcome or deadline of any example) are
   set aside. Near the end of a stream only the early-decided labels exist
   (an order within 7 days is known at once, its absence only at the
   deadline; the stream censors what the end cut short), so keeping them
   would fill the test set with one class.
2. **Fit** (:mod:`pipeline.tools.train_models`): LightGBM trees by default.
3. **Evaluate** the model and the baselines (:mod:`pipeline.tools.train_baselines`)
   on the test examples (:mod:`pipeline.tools.train_metrics`).
4. **Save** the portable model (:mod:`pipeline.core.scoring`) and the report.
5. **Publish** (``--publish``) the model to the compacted ``pulse.models``
   topic, key = task, value = the model's JSON, only with at least
   :data:`MIN_PER_CLASS` positive and negative examples in both the training
   and the test set (see docs/predictions.md for why 100).
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import numpy as np

from pipeline.config import Settings
from pipeline.core.scoring import load_model
from pipeline.errors import BrokerUnavailable, ModelError
from pipeline.tools import train_baselines as base
from pipeline.tools import train_metrics as metrics
from pipeline.tools import train_models as models
from pipeline.tools.train_examples import TASKS, Example

#: Least examples of each class, in training and in test, to publish a model.
MIN_PER_CLASS = 100
MODELS = "models"  # the compacted topic: key = task, value = the newest model


@dataclass(frozen=True)
class Split:
    """A time-based split of examples at ``cut_ms``."""

    cut_ms: int
    train: list[Example]
    test: list[Example]
    unsettled: int  # scored before the cut, label after it: in neither set
    end_ms: int = 0  # the last decision in the input
    beyond_end: int = 0  # horizon ends after end_ms: set aside before the split


def decided_at(x: Example) -> int:
    """When the stream decided ``x``'s label: its outcome, or else its deadline."""
    return x.outcome_at_ms if x.outcome_at_ms is not None else x.scored_at_ms + x.horizon_ms


def split_by_time(
    examples: Sequence[Example], *, test_share: float = 0.25, cut_ms: int | None = None
) -> Split:
    """Train on labels settled before the cut, test on examples scored from it (module doc)."""
    if not examples:
        raise ModelError("no training examples")
    end_ms = max(decided_at(x) for x in examples)
    everything = len(examples)
    examples = [x for x in examples if x.scored_at_ms + x.horizon_ms <= end_ms]
    if not examples:
        raise ModelError("no training example's horizon ends within the input")
    if cut_ms is None:
        if not 0.0 < test_share < 1.0:
            raise ModelError("the test share must be between 0 and 1")
        times = sorted(x.scored_at_ms for x in examples)
        cut_ms = times[min(len(times) - 1, math.floor(len(times) * (1.0 - test_share)))]
    train = [x for x in examples if x.scored_at_ms + x.horizon_ms <= cut_ms]
    test = [x for x in examples if x.scored_at_ms >= cut_ms]
    unsettled = len(examples) - len(train) - len(test)
    return Split(cut_ms, train, test, unsettled, end_ms, everything - len(examples))


def class_counts(examples: Sequence[Example]) -> dict[str, int]:
    pos = sum(x.label for x in examples)
    return {"examples": len(examples), "positive": pos, "negative": len(examples) - pos}


def publish_problem(report: dict[str, Any], min_per_class: int = MIN_PER_CLASS) -> str | None:
    """Why a model may not be published (too few examples of a class), or None."""
    short = [
        f"{n} {cls} {part} example(s)"
        for part in ("train", "test")
        for cls in ("positive", "negative")
        if (n := report["split"][part][cls]) < min_per_class
    ]
    if not short:
        return None
    return (
        f"{report['task']}: not publishing: {', '.join(short)}; at least {min_per_class} of each "
        "class in training and in test are needed (--min-per-class)"
    )


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).isoformat().replace("+00:00", "Z")


def _version(package: str) -> str:
    try:
        return version(package)
    except PackageNotFoundError:
        return "absent"


def _baselines(
    task: str,
    examples: Sequence[Example],
    split: Split,
    y_test: np.ndarray[Any, Any],
    model_scores: np.ndarray[Any, Any] | None = None,
) -> dict[str, Any]:
    """The baselines' evaluations on the test examples.

    BG/NBD is fitted on every example scored before the cut, settled or not:
    its features are known then, and it reads no label.
    """
    spec = TASKS.get(task)
    out: dict[str, Any] = {}
    if spec is None:
        return {"note": f"no baselines for a task Pulse does not define ({task})"}
    if base.has_rf_features(split.test):
        scores = base.rf_heuristic(split.test, spec.outcome)
        out["rf_heuristic"] = metrics.evaluate(y_test, scores, probabilities=False).to_json()
    else:
        out["rf_heuristic"] = {"missing_features": [*base.RF_FEATURES, base.FIRST_SEEN]}
    # BG/NBD describes buyers (time counts from the first purchase): fitted on the buyers
    # scored before the cut, evaluated on the buyers among the test examples, and with the
    # model's AUC on the same buyers beside it when some test examples are never-buyers
    before = [x for x in examples if x.scored_at_ms < split.cut_ms]
    buyers = [x for x in before if base.has_features([x], base.BGNBD_FEATURES)]
    at = [i for i, x in enumerate(split.test) if base.has_features([x], base.BGNBD_FEATURES)]
    y_buyers = y_test[at]
    if not buyers or len(set(y_buyers.tolist())) < 2:
        out["bgnbd"] = {"missing_features": list(base.BGNBD_FEATURES)}
        return out
    tested = [split.test[i] for i in at]
    fitted = base.bgnbd_for(buyers, split.cut_ms)
    params = {k: round(v, 6) for k, v in vars(fitted).items()}
    suffix = "" if len(at) == len(split.test) else "_buyers"
    for name, scores in base.bgnbd_scores(fitted, tested, spec.outcome).items():
        out[name + suffix] = metrics.evaluate(y_buyers, scores, probabilities=False).to_json()
        out[name + suffix]["params_days"] = params
    if suffix and model_scores is not None:
        on_buyers = metrics.evaluate(y_buyers, model_scores[at], probabilities=True)
        out["model" + suffix] = on_buyers.to_json()
    return out


def train(
    examples: Sequence[Example],
    task: str,
    *,
    kind: str = "gbdt",
    test_share: float = 0.25,
    cut_ms: int | None = None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(model, report)``: the portable model document and the evaluation (JSON-able)."""
    examples = [x for x in examples if x.task == task]
    split = split_by_time(examples, test_share=test_share, cut_ms=cut_ms)
    counts = {"train": class_counts(split.train), "test": class_counts(split.test)}
    if min(counts["train"]["positive"], counts["train"]["negative"]) == 0:
        raise ModelError(
            f"{task}: cannot train: the training set (labels settled before {_iso(split.cut_ms)}) "
            f"has {counts['train']['positive']} positive and {counts['train']['negative']} "
            "negative examples; both classes are needed"
        )
    names = models.feature_names(split.train)
    x_train, y_train = models.matrix(split.train, names), models.labels(split.train)
    started = time.perf_counter()
    section, predict = models.fit(kind, names, x_train, y_train)
    fit_s = time.perf_counter() - started
    cuts = metrics.percentile_cuts(predict(x_train))
    report: dict[str, Any] = {
        "task": task,
        "kind": kind,
        "library": "lightgbm " + _version("lightgbm") if kind == "gbdt" else "numpy (Newton)",
        "features": names,
        "features_version": sorted({x.features_version for x in split.train}),
        "split": {
            "cut_ms": split.cut_ms,
            "cut": _iso(split.cut_ms),
            "rule": "train: scored_at + horizon <= cut; test: scored_at >= cut",
            "unsettled_at_cut": split.unsettled,
            "end": _iso(split.end_ms),
            "beyond_end": split.beyond_end,
            **counts,
        },
        "fit_seconds": round(fit_s, 3),
    }
    if split.test:
        y_test = models.labels(split.test)
        probs = predict(models.matrix(split.test, names))
        report["model"] = metrics.evaluate(y_test, probs, probabilities=True).to_json()
        report["baselines"] = _baselines(task, examples, split, y_test, np.asarray(probs))
    trained = {k: report[k] for k in ("library", "features_version", "split", "fit_seconds")}
    trained["test_auc"] = report.get("model", {}).get("auc")
    doc = models.document(task, kind, names, section, cuts=cuts, trained=trained)
    load_model(doc)  # what a worker will do: never save a model the scorer refuses
    return doc, report


def _fmt(x: float | None, digits: int = 3) -> str:
    return "n/a" if x is None else f"{x:.{digits}f}"


def format_report(report: dict[str, Any]) -> str:
    """The evaluation as text, for the terminal."""
    s = report["split"]
    lines = [
        f"task {report['task']}: {report['kind']} ({report['library']}), "
        f"{len(report['features'])} features, fit in {report['fit_seconds']:.2f} s",
        f"split at {s['cut']}: train {s['train']['examples']} "
        f"({s['train']['positive']} positive), test {s['test']['examples']} "
        f"({s['test']['positive']} positive), {s['unsettled_at_cut']} unsettled at the cut, "
        f"{s['beyond_end']} with a horizon past the input's end ({s['end']}) set aside",
    ]
    if "model" not in report:
        return "\n".join([*lines, "no test examples: nothing evaluated"])
    lines.append(f"{'score':<22} {'AUC':>12} {'top-10% lift':>13} {'share of pos':>13}")
    rows = [("model", report["model"])] + [
        (name, ev) for name, ev in report.get("baselines", {}).items() if isinstance(ev, dict)
    ]
    for name, ev in rows:
        if "auc" not in ev:
            lines.append(f"{name:<22} n/a (no {', '.join(ev.get('missing_features', []))})")
            continue
        top = ev["top_decile"]
        auc = f"{_fmt(ev['auc'])} ±{_fmt(ev['auc_se'])}"
        lines.append(
            f"{name:<22} {auc:>12} {_fmt(top['lift'], 2):>13} {_fmt(top['share_of_positives']):>13}"
        )
    lines.append("calibration by decile (highest first): predicted / observed")
    lines.append(
        "  "
        + "  ".join(
            f"{_fmt(b['predicted'])}/{_fmt(b['observed'])}" for b in report["model"]["calibration"]
        )
    )
    return "\n".join(lines)


def publish(settings: Settings, model: dict[str, Any], *, producer: Any = None) -> str:
    """Send ``model`` to the compacted ``pulse.models`` topic (key = task); returns the topic."""
    from pipeline.contract.produce import kafka_producer_config
    from pipeline.contract.topics import ensure_compacted_topic

    topic = settings.topic(MODELS)
    if producer is None:
        from confluent_kafka import Producer

        ensure_compacted_topic(settings, topic, partitions=1)
        producer = Producer(kafka_producer_config(settings))
    failed: list[str] = []

    def delivered(err: Any, _msg: Any) -> None:
        if err is not None:
            failed.append(str(err))

    value = json.dumps(model, sort_keys=True, separators=(",", ":")).encode()
    producer.produce(topic, key=model["task"].encode(), value=value, on_delivery=delivered)
    if producer.flush(30) or failed:
        raise BrokerUnavailable(f"the model was not delivered to {topic}: {failed or 'timeout'}")
    return topic
