"""How good a score is: ROC AUC, the top decile's lift and share, calibration by decile.

Pure functions of ``(labels, scores)`` arrays (numpy), written for
``pulse train`` and tested against hand-made tables
(tests/unit/test_train_metrics.py).

* **ROC AUC**: the probability that a random positive scores above a random
  negative, ties counting one half (the Mann-Whitney U statistic over n+ n-).
* **Top decile**: the 10 % highest scores (``ceil(n / 10)`` examples; ties at
  the boundary are broken by order, so a constant score gives lift 1).
  *Lift* is the positive rate there over the positive rate of all;
  *share* is the fraction of all positives that are there.
* **Calibration by decile**: the examples in ten groups by predicted
  probability, highest first, each with its mean prediction and its
  observed positive rate. A calibrated model has the two close in each.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

Array = NDArray[np.float64]


def roc_auc(labels: NDArray[Any], scores: NDArray[Any]) -> float:
    """ROC AUC of ``scores`` for binary ``labels`` (NaN when one class is absent)."""
    y = np.asarray(labels, dtype=bool)
    pos, neg = int(y.sum()), int((~y).sum())
    if pos == 0 or neg == 0:
        return math.nan
    order = np.argsort(scores, kind="mergesort")
    s = np.asarray(scores, dtype=np.float64)[order]
    ranks = np.empty(len(s), dtype=np.float64)
    # average ranks (1-based) over runs of equal scores
    boundaries = np.flatnonzero(np.diff(s)) + 1
    starts = np.concatenate(([0], boundaries))
    ends = np.concatenate((boundaries, [len(s)]))
    for a, b in zip(starts, ends, strict=True):
        ranks[a:b] = (a + 1 + b) / 2.0
    rank_pos = ranks[y[order]].sum()
    return float((rank_pos - pos * (pos + 1) / 2.0) / (pos * neg))


def hanley_mcneil_se(auc: float, pos: int, neg: int) -> float:
    """The standard error of an AUC estimate from ``pos`` and ``neg`` examples (Hanley-McNeil)."""
    q1, q2 = auc / (2 - auc), 2 * auc * auc / (1 + auc)
    var = (auc * (1 - auc) + (pos - 1) * (q1 - auc**2) + (neg - 1) * (q2 - auc**2)) / (pos * neg)
    return math.sqrt(max(var, 0.0))


@dataclass(frozen=True)
class TopDecile:
    """The top 10 % by score: its size, positive rate, lift and share of all positives."""

    size: int
    rate: float
    lift: float
    share: float


def top_decile(labels: NDArray[Any], scores: NDArray[Any]) -> TopDecile:
    y = np.asarray(labels, dtype=np.float64)
    n = len(y)
    if n == 0 or y.sum() == 0:
        return TopDecile(0, math.nan, math.nan, math.nan)
    k = math.ceil(n / 10)
    top = np.argsort(-np.asarray(scores, dtype=np.float64), kind="mergesort")[:k]
    rate = float(y[top].mean())
    return TopDecile(k, rate, rate / float(y.mean()), float(y[top].sum() / y.sum()))


@dataclass(frozen=True)
class Bin:
    """One calibration decile: count, mean predicted probability, observed rate."""

    count: int
    predicted: float
    observed: float


def calibration(labels: NDArray[Any], probs: NDArray[Any], groups: int = 10) -> list[Bin]:
    """Examples in ``groups`` groups of (nearly) equal size by probability, highest first."""
    y = np.asarray(labels, dtype=np.float64)
    p = np.asarray(probs, dtype=np.float64)
    order = np.argsort(-p, kind="mergesort")
    return [
        Bin(len(part), float(p[part].mean()), float(y[part].mean()))
        for part in np.array_split(order, groups)
        if len(part)
    ]


def percentile_cuts(scores: NDArray[Any], cuts: int = 99) -> list[float]:
    """The 1st..99th percentiles of ``scores`` (a model's percentile table), ascending."""
    q = np.percentile(np.asarray(scores, dtype=np.float64), np.arange(1, cuts + 1))
    return [float(v) for v in np.maximum.accumulate(q)]


@dataclass(frozen=True)
class Evaluation:
    """A score's figures on one set of examples."""

    auc: float
    auc_se: float
    top: TopDecile
    bins: list[Bin]

    def to_json(self) -> dict[str, Any]:
        return {
            "auc": _r(self.auc),
            "auc_se": _r(self.auc_se),
            "top_decile": {
                "size": self.top.size,
                "positive_rate": _r(self.top.rate),
                "lift": _r(self.top.lift),
                "share_of_positives": _r(self.top.share),
            },
            "calibration": [
                {"count": b.count, "predicted": _r(b.predicted), "observed": _r(b.observed)}
                for b in self.bins
            ],
        }


def _r(x: float) -> float | None:
    return None if math.isnan(x) else round(x, 4)


def evaluate(labels: NDArray[Any], scores: NDArray[Any], *, probabilities: bool) -> Evaluation:
    """AUC (with its standard error), top decile and, for probabilities, calibration."""
    y = np.asarray(labels, dtype=bool)
    auc = roc_auc(y, scores)
    pos, neg = int(y.sum()), int((~y).sum())
    se = hanley_mcneil_se(auc, pos, neg) if pos and neg else math.nan
    bins = calibration(y, scores) if probabilities else []
    return Evaluation(auc, se, top_decile(y, scores), bins)
