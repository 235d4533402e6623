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
   person after the last event (no flush).
"""

from __future__ import annotations

import argparse
import bisect
import json
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from pipeline.core.events import Event
from pipeline.tools import synthetic, synthetic_predictive, train_examples
from pipeline.tools.replay import replay_events, write_outputs

LATENESS_MS = 5 * 60_000  # the default allowed lateness (PULSE_ALLOWED_LATENESS_MS)
DAY_MS = 86_400_000
TASKS = ("purchase_7d", "churn_30d")
K = 10


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# -- data and replay ----------------------------------------------------------------


def months(people: int, days: int, seed: int, work: Path) -> synthetic.Synthetic:
    data = synthetic_predictive.generate(
        synthetic_predictive.PredictiveConfig(seed=seed, people=people, days=days)
    )
    with (work / "events.jsonl").open("w") as handle:
        synthetic.write_jsonl(data.events, handle)
    synthetic.write_labels(data.labels, work / "events.labels.json")
    return data


#: Segments reading the scores, added to the "scored" side of the scoring cost.
SCORE_SEGMENTS = {
    "bench_likely_buyer": {"where": {"score.purchase_7d.percentile": {"gte": 90}}},
    "bench_churn_risk": {"where": {"score.churn_30d": {"gte": 0.5}}},
}


def load_topology(path: str, predictions: bool | str) -> Any:
    """The topology; ``False``: without its ``predictions:`` section (off);
    ``"scored"``: with it and with :data:`SCORE_SEGMENTS` (segments reading the scores)."""
    from pipeline.topology.dsl import load

    if predictions is True:
        return load(path)
    doc = yaml.safe_load(Path(path).read_text())
    if predictions == "scored":
        doc.setdefault("segments", {}).update(SCORE_SEGMENTS)
    else:
        doc.pop("predictions", None)
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as handle:
        yaml.safe_dump(doc, handle)
    return load(handle.name)


def put_models(topo: Any, files: Iterable[Path]) -> list[str]:
    models = getattr(topo.stage, "models", None)
    if models is None:
        return []
    return [models.put_json(f.read_bytes()) for f in files]


def replay(events: Sequence[Event], topo: Any) -> tuple[list[Any], float]:
    """(outputs, CPU seconds) of one in-process replay (what ``pulse replay`` runs)."""
    cpu = time.process_time()
    outputs = replay_events(
        events,
        topo.operators,
        allowed_lateness_ms=LATENESS_MS,
        stage=topo.stage,
        identity=topo.identity,
    )
    return outputs, time.process_time() - cpu


def pulse_train(task: str, examples: Path, out: Path) -> dict[str, Any]:
    """``pulse train --task T --examples DIR --out DIR --json``: its evaluation."""
    cmd = [sys.executable, "-m", "pipeline.cli", "train", "--task", task,
           "--examples", str(examples), "--out", str(out), "--json"]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        return {"error": (done.stderr or done.stdout).strip()[-2000:]}
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    return json.loads(lines[-1]) if lines else {"stdout": done.stdout[-2000:]}


def cut_of(reports: dict[str, Any], data: synthetic.Synthetic) -> int:
    """The purchase task's split time, else 75 % of the way through the months."""
    for task in TASKS:
        cut = reports.get(task, {}).get("split", {}).get("cut_ms")
        if cut:
            return int(cut)
    gen = data.labels["generator"]
    return int(gen["start_ms"] + 0.75 * gen["days"] * DAY_MS)


def copy_before(src: Path, dst: Path, names: Iterable[str], cut_ms: int) -> dict[str, int]:
    """Copy the JSON lines scored before ``cut_ms`` (the training side of the cut)."""
    dst.mkdir(parents=True, exist_ok=True)
    counts = {}
    for name in names:
        path = src / f"pulse.training.{name}.jsonl"
        if not path.exists():
            continue
        n = 0
        with path.open() as fin, (dst / path.name).open("w") as fout:
            for line in fin:
                if json.loads(line).get("scored_at_ms", 0) < cut_ms:
                    fout.write(line)
                    n += 1
        counts[name] = n
    return counts


# -- purchase and churn: the baselines on every test example -----------------------------


