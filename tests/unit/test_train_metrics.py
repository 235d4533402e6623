"""AUC, top decile, calibration and the baselines, on tables worked out by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from pipeline.tools import train_baselines as base
from pipeline.tools import train_metrics as m
from pipeline.tools.train_examples import Example


@pytest.mark.parametrize(
    ("labels", "scores", "auc"),
    [
        ([0, 0, 1, 1], [0.1, 0.2, 0.3, 0.4], 1.0),
        ([1, 1, 0, 0], [0.1, 0.2, 0.3, 0.4], 0.0),
        ([0, 1, 0, 1], [0.1, 0.2, 0.3, 0.4], 0.75),  # pairs (+,-): (.2,.1) (.4,.1) (.4,.3) won
        ([0, 1], [0.5, 0.5], 0.5),  # a tie counts one half
        ([0, 0, 1, 1, 1], [1, 2, 2, 3, 3], (1 + 0.5 + 1 + 1 + 1 + 1) / 6),
    ],
)
def test_roc_auc(labels: list[int], scores: list[float], auc: float) -> None:
    assert m.roc_auc(np.array(labels), np.array(scores)) == pytest.approx(auc)


def test_auc_is_nan_with_one_class_and_matches_pairs_on_random_data() -> None:
    assert math.isnan(m.roc_auc(np.array([1, 1]), np.array([0.1, 0.2])))
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 300)
    s = np.round(rng.normal(size=300) + y, 1)  # rounded: many ties
    pos, neg = s[y == 1], s[y == 0]
    pairs = (pos[:, None] > neg[None, :]).mean() + 0.5 * (pos[:, None] == neg[None, :]).mean()
    assert m.roc_auc(y, s) == pytest.approx(pairs)


def test_top_decile_lift_and_share() -> None:
    # 20 examples, 4 positives; the top 2 by score hold 2 of them
    y = np.array([1, 1] + [0] * 16 + [1, 1])
    s = np.array([0.9, 0.8] + [0.5] * 16 + [0.1, 0.1])
    top = m.top_decile(y, s)
    assert (top.size, top.rate, top.share) == (2, 1.0, 0.5)
    assert top.lift == pytest.approx(1.0 / 0.2)
    flat = m.top_decile(y, np.zeros(20))  # a constant score: no lift beyond chance order
    assert flat.size == 2


def test_calibration_groups_by_probability_highest_first() -> None:
    p = np.linspace(0.0, 0.99, 100)
    y = (np.arange(100) >= 50).astype(int)
    bins = m.calibration(y, p)
    assert len(bins) == 10
    assert all(b.count == 10 for b in bins)
    assert bins[0].predicted > bins[-1].predicted
    assert (bins[0].observed, bins[-1].observed) == (1.0, 0.0)


def test_percentile_cuts_are_99_ascending_points() -> None:
    cuts = m.percentile_cuts(np.arange(1, 1001, dtype=float))
    assert len(cuts) == 99
    assert cuts == sorted(cuts)
    assert cuts[49] == pytest.approx(500.5)


def _ex(features: dict[str, float], at: int = 0, person: str = "p") -> Example:
    return Example("churn_30d", person, at, 1, None, 0, features, "t/1")


def test_rf_heuristic_ranks_frequent_recent_buyers_up_for_purchase_down_for_churn() -> None:
    xs = [
        _ex({"purchases": 5, "days_since_last_purchase": 1}),
        _ex({"purchases": 1, "days_since_last_purchase": 90}),
    ]
    up = base.rf_heuristic(xs, "purchase")
    assert up[0] > up[1]
    assert list(base.rf_heuristic(xs, "churn")) == list(-up)
    assert not base.has_features([*xs, _ex({"purchases": 1})], base.RF_FEATURES)


def test_bgnbd_p_alive_follows_the_formula() -> None:
    fit = base.BgNbd(r=0.25, alpha=4.0, a=0.8, b=2.4)
    x, t_x, age = np.array([0.0, 2.0, 2.0]), np.array([0.0, 10.0, 30.0]), np.array([30.0] * 3)
    alive = fit.p_alive(x, t_x, age)
    assert alive[0] == 1.0  # never bought again: never seen to drop out
    expected = 1 / (1 + 0.8 / (2.4 + 1) * ((4 + 30) / (4 + 10)) ** 2.25)
    assert alive[1] == pytest.approx(expected)
    assert alive[2] > alive[1]  # a recent purchase: more likely alive
    # the expectation (checked against lifetimes' BetaGeoFitter once, figures copied here)
    fit = base.BgNbd(r=0.25, alpha=30.0, a=0.6, b=2.4)
    x, t_x, age = (
        np.array([0.0, 1, 3, 0]),
        np.array([0.0, 20, 100, 0]),
        np.array([200.0, 200, 150, 10]),
    )
    expected = fit.expected(7.0, x, t_x, age)
    assert expected == pytest.approx([0.00758001, 0.01410121, 0.09001495, 0.0428398], rel=1e-5)


def test_bgnbd_fit_recovers_the_parameters_it_simulates() -> None:
    """People simulated from the model's own story; the fit finds their parameters."""
    rng = np.random.default_rng(5)
    r, alpha, a, b = 0.5, 10.0, 0.7, 2.5
    n, horizon = 6000, 200.0
    xs, txs = [], []
    for lam, p in zip(rng.gamma(r, 1 / alpha, n), rng.beta(a, b, n), strict=True):
        t, x, t_x = 0.0, 0, 0.0
        while True:
            t += rng.exponential(1 / lam)
            if t > horizon:
                break
            x, t_x = x + 1, t
            if rng.random() < p:
                break  # dropped out after this purchase
        xs.append(x)
        txs.append(t_x)
    fit = base.fit_bgnbd(np.array(xs, float), np.array(txs), np.full(n, horizon))
    assert fit.r == pytest.approx(r, rel=0.2)
    assert fit.alpha == pytest.approx(alpha, rel=0.3)
    assert fit.a == pytest.approx(a, rel=0.3)
    assert fit.b == pytest.approx(b, rel=0.4)
