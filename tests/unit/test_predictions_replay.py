"""``pulse replay --models``: the stage scores with model files, as a worker with pulse.models."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from pipeline.cli.main import main
from pipeline.core.events import Event
from pipeline.core.predictions import FEATURE_NAMES

MIN = 60_000
T0 = 1_790_000_000_000
TOPOLOGY = """
predictions:
  tasks:
    buy_2h: {outcome: order_completed, horizon: 2h}
segments:
  likely_buyer:
    where: {score.buy_2h: {gte: 0.5}}
    destinations: [ads]
"""


def model(task: str = "buy_2h") -> dict[str, Any]:
    """A logistic model on views in the last 7 days: p >= 0.5 from the first view."""
    return {
        "format": "pulse-model",
        "version": 1,
        "task": task,
        "features": ["views_7d"],
        "kind": "logistic",
        "logistic": {"intercept": -1.0, "coef": [3.0], "mean": [0.0], "scale": [1.0]},
        "percentiles": [i / 100 for i in range(1, 100)],
    }


def write(tmp_path: Path) -> tuple[Path, Path]:
    events = [
        Event(message_id=f"m{i}", type="track", event=name, user_id="u1",
              timestamp_ms=T0 + at * MIN, properties={"product_id": "p1"})
        for i, (name, at) in enumerate([("page_viewed", 0), ("product_viewed", 5),
                                        ("page_viewed", 300)])
    ]  # fmt: skip
    src = tmp_path / "events.jsonl"
    src.write_text("".join(json.dumps(e.to_record()) + "\n" for e in events))
    topo = tmp_path / "t.yaml"
    topo.write_text(TOPOLOGY)
    return src, topo


def segments(out: Path) -> list[dict[str, Any]]:
    path = out / "pulse.segments.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_models_score_in_replay(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src, topo = write(tmp_path)
    doc = tmp_path / "buy.model.json"
    doc.write_text(json.dumps(model()))
    base = ["replay", str(src), "--topology", str(topo), "--partitions", "1"]
    assert main([*base, "--out", str(tmp_path / "none")]) == 0
    assert "reads score.buy_2h but no model" in capsys.readouterr().err
    assert segments(tmp_path / "none") == []
    assert main([*base, "--out", str(tmp_path / "scored"), "--models", str(doc)]) == 0
    assert "model buy_2h" in capsys.readouterr().err
    entered = [r for r in segments(tmp_path / "scored") if r["change"] == "entered"]
    assert [r["segment"] for r in entered] == ["likely_buyer"]
    assert entered[0]["event_time_ms"] == T0 + 5 * MIN  # at the product view
    assert "views_7d" in FEATURE_NAMES


def test_a_broken_model_file_is_an_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src, topo = write(tmp_path)
    doc = tmp_path / "bad.json"
    doc.write_text(json.dumps({**model(), "percentiles": [0.5]}))
    assert main(["replay", str(src), "--topology", str(topo), "--models", str(doc)]) != 0
    assert "bad.json: buy_2h: percentiles must be 99" in capsys.readouterr().err
