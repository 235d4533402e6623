"""Score a person with a trained model: portable JSON in, (probability, percentile) out.

``pulse train`` fits a model with an ML library and exports it to the
portable format below; the workers score with this module alone (no numpy, no
ML library, nothing of Pulse but :mod:`pipeline.errors`), so the core can be
compiled with it. The format (``"format": "pulse-model", "version": 1``)::

    {"format": "pulse-model", "version": 1, "task": "purchase_7d",
     "features": ["purchases", "days_since_last_purchase", ...],
     "kind": "gbdt",
     "gbdt": {"base": 0.0, "trees": [
         {"feature": [0, -1, -1], "threshold": [2.5, 0, 0], "left": [1, -1, -1],
          "right": [2, -1, -1], "missing_left": [1, 0, 0], "value": [0, -0.3, 0.4]}]},
     "percentiles": [0.004, 0.006, ...],            # 99 cut points, ascending
     "trained": {...}}                              # provenance, not read here

or ``"kind": "logistic"`` with ``"logistic": {"intercept": b, "coef": [...],
"mean": [...], "scale": [...]}`` (the features are standardized with the
training mean and scale first).

Features are looked up by name in the model's ``features`` list; a feature
the person does not have (absent, ``None`` or NaN) is *missing*, and missing is
handled the way the model was trained: a tree node sends it down its learned
``missing_left`` branch, logistic regression replaces it with the training
mean (a standardized 0). Features the model does not know are ignored.

Trees: node 0 is the root; a node with ``feature == -1`` is a leaf whose
``value`` is added to the raw score; otherwise ``x <= threshold`` goes to
``left``, ``x > threshold`` to ``right``. The probability is the logistic
function of ``base`` plus the sum of the trees' leaves, in tree order.

The percentile is how many of the 99 training-score cut points lie at or
below the probability, 0..99: ``90`` means "scored higher than 90 % of the
people the model was trained on" (the top decile is ``percentile >= 90``).
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import Any

from pipeline.errors import ModelError

FORMAT = "pulse-model"
VERSION = 1
KINDS = ("gbdt", "logistic")
#: cut points stored for the percentile: the 1st..99th percentiles
PERCENTILE_CUTS = 99


@dataclass(frozen=True, slots=True)
class Score:
    """A person's score: ``probability`` in [0, 1] and ``percentile`` 0..99."""

    probability: float
    percentile: int


@dataclass(frozen=True, slots=True)
class Tree:
    """One regression tree as parallel arrays, node 0 the root (see the module doc)."""

    feature: tuple[int, ...]
    threshold: tuple[float, ...]
    left: tuple[int, ...]
    right: tuple[int, ...]
    missing_left: tuple[bool, ...]
    value: tuple[float, ...]

    def leaf_value(self, x: Sequence[float]) -> float:
        node = 0
        feature = self.feature
        while feature[node] >= 0:
            v = x[feature[node]]
            if math.isnan(v):  # the branch the trainer learned for missing values
                node = self.left[node] if self.missing_left[node] else self.right[node]
            elif v <= self.threshold[node]:
                node = self.left[node]
            else:
                node = self.right[node]
        return self.value[node]


@dataclass(frozen=True, slots=True)
class Model:
    """A loaded model: see :func:`load_model`; score with :func:`score`."""

    task: str
    features: tuple[str, ...]
    kind: str
    base: float
    trees: tuple[Tree, ...]
    coef: tuple[float, ...]
    mean: tuple[float, ...]
    scale: tuple[float, ...]
    percentiles: tuple[float, ...]

    def vector(self, features: Mapping[str, float | None]) -> list[float]:
        """The model's feature vector for ``features``: NaN where one is missing."""
        out: list[float] = []
        for name in self.features:
            v = features.get(name)
            out.append(math.nan if v is None else float(v))
        return out

    def raw(self, x: Sequence[float]) -> float:
        """The log-odds for a feature vector (:meth:`vector`)."""
        total = self.base
        if self.kind == "gbdt":
            for tree in self.trees:
                total += tree.leaf_value(x)
            return total
        for i in range(len(x)):
            v = x[i]
            if not math.isnan(v):  # missing: the training mean, a standardized 0, adds 0
                total += self.coef[i] * ((v - self.mean[i]) / self.scale[i])
        return total


def sigmoid(z: float) -> float:
    """The logistic function, without overflow for large ``|z|``."""
    if z >= 0:
        return 1.0 / (1.0 + math.exp(-z))
    e = math.exp(z)
    return e / (1.0 + e)


def probability(model: Model, features: Mapping[str, float | None]) -> float:
    """The model's probability for a person's ``features`` (name -> number)."""
    return sigmoid(model.raw(model.vector(features)))


def percentile_of(model: Model, p: float) -> int:
    """0..99: how many of the model's training cut points are at or below ``p``."""
    return bisect_right(model.percentiles, p)


def score(model: Model, features: Mapping[str, float | None]) -> Score:
    """``Score(probability, percentile)`` of a person's ``features`` under ``model``."""
    p = probability(model, features)
    return Score(p, percentile_of(model, p))


