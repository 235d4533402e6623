"""The four predictions evaluated on the synthetic months, through the stream and ``pulse train``.

    .venv/bin/python -m bench.predictions --synthetic [--people 2000] [--days 120] [--seed 7]
        [--work DIR] [--topology topologies/commerce.yaml] [--json FILE] [--skip-cost]

1. **Data**: :mod:`pipeline.tools.synthetic_predictive` (purchase, churn,
   open hours and products follow known rules), written to
   ``WORK/events.jsonl`` (and its labels).
2. **Replay** the months with the topology's ``predictions:`` section
   (in process, exactly ``pulse replay --out WORK/out``): the stream's
   training examples ``pulse.training.<task>.jsonl`` and the profiles.
3. **purchase_7d, churn_30d**: ``pulse train --task T --examples WORK/out``
   (its own time split: test = the latest 25 % of scoring points); its ROC AUC
   and top-decile lift against its baselines (recency/frequency, BG/NBD).
   For reference, ``pulse train`` on the same examples keeping only their
   purchase-history features (:data:`HISTORY_FEATURES`): what the behavioral
   features add (``--fixture``: also the batch fixture's examples).
4. **recs, send_time**: the cut is the same 75 % point in time; ``pulse train
   --task recs|send_time`` on the session records scored before it
   (``WORK/train-cut``); then every profile (a session close) at or after the
   cut is a scoring point. The person's top 10 and best hour are what the
   stream computes from that profile's traits (the same pure functions:
   :func:`pipeline.core.recommend.recs_of`,
   :func:`pipeline.core.sendtime.best_hour_of`; a profile's own ``recs`` /
   ``best_hour`` fields are used when it has them).

   * *Next best product*: **hit rate@10** = share of scoring points whose next
     ``product_added`` or ``order_completed`` (the first one after the point)
     has a product in the top 10; **recall@10** = mean share of the distinct
     products added or bought in the 7 days after the point that are in the
     top 10 (points with at least one). Baselines: **most popular** (the 10
     products most added or bought before the cut, minus the person's
     purchases) and **most recently viewed** (the person's last 10 distinct
     viewed products, minus purchases).
   * *Best send time*: per channel, the share of scoring points whose next
     engagement (``<channel>_opened`` / ``_clicked``) is within +-1 h of the
     predicted hour: of **hour of week** (as ``best_hour`` is defined) and of
     **hour of day** (the same prediction, any day). Baseline: the
     population's best hour (the prior alone); the generator's truth (each
     person's preferred hour of day) as the ceiling.
5. **Scoring cost**: in-process replay of the commerce topology over the
   standard synthetic week (``bench.core_speed``'s, 2,000 people) with the
   ``predictions:`` section and the trained models, and without the section:
   events per CPU-second (best of 3, alternating) and encoded state bytes per
   person after the last event (no flush); with two segments reading the
   scores on a smaller week (``--scored-people``); state bytes after the months.

Modules: :mod:`bench.predictions_stream` (data, replay, ``pulse train``,
rescoring, cost), :mod:`bench.predictions_futures` (what happened next: recs
and send-time hit rates), this one (the run and its table).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.predictions_futures import eval_recs, eval_send_time, timelines
from bench.predictions_stream import (
    TASKS,
    K,
    check_scores,
    copy_before,
    cut_of,
    load_topology,
    log,
    months,
    months_state,
    pulse_train,
    replay,
    rescore,
    scoring_cost,
)
from pipeline.tools import synthetic, train_examples
from pipeline.tools.replay import write_outputs

# -- the run ------------------------------------------------------------------------------


def fixture_reports(data: synthetic.Synthetic, work: Path) -> dict[str, Any]:
    """``pulse train`` on the batch fixture's purchase-history examples of the same events."""
    from pipeline.tools import batch_examples

    out = work / "fixture"
    out.mkdir(parents=True, exist_ok=True)
    end = max(e.timestamp_ms for e in data.events)
    reports = {}
    for task in TASKS:
        examples = batch_examples.derive(data.events, task, every_days=7, end_ms=end)
        train_examples.write_jsonl(examples, out / f"pulse.training.{task}.jsonl")
        reports[task] = pulse_train(task, out, out / "models")
    return reports