def _rf_all(examples: Sequence[Any], outcome: str) -> Any:
    """The RF heuristic where a person who never bought counts from when first seen.

    ``pulse train`` reports its baselines only when every test example has
    ``days_since_last_purchase``; the stream leaves it missing for people who
    never bought (most of the scoring points here), so the harness scores them
    as ``log(1 + 0) - log(1 + days since first seen)``.
    """
    import math

    import numpy as np

    rows = []
    for x in examples:
        f = x.features
        days = f.get("days_since_last_purchase")
        if days is None:
            days = f.get("days_since_first_seen", 0.0)
        rows.append(math.log1p(f.get("purchases", 0.0) or 0.0) - math.log1p(max(days, 0.0)))
    h = np.array(rows, dtype=np.float64)
    return -h if outcome == "churn" else h


def rescore(task: str, examples_dir: Path, model_file: Path, cut_ms: int) -> dict[str, Any]:
    """The trained model and the baselines on the same test examples: all, and buyers only.

    Buyers only (``purchases >= 1`` when scored) is where BG/NBD is defined;
    it is fitted there as ``pulse train`` fits it (each buyer's latest example
    before the cut).
    """
    import numpy as np

    from pipeline.core.scoring import load_model, probability
    from pipeline.tools import train_baselines as base
    from pipeline.tools import train_metrics as metrics
    from pipeline.tools.train import split_by_time

    examples = train_examples.read_files(examples_dir, task)
    split = split_by_time(examples, cut_ms=cut_ms)
    model = load_model(json.loads(model_file.read_text()))
    outcome = train_examples.TASKS[task].outcome
    out: dict[str, Any] = {}

    def ev(xs: Sequence[Any], scores: Any, probs: bool) -> dict[str, Any]:
        y = np.array([x.label for x in xs], dtype=np.float64)
        return metrics.evaluate(y, np.asarray(scores), probabilities=probs).to_json()

    test = split.test
    probs = [probability(model, x.features) for x in test]
    out["all"] = {
        "examples": len(test),
        "positive": sum(x.label for x in test),
        "model": ev(test, probs, True),
        "rf_heuristic": ev(test, _rf_all(test, outcome), False),
    }
    buyers = [i for i, x in enumerate(test) if (x.features.get("purchases") or 0) >= 1]
    sub = [test[i] for i in buyers]
    if sub and 0 < sum(x.label for x in sub) < len(sub):
        row: dict[str, Any] = {
            "examples": len(sub),
            "positive": sum(x.label for x in sub),
            "model": ev(sub, [probs[i] for i in buyers], True),
            "rf_heuristic": ev(sub, base.rf_heuristic(sub, outcome), False),
        }
        before = [
            x for x in examples
            if x.scored_at_ms < cut_ms and (x.features.get("purchases") or 0) >= 1
        ]  # fmt: skip
        if base.has_features(before, base.BGNBD_FEATURES) and base.has_features(
            sub, base.BGNBD_FEATURES
        ):
            fitted = base.bgnbd_for(before, cut_ms)
            for name, scores in base.bgnbd_scores(fitted, sub, outcome).items():
                row[name] = ev(sub, scores, False)
        out["buyers"] = row
    return out


# -- the persons' futures --------------------------------------------------------------


@dataclass
class Timeline:
    """One person's product and engagement events, in event time."""

    views: list[tuple[int, str]] = field(default_factory=list)
    takes: list[tuple[int, tuple[str, ...]]] = field(default_factory=list)  # adds and orders
    orders: list[tuple[int, tuple[str, ...]]] = field(default_factory=list)
    engaged: dict[str, list[tuple[int, str | None]]] = field(default_factory=dict)


def _products(e: Event) -> tuple[str, ...]:
    props = e.properties
    if "products" in props:
        return tuple(str(p["product_id"]) for p in props["products"] if "product_id" in p)
    return (str(props["product_id"]),) if "product_id" in props else ()


def timelines(events: Iterable[Event], channels: Sequence[str]) -> dict[str, Timeline]:
    out: dict[str, Timeline] = defaultdict(Timeline)
    for e in sorted(events, key=lambda e: (e.timestamp_ms, e.message_id)):
        t = out[e.person_id]
        name = e.event or ""
        if name == "product_viewed":
            t.views.extend((e.timestamp_ms, p) for p in _products(e))
        elif name in ("product_added", "order_completed"):
            t.takes.append((e.timestamp_ms, _products(e)))
            if name == "order_completed":
                t.orders.append((e.timestamp_ms, _products(e)))
        else:
            for channel in channels:
                if name in (f"{channel}_opened", f"{channel}_clicked"):
                    tz = e.context.get("timezone")
                    t.engaged.setdefault(channel, []).append((e.timestamp_ms, tz))
    return out


