"""Prediction libraries compared on the same examples; the predictions on the synthetic months.

    .venv/bin/python -m bench.predictions [--every-days 0 30] [--json FILE]
    .venv/bin/python -m bench.predictions --examples-out DIR [--every-days 30]
    .venv/bin/python -m bench.predictions --synthetic [--people N] [--days D] [--work DIR]

The third form is the evaluation of all four predictions on the synthetic
generator (:mod:`bench.predictions_synthetic`, docs/predictions.md "Evaluation
on the synthetic generator"); the rest of this doc is about the first two.

The second form only writes the fixture's examples, ``DIR/pulse.training.<task>.jsonl``,
for ``pulse train --task T --examples DIR`` (docs/predictions.md's CDNOW table).

The examples are the CDNOW purchase log (``pulse cdnow``) turned into
``purchase_7d`` and ``churn_30d`` examples by the batch fixture
(:mod:`pipeline.tools.batch_examples`: NOT the stream's examples), split by
time as ``pulse train`` splits them. Each candidate fits the same training
matrix (NaN for a missing feature; the linear models impute the training
mean and standardize) and is scored on the same test examples:

* scikit-learn ``HistGradientBoostingClassifier`` (defaults, seed 7);
* LightGBM as ``pulse train`` runs it (:data:`pipeline.tools.train_models.LGBM_PARAMS`);
* scikit-learn ``LogisticRegression`` (C = 1, lbfgs);
* ``pulse train --kind logistic`` (numpy, Newton);
* River ``LogisticRegression`` after a ``StandardScaler``, one online pass in
  time order (what a model updated per example would have seen).

Install weight: the bytes of the files each library's distribution and the
distributions it requires (recursively) installed, counted from their
``RECORD`` in this environment; numpy and scipy, needed by all, are given
apart. Needs the ``bench`` extra (scikit-learn, river) besides ``train``.
"""

from __future__ import annotations

import argparse
import json
import re
import time
from collections.abc import Callable
from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.tools import batch_examples, cdnow, train_examples, train_metrics, train_models
from pipeline.tools.train import split_by_time

SHARED = ("numpy", "scipy")


def _requires(name: str) -> list[str]:
    out = []
    for req in distribution(name).requires or []:
        if "extra ==" in req:
            continue
        match = re.match(r"[A-Za-z0-9_.\-]+", req)
        if match:
            out.append(match.group(0))
    return out


def install_mb(name: str, exclude: tuple[str, ...] = SHARED) -> float:
    """MB of ``name`` and what it requires, installed, without ``exclude``."""
    seen: set[str] = set()
    todo = [name]
    total = 0
    skip = {e.lower() for e in exclude}
    while todo:
        dist_name = todo.pop()
        key = dist_name.lower().replace("_", "-")
        if key in seen or key in skip:
            continue
        seen.add(key)
        try:
            dist = distribution(dist_name)
        except PackageNotFoundError:
            continue
        for f in dist.files or []:
            path = f.locate()
            if path.is_file():
                total += path.stat().st_size
        todo.extend(_requires(dist_name))
    return total / 1e6


def _impute(x: np.ndarray, mean: np.ndarray) -> np.ndarray:  # type: ignore[type-arg]
    return np.where(np.isnan(x), mean, x)


def fit_hgb(x: Any, y: Any) -> Callable[[Any], Any]:
    from sklearn.ensemble import HistGradientBoostingClassifier

    model = HistGradientBoostingClassifier(random_state=7).fit(x, y)
    return lambda m: model.predict_proba(m)[:, 1]


def fit_lgbm(x: Any, y: Any) -> Callable[[Any], Any]:
    booster = train_models.fit_lightgbm(x, y)
    return booster.predict  # type: ignore[no-any-return]


def fit_sk_lr(x: Any, y: Any) -> Callable[[Any], Any]:
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    mean = np.nanmean(x, axis=0)
    scaler = StandardScaler().fit(_impute(x, mean))
    model = LogisticRegression(C=1.0, max_iter=2000).fit(scaler.transform(_impute(x, mean)), y)
    return lambda m: model.predict_proba(scaler.transform(_impute(m, mean)))[:, 1]


def fit_np_lr(x: Any, y: Any) -> Callable[[Any], Any]:
    section = train_models.fit_logistic(x, y)
    return lambda m: train_models.predict_logistic(section, m)


