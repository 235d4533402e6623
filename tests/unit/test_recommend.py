"""Next best product: the recent-products fold, the session record, the model and the top-k."""

from __future__ import annotations

import json
from typing import Any

import pytest

from pipeline.core.facts import Fact
from pipeline.core.localtime import DAY_MS, HOUR_MS
from pipeline.core.recommend import (
    MAX_BOUGHT,
    RecentProducts,
    RecsModel,
    load_recs_model,
    recommend,
    recommend_scored,
    recs_of,
    session_example,
)
from pipeline.errors import ModelError

T0 = 1_767_571_200_000


def fact(ts: int, name: str, *products: str) -> Fact:
    return Fact(ts, f"m{ts}", name, None, None, None, False, [(p, "c") for p in products], None)


def doc(neighbours: dict[str, list[list[Any]]], popular: list[str]) -> dict[str, Any]:
    return {"format": "pulse-model", "version": 1, "task": "recs", "kind": "recs",
            "recs": {"neighbours": neighbours, "popular": popular, "self_weight": 1.0}}  # fmt: skip


def test_fold_keeps_recent_events_and_purchases() -> None:
    fold = RecentProducts()
    s = fold.initialize()
    s = fold.aggregate(s, fact(T0, "product_viewed", "a"))
    s = fold.aggregate(s, fact(T0 + 1, "product_added", "a", "b"))
    s = fold.aggregate(s, fact(T0 + 2, "order_completed", "a"))
    s = fold.aggregate(s, fact(T0 + 3, "page_viewed", "z"))
    assert fold.result(s, T0 + 10) == {"purchased_products": ["a"]}
    assert [e[1:] for e in s["e"]] == [["a", "v"], ["a", "a"], ["b", "a"], ["a", "o"]]
    s = fold.aggregate(s, fact(T0 + 2 * DAY_MS, "product_viewed", "c"))
    assert [e[1] for e in s["e"]] == ["c"]  # older than a day: dropped
    s = fold.aggregate(s, fact(T0 + 3 * DAY_MS, "order_completed", "d"))
    assert fold.result(s, 0) == {"purchased_products": ["d", "a"]}  # newest first


def test_fold_is_bounded_and_merges() -> None:
    fold = RecentProducts()
    s = fold.initialize()
    for i in range(MAX_BOUGHT + 50):
        s = fold.aggregate(s, fact(T0 + i, "order_completed", f"p{i}"))
    assert len(s["b"]) == MAX_BOUGHT
    assert len(s["e"]) <= 200
    other = fold.aggregate(fold.initialize(), fact(T0 + 10_000, "order_completed", "new"))
    merged = fold.merge(s, other)
    assert fold.result(merged, 0)["purchased_products"][0] == "new"
    assert "new" not in s["b"]


def test_session_example_splits_kinds() -> None:
    fold = RecentProducts()
    s = fold.initialize()
    for f in [fact(T0 - HOUR_MS, "product_viewed", "old"), fact(T0, "product_viewed", "a", "b"),
              fact(T0 + 1, "product_added", "b"),
              fact(T0 + 2, "order_completed", "c")]:  # fmt: skip
        s = fold.aggregate(s, f)
    session = {"start_ms": T0, "end_ms": T0 + 2, "closed_at_ms": T0 + 1_800_002,
               "products": ["a", "b", "c", "x"]}  # fmt: skip
    assert session_example(session, "u", s) == {
        "task": "recs", "person": "u", "scored_at_ms": T0 + 1_800_002, "start_ms": T0,
        "end_ms": T0 + 2, "viewed": ["a", "x"], "added": ["b"], "purchased": ["c"],
    }  # fmt: skip
    plain = session_example(session, "u")
    assert plain is not None
    assert plain["viewed"] == ["a", "b", "c", "x"]
    assert session_example({**session, "products": []}, "u") is None


def test_model_validation() -> None:
    m = load_recs_model(json.loads(json.dumps(doc({"a": [["b", 0.5]]}, ["z"]))))
    assert m.neighbours == {"a": (("b", 0.5),)}
    assert m.popular == ("z",)
    for bad in (
        {"format": "pulse-model", "version": 2},
        {**doc({}, []), "kind": "gbdt"},
        doc({"a": [["b"]]}, []),
        doc({"a": [["b", float("nan")]]}, []),
        doc({"a": "b"}, []),
        doc({}, [1]),  # type: ignore[list-item]
    ):
        with pytest.raises(ModelError):
            load_recs_model(bad)