def table_document(kind: str, section: dict[str, Any], trained: dict[str, Any]) -> dict[str, Any]:
    """A table model's document (``recs``, ``send_time``): what :func:`table_body` reads."""
    return {"format": FORMAT, "version": VERSION, "task": kind, "kind": kind, kind: section,
            "trained": trained}  # fmt: skip


def table_body(doc: Mapping[str, Any], kind: str) -> Mapping[str, Any]:
    """The ``kind`` section of a table model (``recs``, ``send_time``): the header checked.

    Raises :class:`~pipeline.errors.ModelError` naming what is wrong.
    """
    if doc.get("format") != FORMAT or doc.get("version") != VERSION:
        raise ModelError(f"not a {FORMAT} version {VERSION} document")
    if doc.get("kind") != kind:
        raise ModelError(f"kind must be {kind!r}, not {doc.get('kind')!r}")
    body = doc.get(kind)
    if not isinstance(body, Mapping):
        raise ModelError(f"{kind}: no {kind!r} section")
    return body


def load_model(doc: Mapping[str, Any]) -> Model:
    """Validate a portable model document (parsed JSON) into a :class:`Model`.

    Raises :class:`~pipeline.errors.ModelError` naming what is wrong: the
    workers refuse a broken model rather than score with it.
    """
    if doc.get("format") != FORMAT or doc.get("version") != VERSION:
        raise ModelError(f"not a {FORMAT} version {VERSION} document")
    task = doc.get("task")
    if not isinstance(task, str) or not task:
        raise ModelError("the model has no task")
    features = tuple(_strings(doc.get("features"), "features"))
    if len(set(features)) != len(features):
        raise ModelError(f"{task}: a feature is named twice")
    kind = doc.get("kind")
    if kind not in KINDS:
        raise ModelError(f"{task}: kind must be one of {', '.join(KINDS)}, not {kind!r}")
    cuts = tuple(_floats(doc.get("percentiles"), "percentiles"))
    if len(cuts) != PERCENTILE_CUTS or any(a > b for a, b in pairwise(cuts)):
        raise ModelError(f"{task}: percentiles must be {PERCENTILE_CUTS} ascending cut points")
    body = doc.get(str(kind))
    if not isinstance(body, Mapping):
        raise ModelError(f"{task}: no {kind!r} section")
    n = len(features)
    if kind == "gbdt":
        trees = tuple(_tree(t, n, f"{task}: tree {i}") for i, t in enumerate(_list(body, "trees")))
        base = _float(body.get("base", 0.0), f"{task}: base")
        return Model(task, features, "gbdt", base, trees, (), (), (), cuts)
    coef = tuple(_floats(body.get("coef"), f"{task}: coef"))
    mean = tuple(_floats(body.get("mean"), f"{task}: mean"))
    scale = tuple(_floats(body.get("scale"), f"{task}: scale"))
    if not len(coef) == len(mean) == len(scale) == n:
        raise ModelError(f"{task}: coef, mean and scale need one number per feature ({n})")
    if any(s <= 0 for s in scale):
        raise ModelError(f"{task}: a scale is not positive")
    intercept = _float(body.get("intercept"), f"{task}: intercept")
    return Model(task, features, "logistic", intercept, (), coef, mean, scale, cuts)


def _tree(obj: Any, n_features: int, where: str) -> Tree:
    if not isinstance(obj, Mapping):
        raise ModelError(f"{where}: not an object")
    feature = tuple(_ints(obj.get("feature"), f"{where}: feature"))
    size = len(feature)
    left = tuple(_ints(obj.get("left"), f"{where}: left"))
    right = tuple(_ints(obj.get("right"), f"{where}: right"))
    threshold = tuple(_floats(obj.get("threshold"), f"{where}: threshold"))
    value = tuple(_floats(obj.get("value"), f"{where}: value"))
    missing = tuple(bool(v) for v in _ints(obj.get("missing_left"), f"{where}: missing_left"))
    if size == 0 or not all(len(a) == size for a in (left, right, threshold, value, missing)):
        raise ModelError(f"{where}: the node arrays must be non-empty and of one length")
    for i in range(size):
        if feature[i] >= n_features or feature[i] < -1:
            raise ModelError(f"{where}: node {i} splits on feature {feature[i]} of {n_features}")
        # children come after their parent: a walk always ends, at a leaf
        if feature[i] >= 0 and not (i < left[i] < size and i < right[i] < size):
            raise ModelError(f"{where}: node {i} has a child outside ({i}, {size})")
    return Tree(feature, threshold, left, right, missing, value)


def _list(body: Mapping[str, Any], key: str) -> list[Any]:
    value = body.get(key)
    if not isinstance(value, list):
        raise ModelError(f"{key} must be a list")
    return value


def _strings(value: Any, what: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise ModelError(f"{what} must be a list of names")
    return [str(v) for v in value]


def _ints(value: Any, what: str) -> list[int]:
    if not isinstance(value, list) or not all(
        isinstance(v, int) and not isinstance(v, bool) for v in value
    ):
        raise ModelError(f"{what} must be a list of integers")
    return [int(v) for v in value]


def _floats(value: Any, what: str) -> list[float]:
    if not isinstance(value, list):
        raise ModelError(f"{what} must be a list of numbers")
    return [_float(v, what) for v in value]


def _float(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ModelError(f"{what}: {value!r} is not a finite number")
    return float(value)