#: The stream's features that describe purchases only (the RFM view of a person).
HISTORY_FEATURES = frozenset({
    "purchases", "purchase_days", "days_since_first_purchase", "days_since_last_purchase",
    "revenue_total", "average_order_value", "orders_1d", "orders_7d", "orders_30d",
})  # fmt: skip


def history_only_reports(out: Path, work: Path) -> dict[str, Any]:
    """``pulse train`` on the same stream examples with their purchase-history features only."""
    dst = work / "history-only"
    dst.mkdir(parents=True, exist_ok=True)
    reports = {}
    for task in TASKS:
        src = out / f"pulse.training.{task}.jsonl"
        with src.open() as fin, (dst / src.name).open("w") as fout:
            for line in fin:
                record = json.loads(line)
                record["features"] = {
                    k: v for k, v in record["features"].items() if k in HISTORY_FEATURES
                }
                fout.write(json.dumps(record, sort_keys=True) + "\n")
        reports[task] = pulse_train(task, dst, dst / "models")
    return reports


def read_profiles(path: Path, cut_ms: int) -> list[dict[str, Any]]:
    rows = []
    with path.open() as handle:
        for line in handle:
            record = json.loads(line)
            if record.get("as_of_ms", 0) >= cut_ms:
                rows.append(record)
    return rows


def _settings(topo: Any) -> tuple[int, tuple[str, ...], int]:
    """(recs k, send-time channels, min events) of the topology's predictions section."""
    config = getattr(topo.stage, "predictions", None) or getattr(topo, "predictions", None)
    if config is None:
        return K, ("email", "push"), 5
    return config.recs_k or K, tuple(config.send_channels), config.send_min_events