def _after(rows: Sequence[tuple[int, Any]], t: int) -> int:
    """Index of the first row after time ``t``."""
    return bisect.bisect_right(rows, t, key=lambda row: row[0])


def bought_by(tl: Timeline, t: int) -> set[str]:
    return {p for ts, items in tl.orders if ts <= t for p in items}


def most_recently_viewed(tl: Timeline, t: int, skip: set[str], k: int = K) -> list[str]:
    out: list[str] = []
    for _, product in reversed(tl.views[: _after(tl.views, t)]):
        if product not in skip and product not in out:
            out.append(product)
            if len(out) == k:
                break
    return out


def popular_before(timelines_: dict[str, Timeline], cut_ms: int) -> list[str]:
    counts: Counter[str] = Counter()
    for tl in timelines_.values():
        for ts, items in tl.takes:
            if ts < cut_ms:
                counts.update(set(items))
    return [p for p, _ in sorted(counts.items(), key=lambda x: (-x[1], x[0]))]


# -- next best product -------------------------------------------------------------------


@dataclass
class HitCounter:
    points: int = 0
    hits: int = 0
    recall_points: int = 0
    recall_sum: float = 0.0

    def add(self, top: Sequence[str], nxt: Sequence[str] | None, week: set[str]) -> None:
        if nxt is not None:
            self.points += 1
            self.hits += any(p in top for p in nxt)
        if week:
            self.recall_points += 1
            self.recall_sum += len(week.intersection(top)) / len(week)

    def to_json(self) -> dict[str, Any]:
        return {
            "points": self.points,
            "hit_rate": round(self.hits / self.points, 4) if self.points else None,
            "recall_points": self.recall_points,
            "recall": round(self.recall_sum / self.recall_points, 4)
            if self.recall_points
            else None,
        }


def eval_recs(
    profiles: Iterable[dict[str, Any]],
    tls: dict[str, Timeline],
    model: Any,
    cut_ms: int,
    k: int = K,
) -> dict[str, Any]:
    from pipeline.core.recommend import recs_of

    popular = popular_before(tls, cut_ms)
    scores = {"recs": HitCounter(), "most_popular": HitCounter(), "recently_viewed": HitCounter()}
    from_profile = 0
    for prof in profiles:
        t = prof["as_of_ms"]
        tl = tls.get(prof["person_id"])
        if t < cut_ms or tl is None:
            continue
        i = _after(tl.takes, t)
        nxt = tl.takes[i][1] if i < len(tl.takes) else None
        week = {p for ts, items in tl.takes[i:] if ts <= t + 7 * DAY_MS for p in items}
        if nxt is None and not week:
            continue
        skip = bought_by(tl, t)
        mine = prof.get("recs")
        if isinstance(mine, list):
            from_profile += 1
        else:
            mine = recs_of(model, prof.get("traits", {}), k) or []
        scores["recs"].add(mine[:k], nxt, week)
        scores["most_popular"].add([p for p in popular if p not in skip][:k], nxt, week)
        scores["recently_viewed"].add(most_recently_viewed(tl, t, skip, k), nxt, week)
    out = {name: c.to_json() for name, c in scores.items()}
    out["recs_from_profiles"] = from_profile
    return out


# -- best send time -----------------------------------------------------------------------


def _dist(a: int, b: int, period: int) -> int:
    d = abs(a - b) % period
    return min(d, period - d)


