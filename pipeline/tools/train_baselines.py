"""The baselines a trained model must beat: a recency/frequency heuristic and BG/NBD.

Both read a few features by name, the *baseline features* (a model itself
learns any names; a baseline whose features are absent is reported as not
available):

* ``purchases``: orders so far; ``purchase_days``: distinct days with an
  order (BG/NBD's repeat count is ``purchase_days - 1``; ``purchases`` is
  used when it is absent);
* ``days_since_first_purchase`` and ``days_since_last_purchase`` at the
  scoring time, in days.

**Recency/frequency heuristic**: ``log(1 + purchases) - log(1 + days since the
last purchase)``: more orders and a more recent one rank a person higher for
``purchase``, lower for ``churn``. It has nothing to fit. A person who never
bought (the stream leaves ``days_since_last_purchase`` out) counts from when
they were first seen (``days_since_first_seen``), with 0 purchases.

**BG/NBD** (Fader, Hardie and Lee, "Counting your customers the easy way",
Marketing Science 2005): while alive, a person buys at a Poisson rate drawn
from Gamma(r, alpha); after each purchase they drop out with a probability
drawn from Beta(a, b). Fitted by maximum likelihood on each person's
``(x, t_x, T)`` as of the split's cut (repeat purchases, time of the last one
since the first, time since the first), taken from the person's latest
example scored before the cut, with ``T`` extended to the cut. It scores
``P(alive | x, t_x, T) = 1 / (1 + [x > 0] a / (b + x - 1) ((alpha + T) / (alpha + t_x))^(r + x))``
at each example's scoring time: ``1 - P(alive)`` for ``churn``, ``P(alive)``
for ``purchase`` (``bgnbd_alive``), and the expected number of purchases
within the task's horizon ``h`` (the paper's equation 10, ``bgnbd_expected``;
its negative for ``churn``). ``P(alive)`` is 1 for anyone who never bought
twice however long ago, so it ranks badly wherever one-time buyers are
scored long after their purchase; the expectation has no such blind spot.
Written here from the paper's formulas (scipy's optimizer and 2F1).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from pipeline.tools.train_examples import Example

DAY_MS = 86_400_000
RF_FEATURES = ("purchases", "days_since_last_purchase")
#: A never-buyer's recency for the heuristic: since first seen.
FIRST_SEEN = "days_since_first_seen"
BGNBD_FEATURES = ("days_since_first_purchase", "days_since_last_purchase")


def has_features(examples: Sequence[Example], names: Sequence[str]) -> bool:
    """Whether every example has every feature of ``names``."""
    return bool(examples) and all(all(n in x.features for n in names) for x in examples)


def has_rf_features(examples: Sequence[Example]) -> bool:
    """Whether the heuristic can score every example (a never-buyer by its first-seen age)."""
    return bool(examples) and all(_recency(x) is not None for x in examples)


def _recency(x: Example) -> float | None:
    f = x.features
    last = f.get("days_since_last_purchase")
    return last if last is not None else f.get(FIRST_SEEN)


def rf_heuristic(examples: Sequence[Example], outcome: str) -> NDArray[np.float64]:
    """The recency/frequency score of each example (higher = more likely the outcome)."""
    h = np.array(
        [
            math.log1p(x.features.get("purchases", 0.0)) - math.log1p(_recency(x) or 0.0)
            for x in examples
        ]
    )
    return -h if outcome == "churn" else h


def _repeats(x: Example) -> float:
    f = x.features
    return max(f.get("purchase_days", f.get("purchases", 1.0)) - 1.0, 0.0)


def rfm_triple(x: Example, at_ms: int | None = None) -> tuple[float, float, float]:
    """``(x, t_x, T)`` in days for an example, with ``T`` extended to ``at_ms`` if given."""
    age = x.features["days_since_first_purchase"]
    t_x = age - x.features["days_since_last_purchase"]
    if at_ms is not None:
        age += (at_ms - x.scored_at_ms) / DAY_MS
    return _repeats(x), max(t_x, 0.0), max(age, 0.0)


@dataclass(frozen=True)
class BgNbd:
    """Fitted BG/NBD parameters (time in days)."""

    r: float
    alpha: float
    a: float
    b: float

    def p_alive(
        self, x: NDArray[np.float64], t_x: NDArray[np.float64], age: NDArray[np.float64]
    ) -> NDArray[np.float64]:
        """P(alive) for arrays of ``(x, t_x, T)``."""
        xs = np.maximum(x, 1.0)  # the term is zero for x == 0 anyway
        log_term = (
            math.log(self.a)
            - np.log(self.b + xs - 1.0)
            + (self.r + x) * (np.log(self.alpha + age) - np.log(self.alpha + t_x))
        )
        term = np.where(x > 0, np.exp(np.minimum(log_term, 700.0)), 0.0)
        return np.asarray(1.0 / (1.0 + term), dtype=np.float64)

    def expected(
        self,
        horizon_days: float,
        x: NDArray[np.float64],
        t_x: NDArray[np.float64],
        age: NDArray[np.float64],
    ) -> NDArray[np.float64]:
        """E[purchases in (T, T + horizon] | x, t_x, T] (Fader, Hardie and Lee, equation 10)."""
        from scipy.special import hyp2f1

        r, alpha, a, b, t = self.r, self.alpha, self.a, self.b, horizon_days
        hyp = hyp2f1(r + x, b + x, a + b + x - 1, t / (alpha + age + t))
        bought = (
            (a + b + x - 1) / (a - 1) * (1 - ((alpha + age) / (alpha + age + t)) ** (r + x) * hyp)
        )
        alive = self.p_alive(x, t_x, age)
        return np.asarray(bought * alive, dtype=np.float64)


def bgnbd_log_likelihood(
    params: NDArray[np.float64],
    x: NDArray[np.float64],
    t_x: NDArray[np.float64],
    age: NDArray[np.float64],
) -> float:
    """The BG/NBD log-likelihood of ``(r, alpha, a, b)`` (not their logs) over all persons."""
    from scipy.special import betaln, gammaln

    r, alpha, a, b = params
    ab = betaln(a, b)
    head = gammaln(r + x) - gammaln(r) + r * math.log(alpha)
    one = betaln(a, b + x) - ab - (r + x) * np.log(alpha + age)
    two = np.where(
        x > 0,
        betaln(a + 1, np.maximum(b + x - 1, 1e-12)) - ab - (r + x) * np.log(alpha + t_x),
        -np.inf,
    )
    return float(np.sum(head + np.logaddexp(one, two)))


def fit_bgnbd(x: NDArray[np.float64], t_x: NDArray[np.float64], age: NDArray[np.float64]) -> BgNbd:
    """Maximum-likelihood BG/NBD over per-person ``(x, t_x, T)`` (days)."""
    from scipy.optimize import minimize

    def loss(log_params: NDArray[np.float64]) -> float:
        return -bgnbd_log_likelihood(np.exp(log_params), x, t_x, age) / len(x)

    start = np.array([0.0, math.log(max(float(np.mean(age)), 1.0)), 0.0, 0.0])
    done = minimize(loss, start, method="Nelder-Mead", options={"maxiter": 4000, "xatol": 1e-6})
    r, alpha, a, b = (float(v) for v in np.exp(done.x))
    return BgNbd(r, alpha, a, b)


def bgnbd_for(train_like: Sequence[Example], cut_ms: int) -> BgNbd:
    """BG/NBD fitted on each person's latest example scored before ``cut_ms``, ``T`` to the cut."""
    latest: dict[str, Example] = {}
    for ex in train_like:
        if ex.scored_at_ms < cut_ms:
            seen = latest.get(ex.person)
            if seen is None or ex.scored_at_ms >= seen.scored_at_ms:
                latest[ex.person] = ex
    triples = np.array([rfm_triple(ex, cut_ms) for ex in latest.values()], dtype=np.float64)
    return fit_bgnbd(triples[:, 0], triples[:, 1], triples[:, 2])


def bgnbd_scores(
    model: BgNbd, examples: Sequence[Example], outcome: str
) -> dict[str, NDArray[np.float64]]:
    """``bgnbd_alive`` and ``bgnbd_expected`` scores (module doc) at each example's time."""
    triples = np.array([rfm_triple(ex) for ex in examples], dtype=np.float64)
    x, t_x, age = triples[:, 0], triples[:, 1], triples[:, 2]
    alive = model.p_alive(x, t_x, age)
    horizon = np.array([ex.horizon_ms for ex in examples], dtype=np.float64) / DAY_MS
    expected = np.empty(len(examples))
    for h in np.unique(horizon):  # one horizon per task, unless it was changed over time
        at = horizon == h
        expected[at] = model.expected(float(h), x[at], t_x[at], age[at])
    if outcome == "churn":
        return {"bgnbd_alive": 1.0 - alive, "bgnbd_expected": -expected}
    return {"bgnbd_alive": alive, "bgnbd_expected": expected}