def run(args: argparse.Namespace) -> dict[str, Any]:
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    result: dict[str, Any] = {"people": args.people, "days": args.days, "seed": args.seed}
    log(f"generating {args.people} people x {args.days} days")
    data = months(args.people, args.days, args.seed, work)
    result["events"] = len(data.events)
    result["truth"] = {
        "churned_people": sum(p["churn_day"] is not None for p in data.labels["people"]),
        "orders": sum(p["orders"] for p in data.labels["people"]),
    }
    topo = load_topology(args.topology, True)
    k, channels, min_events = _settings(topo)
    log(f"{len(data.events)} events; replaying with {args.topology}")
    outputs, cpu_s = replay(data.events, topo)
    out = work / "out"
    counts = write_outputs(outputs, prefix="pulse.", out_dir=out, stdout=sys.stdout)
    del outputs
    result["replay"] = {"cpu_s": round(cpu_s, 1), "outputs": counts}
    log(f"replayed in {cpu_s:.1f} CPU s: {counts}")
    models_dir = work / "models"
    reports = {}
    for task in TASKS:
        log(f"pulse train --task {task}")
        reports[task] = pulse_train(task, out, models_dir)
    result["tasks"] = reports
    result["rescored"] = {}
    for task in TASKS:
        model_file, cut_t = models_dir / f"{task}.model.json", reports[task].get("split", {})
        if model_file.exists() and cut_t.get("cut_ms"):
            result["rescored"][task] = rescore(task, out, model_file, int(cut_t["cut_ms"]))
    log("pulse train on the same examples, purchase-history features only")
    result["history_only"] = history_only_reports(out, work)
    if args.fixture:
        log("pulse train on the batch fixture's purchase-history examples")
        result["fixture"] = fixture_reports(data, work)
    cut = cut_of(reports, data)
    result["cut_ms"] = cut
    cut_dir = work / "train-cut"
    result["cut_examples"] = copy_before(out, cut_dir, ("recs", "send_time"), cut)
    model_files = [models_dir / f"{t}.model.json" for t in TASKS]
    for task in ("recs", "send_time"):
        log(f"pulse train --task {task} (examples before the cut)")
        result.setdefault("trained", {})[task] = pulse_train(task, cut_dir, cut_dir / "models")
        model_files.append(cut_dir / "models" / f"{task}.model.json")
    model_files = [f for f in model_files if f.exists()]
    result["models"] = [str(f) for f in model_files]
    if args.check_scores:
        log("replay again with the models: profile scores against the examples' snapshots")
        result["score_check"] = check_scores(data.events, args.topology, model_files)
        log(f"score check: {result['score_check']}")
    profiles = read_profiles(out / "pulse.profiles.jsonl", cut)
    tls = timelines(data.events, channels)
    recs_file = cut_dir / "models" / "recs.model.json"
    if recs_file.exists():
        from pipeline.core.recommend import load_recs_model

        model = load_recs_model(json.loads(recs_file.read_text()))
        log(f"next best product on {len(profiles)} profiles after the cut")
        result["recs"] = eval_recs(profiles, tls, model, cut, k)
    send_file = cut_dir / "models" / "send_time.model.json"
    prior = None
    if send_file.exists():
        from pipeline.core.sendtime import load_send_time_model

        prior = load_send_time_model(json.loads(send_file.read_text()))
    truth = {p["person_id"]: p["preferred_hour"] for p in data.labels["people"]}
    log("best send time")
    result["send_time"] = eval_send_time(profiles, tls, prior, cut, channels, min_events, truth)
    result["send_time"]["prior"] = "send_time model" if prior is not None else "uniform (none)"
    if not args.skip_cost:
        log("scoring cost: commerce replay with predictions on and off")
        result["cost"] = scoring_cost(args.topology, model_files, args.cost_people, args.repeat)
        if args.scored_people:
            log(f"scoring cost: segments reading the scores, {args.scored_people} people")
            result["cost"]["scored"] = scoring_cost(
                args.topology, model_files, args.scored_people, 1, ("on", "scored")
            )
        few = {p["person_id"] for p in data.labels["people"][: args.cost_people // 2]}
        log(f"state bytes after the months, {len(few)} people, predictions on and off")
        result["cost"]["months_state"] = months_state(
            args.topology, model_files, [e for e in data.events if e.person_id in few]
        )
    return result


def _f(x: Any, digits: int = 3) -> str:
    return "n/a" if x is None else f"{x:.{digits}f}"


def _auc(ev: dict[str, Any] | None) -> str:
    return _f(ev.get("auc")) if ev else "n/a"


def _lift(ev: dict[str, Any] | None) -> str:
    if not ev or "top_decile" not in ev:
        return "n/a"
    top = ev["top_decile"]
    return f"{_f(top['lift'], 2)} / {_f(top['share_of_positives'])}"


def table(result: dict[str, Any]) -> str:
    lines = [
        "| task | features | test examples (positive) | model AUC | RF heuristic | "
        "BG/NBD P(alive) | BG/NBD expected | model top-10% lift / share | best baseline lift |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    sources = (("stream/1, all", result.get("tasks", {})),
               ("stream/1, purchase history only", result.get("history_only", {})),
               ("batch fixture", result.get("fixture", {})))  # fmt: skip
    for source, reports in sources:
        for task, rep in reports.items():
            if "model" not in rep:
                lines.append(f"| {task} | {source} | {rep.get('error', 'no test set')[:120]} |")
                continue
            test = rep["split"]["test"]
            base = rep.get("baselines", {})
            lifts = [
                (b["top_decile"]["lift"], n)
                for n, b in base.items()
                if b.get("top_decile", {}).get("lift") is not None
            ]
            best = max(lifts) if lifts else None
            m = rep["model"]
            lines.append(
                f"| {task} | {source} ({len(rep['features'])}) | {test['examples']:,} "
                f"({test['positive']:,}) | **{_auc(m)}** ±{_f(m.get('auc_se'))} "
                f"| {_auc(base.get('rf_heuristic'))} | {_auc(base.get('bgnbd_alive'))} "
                f"| {_auc(base.get('bgnbd_expected'))} | {_lift(m)} "
                f"| {'n/a' if best is None else f'{best[0]:.2f} ({best[1]})'} |"
            )
    lines += ["", "| task | test examples | positive | model AUC | RF heuristic AUC | "
              "BG/NBD P(alive) | BG/NBD expected | model lift / share | RF lift / share |",
              "|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for task, parts in result.get("rescored", {}).items():
        for part, row in parts.items():
            lines.append(
                f"| {task} ({part}) | {row['examples']:,} | {row['positive']:,} "
                f"| **{_auc(row['model'])}** ±{_f(row['model'].get('auc_se'))} "
                f"| {_auc(row['rf_heuristic'])} | {_auc(row.get('bgnbd_alive'))} "
                f"| {_auc(row.get('bgnbd_expected'))} | {_lift(row['model'])} "
                f"| {_lift(row['rf_heuristic'])} |"
            )
    recs = result.get("recs")
    if recs:
        lines += ["", "| next best product | points | hit rate@10 | recall@10 (7 d) |",
                  "|---|---|---|---|"]  # fmt: skip
        for name in ("recs", "most_popular", "recently_viewed"):
            r = recs[name]
            lines.append(f"| {name} | {r['points']:,} | {r['hit_rate']} | {r['recall']} |")
    send = result.get("send_time")
    if send:
        lines += ["", "| best send time | points (person's own) | best_hour ±1 h, hour of week | "
                  "same, hour of day | population best, week / day | true preferred hour (day) |",
                  "|---|---|---|---|---|---|"]  # fmt: skip
        for channel, r in send.items():
            if not isinstance(r, dict):
                continue
            lines.append(
                f"| {channel} | {r['points']:,} ({r['from_person']:,}) | {r['best_hour_week']} "
                f"| {r['best_hour_day']} | {r['population_week']} / {r['population_day']} "
                f"| {r['truth_day']} |"
            )
    cost = result.get("cost")
    if cost:
        lines += [
            "",
            f"Scoring cost ({cost['core']} core, {cost['events']:,} events, {cost['people']:,} "
            f"people): {cost['off']['events_per_cpu_s']:,} events/CPU-s without predictions, "
            f"{cost['on']['events_per_cpu_s']:,} with ({cost['cost_ratio']}x the CPU); "
            f"state {cost['off']['state']['mean']:.0f} -> {cost['on']['state']['mean']:.0f} "
            f"bytes per person (+{cost['state_bytes_added_per_person']:.0f}).",
        ]
        scored = cost.get("scored")
        if scored:
            lines.append(
                f"With two segments reading the scores ({scored['people']} people, "
                f"{scored['events']:,} events, one run): {scored['on']['events_per_cpu_s']:,} -> "
                f"{scored['scored']['events_per_cpu_s']:,} events/CPU-s "
                f"({scored['cost_ratio']}x the CPU of predictions on)."
            )
        months_ = cost.get("months_state")
        if months_:
            lines.append(
                f"After the {result['days']} days of the predictive generator "
                f"({months_['on']['persons']:,} persons): {months_['off']['mean']:.0f} -> "
                f"{months_['on']['mean']:.0f} bytes per person "
                f"(+{months_['added_per_person']:.0f}; p99 {months_['off']['p99']:,} -> "
                f"{months_['on']['p99']:,})."
            )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="bench.predictions --synthetic")
    parser.add_argument("--people", type=int, default=2_000)
    parser.add_argument("--days", type=int, default=120)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--work", default=".pulse/bench-predictions")
    parser.add_argument("--topology", default="topologies/commerce.yaml")
    parser.add_argument("--json", help="also write the result here")
    parser.add_argument("--skip-cost", action="store_true")
    parser.add_argument(
        "--fixture", action="store_true", help="also the batch fixture's examples of the events"
    )
    parser.add_argument("--cost-people", type=int, default=2_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--check-scores",
        action="store_true",
        help="replay again with the models and compare the profiles' scores with the examples'",
    )
    parser.add_argument(
        "--scored-people",
        type=int,
        default=200,
        help="scoring cost with segments reading the scores, on a week of N people (0: skip)",
    )
    args = parser.parse_args(argv)
    result = run(args)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1, sort_keys=True) + "\n")
    print(table(result))
