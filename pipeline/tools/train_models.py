"""Fit a model on examples and export it to the portable format of :mod:`pipeline.core.scoring`.

Two kinds:

* ``gbdt`` (the default): LightGBM gradient-boosted trees, the binary log-loss
  objective, :data:`LGBM_PARAMS`; exported tree by tree from
  ``Booster.dump_model()`` (LightGBM's documented JSON), each tree flattened
  in pre-order. Missing values: LightGBM learns a default branch for NaN at a
  split on a feature that had NaN in training (``missing_type: NaN``); on a
  feature that had none, it scores NaN as 0 (``missing_type: None``), which
  the export turns into the branch 0 takes. Trees that treat zero as missing
  are refused (Pulse never asks for them).
* ``logistic``: L2-regularized logistic regression on standardized features
  (missing = the training mean), fitted by Newton's method with numpy alone:
  the light alternative when LightGBM cannot be installed.

The feature list is the sorted union of the names in the training examples;
a feature an example lacks is NaN in its row (:func:`matrix`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from pipeline.core.scoring import FORMAT, VERSION
from pipeline.errors import ModelError
from pipeline.tools.train_examples import Example

#: LightGBM's settings (measured on CDNOW in docs/predictions.md): small leaves,
#: a slow rate, one thread and a seed so that the same examples give the same model.
LGBM_PARAMS: dict[str, Any] = {
    "objective": "binary",
    "learning_rate": 0.05,
    "num_leaves": 15,
    "min_data_in_leaf": 100,
    "lambda_l2": 1.0,
    "feature_pre_filter": False,
    "deterministic": True,
    "num_threads": 1,
    "seed": 7,
    "verbose": -1,
}
LGBM_ROUNDS = 200
LOGISTIC_L2 = 1.0


def feature_names(examples: Sequence[Example]) -> list[str]:
    return sorted({name for x in examples for name in x.features})


def matrix(examples: Sequence[Example], names: Sequence[str]) -> NDArray[np.float64]:
    """Rows of ``names``' values, NaN where an example lacks the feature."""
    out = np.full((len(examples), len(names)), np.nan)
    index = {n: i for i, n in enumerate(names)}
    for row, x in enumerate(examples):
        for name, value in x.features.items():
            col = index.get(name)
            if col is not None:
                out[row, col] = value
    return out


def labels(examples: Sequence[Example]) -> NDArray[np.float64]:
    return np.array([x.label for x in examples], dtype=np.float64)


def fit_lightgbm(x: NDArray[np.float64], y: NDArray[np.float64]) -> Any:
    """A LightGBM ``Booster`` (its ``predict`` gives probabilities)."""
    import lightgbm

    data = lightgbm.Dataset(x, label=y, free_raw_data=False)
    return lightgbm.train(LGBM_PARAMS, data, num_boost_round=LGBM_ROUNDS)


def _flatten(root: dict[str, Any]) -> dict[str, list[Any]]:
    arrays: dict[str, list[Any]] = {
        k: [] for k in ("feature", "threshold", "left", "right", "missing_left", "value")
    }

    def visit(node: dict[str, Any]) -> int:
        i = len(arrays["feature"])
        for values in arrays.values():
            values.append(0)
        if "leaf_value" in node:
            arrays["feature"][i] = -1
            arrays["value"][i] = float(node["leaf_value"])
            arrays["threshold"][i] = 0.0
            return i
        if node.get("decision_type") != "<=":
            raise ModelError(f"a split of type {node.get('decision_type')!r} (only '<=')")
        threshold = float(node["threshold"])
        missing = node.get("missing_type")
        if missing == "NaN":
            missing_left = bool(node["default_left"])
        elif missing == "None":
            missing_left = threshold >= 0.0  # LightGBM scores NaN as 0 here
        else:
            raise ModelError(f"a split with missing type {missing!r} cannot be exported")
        arrays["feature"][i] = int(node["split_feature"])
        arrays["threshold"][i] = threshold
        arrays["missing_left"][i] = int(missing_left)
        arrays["left"][i] = visit(node["left_child"])
        arrays["right"][i] = visit(node["right_child"])
        return i

    visit(root)
    return arrays


def export_lightgbm(booster: Any) -> dict[str, Any]:
    """The ``gbdt`` section of a portable model from a binary LightGBM ``Booster``."""
    dump = booster.dump_model()
    if dump.get("objective", "").split()[0] != "binary" or dump.get("num_class") != 1:
        raise ModelError("only a binary LightGBM model can be exported")
    trees = [_flatten(t["tree_structure"]) for t in dump["tree_info"]]
    return {"base": 0.0, "trees": trees}


def fit_logistic(x: NDArray[np.float64], y: NDArray[np.float64]) -> dict[str, Any]:
    """The ``logistic`` section: Newton's method on the L2-penalized log-loss."""
    mean = np.nanmean(x, axis=0) if len(x) else np.zeros(x.shape[1])
    mean = np.where(np.isnan(mean), 0.0, mean)
    z = np.where(np.isnan(x), mean, x)
    scale = z.std(axis=0)
    scale = np.where(scale > 0, scale, 1.0)
    z = np.column_stack([np.ones(len(z)), (z - mean) / scale])
    w = np.zeros(z.shape[1])
    penalty = np.full(z.shape[1], LOGISTIC_L2)
    penalty[0] = 0.0  # the intercept is not shrunk
    for _ in range(100):
        p = 1.0 / (1.0 + np.exp(-(z @ w)))
        grad = z.T @ (p - y) + penalty * w
        hess = (z * (p * (1 - p))[:, None]).T @ z + np.diag(penalty)
        step = np.linalg.solve(hess, grad)
        w -= step
        if float(np.max(np.abs(step))) < 1e-10:
            break
    return {
        "intercept": float(w[0]),
        "coef": [float(v) for v in w[1:]],
        "mean": [float(v) for v in mean],
        "scale": [float(v) for v in scale],
    }


def predict_logistic(section: dict[str, Any], x: NDArray[np.float64]) -> NDArray[np.float64]:
    """Vectorized probabilities of a ``logistic`` section (what the trainer evaluates)."""
    mean, scale = np.array(section["mean"]), np.array(section["scale"])
    z = (np.where(np.isnan(x), mean, x) - mean) / scale
    raw = section["intercept"] + z @ np.array(section["coef"])
    return np.asarray(1.0 / (1.0 + np.exp(-raw)), dtype=np.float64)


def fit(kind: str, names: Sequence[str], x: NDArray[np.float64], y: NDArray[np.float64]) -> Any:
    """``(section, predict)``: the exported section and a function of a matrix to probabilities."""
    if kind == "gbdt":
        booster = fit_lightgbm(x, y)
        return export_lightgbm(booster), booster.predict
    if kind == "logistic":
        section = fit_logistic(x, y)
        return section, lambda m: predict_logistic(section, m)
    raise ModelError(f"unknown model kind {kind!r} (gbdt or logistic)")


def document(
    task: str, kind: str, names: Sequence[str], section: dict[str, Any], *,
    cuts: Sequence[float], trained: dict[str, Any],
) -> dict[str, Any]:  # fmt: skip
    """The portable model document (:mod:`pipeline.core.scoring`)."""
    if any(not math.isfinite(c) for c in cuts):
        raise ModelError("the training scores' percentiles are not finite")
    return {
        "format": FORMAT,
        "version": VERSION,
        "task": task,
        "features": list(names),
        "kind": kind,
        kind: section,
        "percentiles": list(cuts),
        "trained": trained,
    }