def fit_river(x: Any, y: Any, names: list[str]) -> Callable[[Any], Any]:
    from river import linear_model, preprocessing

    mean = np.nanmean(x, axis=0)
    model = preprocessing.StandardScaler() | linear_model.LogisticRegression()
    for row, label in zip(_impute(x, mean), y, strict=True):
        model.learn_one(dict(zip(names, row.tolist(), strict=True)), bool(label))

    def predict(m: Any) -> Any:
        rows = _impute(m, mean)
        return np.array(
            [model.predict_proba_one(dict(zip(names, r.tolist(), strict=True)))[True] for r in rows]
        )

    return predict


CANDIDATES = (
    ("sklearn HistGradientBoosting", "scikit-learn", fit_hgb),
    ("LightGBM (pulse train)", "lightgbm", fit_lgbm),
    ("sklearn LogisticRegression", "scikit-learn", fit_sk_lr),
    ("numpy logistic (pulse train --kind logistic)", "numpy", fit_np_lr),
    ("River LogisticRegression (online)", "river", None),
)


def run(every_days: int | None) -> list[dict[str, Any]]:
    events = cdnow.load()
    rows = []
    for task in ("purchase_7d", "churn_30d"):
        examples = batch_examples.derive(events, task, every_days=every_days)
        split = split_by_time(examples)
        names = train_models.feature_names(split.train)
        x, y = train_models.matrix(split.train, names), train_models.labels(split.train)
        xt, yt = train_models.matrix(split.test, names), train_models.labels(split.test)
        for label, package, fitter in CANDIDATES:
            started = time.perf_counter()
            predict = fit_river(x, y, names) if fitter is None else fitter(x, y)
            fit_s = time.perf_counter() - started
            ev = train_metrics.evaluate(yt, predict(xt), probabilities=True)
            weight = 0.0 if package == "numpy" else install_mb(package)
            rows.append(
                {
                    "task": task,
                    "scoring": f"every {every_days} d" if every_days else "at purchases",
                    "model": label,
                    "train": len(split.train),
                    "test": len(split.test),
                    "auc": round(ev.auc, 4),
                    "lift": round(ev.top.lift, 2),
                    "share": round(ev.top.share, 3),
                    "fit_s": round(fit_s, 2),
                    "mb": round(weight, 1),
                }
            )
            print(json.dumps(rows[-1]), flush=True)
    return rows


def write_examples(out: Path, every_days: int | None) -> None:
    out.mkdir(parents=True, exist_ok=True)
    events = cdnow.load()
    for task in ("purchase_7d", "churn_30d"):
        examples = batch_examples.derive(events, task, every_days=every_days)
        n = train_examples.write_jsonl(examples, out / f"pulse.training.{task}.jsonl")
        print(f"{out}/pulse.training.{task}.jsonl: {n} examples (batch fixture)")


def table(rows: list[dict[str, Any]]) -> str:
    head = "| task | scoring | model | AUC | top-10% lift | share of positives | fit s | MB |"
    lines = [head, "|---|---|---|---|---|---|---|---|"]
    lines += [
        f"| {r['task']} | {r['scoring']} | {r['model']} | {r['auc']:.3f} | {r['lift']:.2f} "
        f"| {r['share']:.3f} | {r['fit_s']:.2f} | {r['mb']:.0f} |"
        for r in rows
    ]
    numpy, scipy = install_mb("numpy", ()), install_mb("scipy", ("numpy",))
    return "\n".join(lines) + (
        f"\n\nMB: besides numpy ({numpy:.0f} MB), which all need, and scipy ({scipy:.0f} MB), "
        "which all but numpy logistic regression need."
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--every-days", type=int, nargs="*", default=[0, 30])
    parser.add_argument("--json", help="also write the rows here")
    parser.add_argument("--examples-out", help="only write the fixture's examples to this DIR")
    parser.add_argument(
        "--synthetic",
        action="store_true",
        help="evaluate the four predictions on the synthetic months (bench.predictions_synthetic)",
    )
    args, rest = parser.parse_known_args()
    if args.synthetic:
        from bench import predictions_synthetic

        predictions_synthetic.main(rest + (["--json", args.json] if args.json else []))
        return
    if rest:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    if args.examples_out:
        write_examples(Path(args.examples_out), (args.every_days or [0])[-1] or None)
        return
    rows = [r for every in args.every_days for r in run(every or None)]
    print(table(rows))
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(rows, handle, indent=1)


if __name__ == "__main__":
    main()