def test_recommend_weights_interest_and_drops_bought() -> None:
    m = RecsModel({"a": (("b", 0.5), ("c", 0.4)), "d": (("c", 0.9),)}, ("p1", "b", "p2"), 0.0)
    assert recommend(m, {"a": 1.0, "d": 0.1}, (), 2) == ["b", "c"]
    assert recommend(m, {"a": 0.1, "d": 1.0}, (), 2) == ["c", "b"]
    assert recommend(m, {"a": 1.0}, {"b"}, 3) == ["c", "p1", "p2"]
    assert recommend(m, {}, (), 2) == ["p1", "b"]
    assert recommend_scored(m, {"a": 1.0}, (), 0) == []


def test_recs_of_missing_without_model() -> None:
    m = RecsModel({"a": (("b", 0.5),)}, (), 1.0)
    assert recs_of(None, {"product_interest": {"a": 1.0}}, 3) is None
    traits = {"product_interest": {"a": 1.0}, "purchased_products": ["a"]}
    assert recs_of(m, traits, 3) == ["b"]


def test_trainer_counts_pairs_once_per_person_and_bounds() -> None:
    from pipeline.tools.train_recs import Basket, fit

    day = DAY_MS
    baskets = [
        Basket("u1", T0, ("a", "b"), (), ()),
        Basket("u1", T0 + day, ("a", "b", "c"), (), ()),  # a-b again: still once for u1
        Basket("u1", T0 + 30 * day, ("d",), (), ()),  # more than 7 days after: no pair with a, b, c
        Basket("u2", T0, ("a",), (), ()),
        Basket("u2", T0 + 2 * day, ("c",), (), ()),  # another session within 7 days: weight 0.5
    ]
    section = fit(baskets, max_neighbours=1)
    table = dict(section["neighbours"])
    # n(a) = 2, n(b) = 1, n(c) = 2; c(a,b) = 1, c(a,c) = 1 + 0.5, c(b,c) = 1
    assert table["a"] == [["c", round(1.5 / 2, 6)]]  # one neighbour kept (bounded)
    assert table["b"] == [["a", round(1 / (2**0.5), 6)]]
    assert "d" not in table
    assert section["popular"][:2] == ["a", "c"]


def test_trainer_end_to_end_model_loads_and_beats_popular() -> None:
    from pipeline.tools.train_recs import parse_lines, publish_problem, train

    lines = []
    for i in range(200):
        pair = ("x1", "x2") if i % 2 else ("y1", "y2")
        at = T0 + i * HOUR_MS
        lines.append(json.dumps({"task": "recs", "person": f"u{i}", "scored_at_ms": at,
                                 "start_ms": at, "viewed": [], "added": [],
                                 "purchased": [pair[0]]}))  # fmt: skip
        lines.append(json.dumps({"task": "recs", "person": f"u{i}",
                                 "scored_at_ms": T0 + i * HOUR_MS + DAY_MS,
                                 "start_ms": T0 + i * HOUR_MS + DAY_MS, "viewed": [],
                                 "added": [pair[1]], "purchased": []}))  # fmt: skip
    popular = [f"z{j}" for j in range(20)]
    lines.append(json.dumps({"task": "recs", "person": "pop", "scored_at_ms": T0, "start_ms": T0,
                             "viewed": popular, "added": [], "purchased": []}))  # fmt: skip
    doc, report = train(parse_lines(lines), k=1)
    model = load_recs_model(doc)
    assert recommend(model, {"x1": 1.0}, {"x1"}, 1) == ["x2"]
    ev = report["evaluation"]
    assert ev["model"]["hit_rate"] == 1.0
    assert ev["model"]["hit_rate"] > ev["most_popular"]["hit_rate"]
    assert publish_problem(report) is None
    assert publish_problem(report, 10**6) is not None
    with pytest.raises(ModelError):
        parse_lines(['{"task": "churn_30d"}'])