def eval_send_time(
    profiles: Iterable[dict[str, Any]],
    tls: dict[str, Timeline],
    prior: Any,
    cut_ms: int,
    channels: Sequence[str],
    min_events: int,
    truth: dict[str, dict[str, int]],
) -> dict[str, Any]:
    from pipeline.core.sendtime import best_hour, best_hour_of, hour_of_week

    out: dict[str, Any] = {}
    for channel in channels:
        population = best_hour(None, channel, prior, min_events=1 << 30)
        rows: Counter[str] = Counter()
        for prof in profiles:
            t = prof["as_of_ms"]
            tl = tls.get(prof["person_id"])
            if t < cut_ms or tl is None or channel not in tl.engaged:
                continue
            rows_ = tl.engaged[channel]
            i = _after(rows_, t)
            if i >= len(rows_):
                continue
            ts, tz = rows_[i]
            how = hour_of_week(ts, tz)
            rows["points"] += 1
            mine = best_hour_of(prior, prof.get("traits", {}), channel, min_events)
            if mine is not None:
                rows["predicted"] += 1
                rows["person" if mine.source == "person" else "fallback"] += 1
                rows["week_hit"] += _dist(mine.how, how, 168) <= 1
                rows["day_hit"] += _dist(mine.hour, how % 24, 24) <= 1
            if population is not None:
                rows["pop_week_hit"] += _dist(population.how, how, 168) <= 1
                rows["pop_day_hit"] += _dist(population.hour, how % 24, 24) <= 1
            want = truth.get(prof["person_id"], {}).get(channel)
            if want is not None:
                rows["truth_day_hit"] += _dist(want, how % 24, 24) <= 1
        n = rows["points"] or 1
        out[channel] = {
            "points": rows["points"],
            "predicted": rows["predicted"],
            "from_person": rows["person"],
            "best_hour_week": round(rows["week_hit"] / n, 4),
            "best_hour_day": round(rows["day_hit"] / n, 4),
            "population_week": round(rows["pop_week_hit"] / n, 4),
            "population_day": round(rows["pop_day_hit"] / n, 4),
            "truth_day": round(rows["truth_day_hit"] / n, 4),
            "population_best_how": None if population is None else population.how,
        }
    return out


# -- scoring cost --------------------------------------------------------------------------


def state_bytes(events: Sequence[Event], topo: Any) -> dict[str, float]:
    from pipeline.core.engine import MemoryStore, Processor
    from pipeline.worker.records import encode_state

    store = MemoryStore()
    proc = Processor(topo.operators, allowed_lateness_ms=LATENESS_MS, store=store, stage=topo.stage)
    for event in events:
        proc.process(event)
    sizes = sorted(len(encode_state(state)) for state in store.data.values())
    return {
        "persons": len(sizes),
        "mean": round(sum(sizes) / max(len(sizes), 1), 1),
        "p50": sizes[len(sizes) // 2] if sizes else 0,
        "p99": sizes[min(len(sizes) - 1, int(0.99 * len(sizes)))] if sizes else 0,
    }


def months_state(topology: str, model_files: Sequence[Path], events: Sequence[Event]) -> Any:
    """State bytes per person after months of the predictive generator, on and off."""
    out = {}
    for side in ("off", "on"):
        topo = load_topology(topology, side == "on")
        if side == "on":
            put_models(topo, model_files)
        out[side] = state_bytes(events, topo)
    out["added_per_person"] = round(out["on"]["mean"] - out["off"]["mean"], 1)
    return out


SIDES = {"off": False, "on": True, "scored": "scored"}


def scoring_cost(
    topology: str,
    model_files: Sequence[Path],
    people: int,
    repeat: int,
    sides: Sequence[str] = ("off", "on"),
) -> Any:
    """Events per CPU-second and state bytes per person of each side of :data:`SIDES`."""
    from pipeline.core.native import STATUS

    events = synthetic.generate(synthetic.SyntheticConfig(seed=7, people=people, days=7)).events

    def topology_of(side: str) -> Any:
        topo = load_topology(topology, SIDES[side])
        if side != "off":
            put_models(topo, model_files)
        return topo

    cpu: dict[str, list[float]] = {side: [] for side in sides}
    for _ in range(repeat):
        for side in sides:
            cpu[side].append(replay(events, topology_of(side))[1])
    out: dict[str, Any] = {
        "core": "compiled" if STATUS.active else "pure",
        "events": len(events),
        "people": people,
    }
    for side in sides:
        out[side] = {
            "events_per_cpu_s": round(len(events) / min(cpu[side])),
            "cpu_s": [round(c, 3) for c in cpu[side]],
            "state": state_bytes(events, topology_of(side)),
        }
    first, last = out[sides[0]], out[sides[-1]]
    out["cost_ratio"] = round(first["events_per_cpu_s"] / last["events_per_cpu_s"], 3)
    out["state_bytes_added_per_person"] = round(last["state"]["mean"] - first["state"]["mean"], 1)
    return out


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
