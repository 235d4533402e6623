"""The pure scorer: the portable model format, its validation, and equality with the library."""

from __future__ import annotations

import copy
import json
import math
from typing import Any

import numpy as np
import pytest

from pipeline.core import scoring
from pipeline.errors import ModelError
from pipeline.tools import train_metrics, train_models
from pipeline.tools.train_examples import Example

CUTS = [i / 100 for i in range(1, 100)]


def tree_doc() -> dict[str, Any]:
    """One tree: root splits ``a`` at 2.0 (NaN goes right), its left child splits ``b`` at 0."""
    return {
        "format": "pulse-model",
        "version": 1,
        "task": "purchase_7d",
        "features": ["a", "b"],
        "kind": "gbdt",
        "gbdt": {
            "base": 0.5,
            "trees": [
                {
                    "feature": [0, 1, -1, -1, -1],
                    "threshold": [2.0, 0.0, 0.0, 0.0, 0.0],
                    "left": [1, 2, -1, -1, -1],
                    "right": [4, 3, -1, -1, -1],
                    "missing_left": [0, 1, 0, 0, 0],
                    "value": [0.0, 0.0, -1.0, 1.0, 2.0],
                }
            ],
        },
        "percentiles": CUTS,
    }


@pytest.mark.parametrize(
    ("features", "leaf"),
    [
        ({"a": 1.0, "b": -1.0}, -1.0),
        ({"a": 2.0, "b": 0.0}, -1.0),  # equal to the threshold goes left, at both splits
        ({"a": 1.0, "b": 0.5}, 1.0),
        ({"a": 2.5, "b": -9.0}, 2.0),
        ({"b": -1.0}, 2.0),  # a missing: right at the root
        ({"a": None, "b": -1.0}, 2.0),
        ({"a": math.nan, "b": -1.0}, 2.0),
        ({"a": 0.0}, -1.0),  # b missing: left at its split
        ({"a": 0.0, "b": 5.0, "unknown": 1.0}, 1.0),  # names the model does not know: ignored
    ],
)
def test_a_tree_routes_values_and_missing_values(features: dict[str, Any], leaf: float) -> None:
    model = scoring.load_model(tree_doc())
    assert scoring.probability(model, features) == pytest.approx(scoring.sigmoid(0.5 + leaf))


def test_logistic_standardizes_and_a_missing_feature_is_the_training_mean() -> None:
    doc = {
        **{k: v for k, v in tree_doc().items() if k not in ("gbdt", "kind")},
        "kind": "logistic",
        "logistic": {"intercept": -1.0, "coef": [2.0, -0.5], "mean": [1.0, 10.0],
                     "scale": [2.0, 5.0]},
    }  # fmt: skip
    model = scoring.load_model(doc)
    z = -1.0 + 2.0 * (3.0 - 1.0) / 2.0 - 0.5 * (0.0 - 10.0) / 5.0
    assert scoring.probability(model, {"a": 3.0, "b": 0.0}) == pytest.approx(1 / (1 + math.exp(-z)))
    assert scoring.probability(model, {"a": 1.0}) == pytest.approx(1 / (1 + math.exp(1.0)))


def test_the_percentile_counts_cut_points_at_or_below() -> None:
    model = scoring.load_model(tree_doc())
    assert scoring.percentile_of(model, 0.0) == 0
    assert scoring.percentile_of(model, 0.01) == 1
    assert scoring.percentile_of(model, 0.905) == 90
    assert scoring.percentile_of(model, 1.0) == 99
    s = scoring.score(model, {"a": 9.0})
    assert s.probability == pytest.approx(scoring.sigmoid(2.5))
    assert s.percentile == 92  # sigmoid(2.5) = 0.924


def test_sigmoid_does_not_overflow() -> None:
    assert scoring.sigmoid(-1000.0) == 0.0
    assert scoring.sigmoid(1000.0) == 1.0
    assert scoring.sigmoid(0.0) == 0.5


