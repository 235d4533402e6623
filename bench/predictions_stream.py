"""The synthetic months' evaluation (:mod:`bench.predictions_synthetic`): replay, training, cost.

The data, the in-process replay (what ``pulse replay --out`` runs), ``pulse
train`` as a subprocess, the model and baselines rescored on the test
examples, and the scoring cost (predictions off, on, and with segments on the
scores).
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import yaml

from pipeline.core.events import Event
from pipeline.tools import synthetic, synthetic_predictive, train_examples
from pipeline.tools.replay import replay_events

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


def check_scores(events: Sequence[Event], topology: str, model_files: Sequence[Path]) -> Any:
    """Replay again with the trained models: do the profiles' scores equal the offline score
    of the training example snapshot at the same session close (same person and time)?"""
    from pipeline.core.scoring import load_model, score

    topo = load_topology(topology, True)
    put_models(topo, model_files)
    outputs, _ = replay(events, topo)
    models = {
        f.name.removesuffix(".model.json"): load_model(json.loads(f.read_text()))
        for f in model_files
        if f.name.removesuffix(".model.json") in TASKS
    }
    scores = {
        (o.record["person_id"], o.record["as_of_ms"]): o.record.get("scores") or {}
        for o in outputs
        if o.topic == "profiles"
    }
    compared = equal = unmatched = 0
    worst = 0.0
    for o in outputs:
        if o.topic != "training." + TASKS[0]:
            continue
        got = scores.get((o.record["person"], o.record["scored_at_ms"]))
        if not got:
            unmatched += 1
            continue
        for task, model in models.items():
            diff = abs(score(model, o.record["features"]).probability - got[task]["probability"])
            worst = max(worst, diff)
            compared += 1
            equal += diff == 0.0
    return {"compared": compared, "equal": equal, "max_diff": worst, "unmatched": unmatched}
