"""Online scoring on the real broker: a model published mid-run is used without a restart.

One ``pulse worker`` runs a topology whose rules and segment read
``score.purchase_7d``. Shopper 1 comes while no model is published: no
score, so the scored rule does not fire (the unscored rule does, which shows
the event was decided), and the worker warned on load. Then a model is
published to ``pulse.models`` with ``pulse train``'s publish function; the
worker's model reader loads it in the background (same process). Shopper 2,
who behaves as shopper 1 did, fires the scored rule, enters the segment, and
the activation carries the score. Shopper 1 enters the segment too once
their session closes (a re-check that needs no event of theirs). Shopper 2's
profile on ``pulse.profiles`` carries the score, and eight days on both
shoppers' training examples are on ``pulse.training.purchase_7d`` (JSON, a
topic the worker created); the worker's profile API shows the score.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import pytest

from pipeline.config import Settings
from pipeline.core.events import Event
from tests.integration.helpers import clock_events, produce_events, read_outputs
from tests.integration.runtime_helpers import start_worker, stop_worker
from tests.integration.test_profiles_live import free_port, get, wait_for

pytestmark = pytest.mark.integration

MIN, HOUR = 60_000, 3_600_000
T0 = 1_790_000_000_000
CUTS = [i / 100 for i in range(1, 100)]

TOPOLOGY = """
version: 1
name: scored
triggers:
  added:
    immediate: product_added
  likely_buyer_added:
    immediate: product_added
    where: {score.purchase_7d: {gte: 0.5}}
    destinations: [crm]
segments:
  likely_buyers:
    where: {score.purchase_7d.percentile: {gte: 50}}
predictions:
  tasks:
    purchase_7d: {outcome: order_completed, horizon: 7d}