def _broken(path: list[Any], value: Any) -> dict[str, Any]:
    doc = copy.deepcopy(tree_doc())
    target: Any = doc
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return doc


@pytest.mark.parametrize(
    ("doc", "words"),
    [
        (_broken(["format"], "onnx"), "not a pulse-model"),
        (_broken(["version"], 2), "not a pulse-model"),
        (_broken(["task"], ""), "no task"),
        (_broken(["features"], ["a", "a"]), "named twice"),
        (_broken(["kind"], "forest"), "kind must be"),
        (_broken(["percentiles"], CUTS[:-1]), "99 ascending"),
        (_broken(["percentiles"], [*CUTS[:-2], 0.5, 0.4]), "99 ascending"),
        (_broken(["gbdt", "trees", 0, "feature", 0], 2), "splits on feature 2 of 2"),
        (_broken(["gbdt", "trees", 0, "left", 0], 0), "child outside"),  # a cycle
        (_broken(["gbdt", "trees", 0, "value"], [0.0]), "of one length"),
        (_broken(["gbdt", "trees", 0, "threshold", 0], math.inf), "not a finite number"),
        (_broken(["gbdt", "trees", 0, "missing_left"], [True, 0, 0, 0, 0]), "integers"),
        (_broken(["gbdt", "base"], "0.5"), "not a finite number"),
    ],
)
def test_a_broken_model_is_refused_naming_what(doc: dict[str, Any], words: str) -> None:
    with pytest.raises(ModelError, match=words):
        scoring.load_model(doc)


def _examples(n: int, seed: int) -> list[Example]:
    """Random examples where ``c`` is always present in training, ``b`` sometimes missing."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        a, b, c = rng.normal(), rng.exponential(3.0), rng.integers(0, 5)
        logit = 1.5 * a - 0.4 * b + 0.6 * (c == 2) + (0.8 if b > 4 and a > 0 else 0)
        features = {"a": float(a), "c": float(c)}
        if rng.random() < 0.8:
            features["b"] = float(b)
        label = int(rng.random() < 1 / (1 + math.exp(-logit)))
        out.append(Example("t", f"p{i}", i, 1, None, label, features, "test/1"))
    return out


@pytest.mark.parametrize("kind", ["gbdt", "logistic"])
def test_the_scorer_equals_the_library_to_1e_9_on_held_out_examples(kind: str) -> None:
    train, held_out = _examples(3000, seed=1), _examples(600, seed=2)
    # held out: also a feature missing that was never missing in training (LightGBM scores it as 0)
    held_out += [Example("t", "q", 0, 1, None, 0, {"b": 1.0}, "test/1")]
    names = train_models.feature_names(train)
    x, y = train_models.matrix(train, names), train_models.labels(train)
    section, predict = train_models.fit(kind, names, x, y)
    cuts = train_metrics.percentile_cuts(predict(x))
    doc = train_models.document("t", kind, names, section, cuts=cuts, trained={})
    model = scoring.load_model(json.loads(json.dumps(doc)))  # through JSON, as it travels
    library = predict(train_models.matrix(held_out, names))
    ours = np.array([scoring.probability(model, ex.features) for ex in held_out])
    assert np.max(np.abs(ours - library)) < 1e-9
    labels = train_models.labels(held_out)
    assert train_metrics.roc_auc(labels, ours) > 0.75, "a model that learned something"
    if kind == "gbdt":
        assert len(doc["gbdt"]["trees"]) == train_models.LGBM_ROUNDS


def test_lightgbm_zero_as_missing_is_refused_on_export() -> None:
    node = {"split_feature": 0, "threshold": 1.0, "decision_type": "<=", "default_left": True,
            "missing_type": "Zero", "left_child": {"leaf_value": 0.1},
            "right_child": {"leaf_value": 0.2}}  # fmt: skip
    with pytest.raises(ModelError, match="missing type"):
        train_models._flatten(node)
    flat = train_models._flatten({**node, "missing_type": "None", "threshold": -1.0})
    assert flat["missing_left"][0] == 0  # NaN scores as 0, and 0 > -1 goes right