"""


def model() -> dict[str, Any]:
    """purchase_7d: more than 2 product views in 7 days scores sigmoid(2), else sigmoid(-2)."""
    return {
        "format": "pulse-model",
        "version": 1,
        "task": "purchase_7d",
        "features": ["views_7d"],
        "kind": "gbdt",
        "gbdt": {
            "base": 0.0,
            "trees": [
                {
                    "feature": [0, -1, -1],
                    "threshold": [2.5, 0.0, 0.0],
                    "left": [1, -1, -1],
                    "right": [2, -1, -1],
                    "missing_left": [1, 0, 0],
                    "value": [0.0, -2.0, 2.0],
                }
            ],
        },
        "percentiles": CUTS,
        "trained": {"library": "hand-written for the test"},
    }


def shopper(pid: str, start_ms: int) -> list[Event]:
    events = [
        Event(message_id=f"{pid}-v{i}", type="track", event="product_viewed", user_id=pid,
              timestamp_ms=start_ms + i * MIN, properties={"product_id": f"p{i}"})
        for i in range(3)
    ]  # fmt: skip
    events.append(
        Event(message_id=f"{pid}-a", type="track", event="product_added", user_id=pid,
              timestamp_ms=start_ms + 3 * MIN, properties={"product_id": "p0"})
    )  # fmt: skip
    return events


def fired(got: list[tuple[str, dict[str, Any]]], rule: str) -> set[str]:
    return {r["person_id"] for t, r in got if t == "triggers" and r["rule"] == rule}


def wait_for_log(log: Path, text: str, timeout_s: float) -> str:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        content = log.read_text(errors="replace") if log.exists() else ""
        if text in content:
            return content
        time.sleep(0.3)
    raise AssertionError(
        f"{text!r} not in the worker's log after {timeout_s} s:\n{content[-3000:]}"
    )


def test_a_model_published_mid_run_scores_the_next_decisions(
    settings: Settings, pulse_env: dict[str, str], tmp_path: Path
) -> None:
    from pipeline.tools.train import publish

    topology = tmp_path / "scored.yaml"
    topology.write_text(TOPOLOGY)
    log = tmp_path / "worker.log"
    port = free_port()
    env = {**pulse_env, "PULSE_CORE": "pure", "PULSE_API_PORT": str(port),
           "PULSE_API_HOST": "127.0.0.1"}  # fmt: skip
    produce_events(settings, [])  # creates the input topics
    worker = start_worker(env, log, "--topology", str(topology), "--partitions", "4")
    try:
        content = wait_for_log(log, "models at start", 90)
        assert "rule 'likely_buyer_added' reads score.purchase_7d" in content
        assert "segment 'likely_buyers' reads score.purchase_7d" in content

        # 1. no model: shopper 1's add is decided, the scored rule does not fire
        produce_events(settings, [*shopper("s1", T0), *clock_events(settings, T0 + 10 * MIN)])
        got = read_outputs(settings, ["triggers"], timeout_s=90,
                           until=lambda g: "s1" in fired(g, "added"))  # fmt: skip
        assert "s1" in fired(got, "added")
        assert fired(got, "likely_buyer_added") == set()

        # 2. a model is published while the worker runs; it loads it without a restart
        publish(settings, model())
        wait_for_log(log, "model purchase_7d version", 60)
        assert worker.poll() is None

        # 3. shopper 2, as shopper 1 did: scored, fired, in the segment, score in the payload
        start = T0 + HOUR
        clock = clock_events(settings, start + HOUR, tag="c2")
        produce_events(settings, [*shopper("s2", start), *clock])
        got = read_outputs(
            settings, ["triggers", "segments", "activations.crm"], timeout_s=90,
            until=lambda g: "s2" in fired(g, "likely_buyer_added")
            and any(t == "segments" and r["person_id"] == "s2" for t, r in g)
            and any(t == "activations.crm" for t, _ in g),
        )  # fmt: skip
        assert fired(got, "likely_buyer_added") == {"s2"}
        (crm,) = [r for t, r in got if t == "activations.crm"]
        assert crm["person_id"] == "s2"
        assert crm["payload"]["score.purchase_7d"] == pytest.approx(1 / (1 + math.exp(-2.0)))
        assert crm["payload"]["score.purchase_7d.percentile"] == 88
        assert "s2" in fired(got, "added")
        entered = {(r["person_id"], r["segment"]) for t, r in got if t == "segments"
                   and r["change"] == "entered"}  # fmt: skip
        # shopper 1 enters too, with no event of theirs: re-checked at their session's
        # close (T0 + 33 min), which the watermark passed after the model arrived
        assert entered == {("s1", "likely_buyers"), ("s2", "likely_buyers")}
        # the live profile API shows the score with the model the worker uses now
        url = f"http://127.0.0.1:{port}/v1/persons/s2"
        body = wait_for(lambda: (get(url, token=None)[1] or {}).get("predictions"), 30, url)
        assert body["purchase_7d"]["percentile"] == 88

        # 4. profiles: shopper 2's session closed after the model came, with scores;
        # 8 days on, both shoppers' labels are decided: JSON on pulse.training.purchase_7d
        clock = clock_events(settings, T0 + 8 * 24 * HOUR, tag="c3")
        produce_events(settings, clock)
        got = read_outputs(
            settings, ["profiles", "training.purchase_7d"], timeout_s=90,
            until=lambda g: {r.get("person") for t, r in g if t == "training.purchase_7d"}
            >= {"s1", "s2"}
            and any(t == "profiles" and r["person_id"] == "s2" for t, r in g),
        )  # fmt: skip
        profiles = {r["person_id"]: r for t, r in got if t == "profiles"}
        assert profiles["s2"]["scores"]["purchase_7d"]["percentile"] == 88
        examples = [r for t, r in got if t == "training.purchase_7d"]
        assert {(r["person"], r["label"]) for r in examples} >= {("s1", 0), ("s2", 0)}
        assert all(r["features"]["views_7d"] == 3.0 for r in examples if r["person"] == "s2")
        assert worker.poll() is None  # the same process throughout
    finally:
        stop_worker(worker)
