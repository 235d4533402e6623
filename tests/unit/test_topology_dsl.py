"""Topology files: each construct through the pure core, and validation errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from pipeline.core.events import Event
from pipeline.errors import ConfigError
from pipeline.extensions import predicate
from pipeline.tools.replay import replay_events
from pipeline.topology.dsl import Topology, load_topology

ROOT = Path(__file__).resolve().parents[2]
MIN = 60_000
HOUR = 60 * MIN
T0 = 1_790_000_000_000  # 2026-09-21T12:53:20Z (a Monday)


def topo(text: str) -> Topology:
    return load_topology("t.yaml", text)


def ev(mid: str, name: str, at_min: float, person: str = "u1", **props: Any) -> Event:
    return Event(
        message_id=mid,
        type="track",
        event=name,
        user_id=person,
        timestamp_ms=T0 + int(at_min * MIN),
        properties=props,
        context={"timezone": "UTC"},
    )


def rule_outputs(t: Topology, events: list[Event]) -> list[Any]:
    outs = replay_events(events, t.operators, allowed_lateness_ms=0, stage=t.stage)
    return [o for o in outs if o.topic in ("triggers", "triggers.suppressed")]


def run(t: Topology, events: list[Event]) -> list[tuple[str, str, str]]:
    outs = replay_events(events, t.operators, allowed_lateness_ms=0, stage=t.stage)
    keep = ("triggers", "triggers.suppressed", "segments")
    return [
        (
            o.topic,
            o.record.get("rule") or o.record.get("segment"),
            o.record["event_ids"][-1] if "event_ids" in o.record else o.record["change"],
        )
        for o in outs
        if o.topic in keep
    ]


def test_absence_with_destinations_and_predicate() -> None:
    t = topo("""
triggers:
  checkout_abandoned:
    absence: {start: checkout_started, missing: order_completed, within: 30m}
    where: {properties.value: {gt: 50}}
    destinations: [email]
""")
    events = [
        ev("c1", "checkout_started", 0, value=80),
        ev("c2", "checkout_started", 0, "u2", value=10),
    ]
    outs = [
        o
        for o in replay_events(events, t.operators, allowed_lateness_ms=0, stage=t.stage)
        if o.topic in ("triggers", "activations.email")
    ]
    assert [(o.topic, o.key) for o in outs] == [("triggers", "u1"), ("activations.email", "u1")]
    trigger, activation = (o.record for o in outs)
    assert activation["source_id"] == trigger["trigger_id"]
    assert activation["kind"] == "trigger"
    assert activation["payload"]["value"] == 80


def test_repetition_same_item_unless() -> None:
    t = topo("""
triggers:
  revisit:
    repetition:
      {event: product_viewed, at_least: 2, within: 1d, same: product_id, unless: checkout_started}
""")
    views = [
        ev("v1", "product_viewed", 0, product_id="a"),
        ev("v2", "product_viewed", 5, product_id="b"),
        ev("v3", "product_viewed", 10, product_id="a"),
        ev("v4", "product_viewed", 20, product_id="a"),
    ]
    assert run(t, views) == [("triggers", "revisit", "v3")]  # once per item per window
    with_checkout = [views[0], ev("c", "checkout_started", 2), views[2]]
    assert run(t, with_checkout) == []
    too_far = [views[0], ev("v9", "product_viewed", 24 * 60 + 1, product_id="a")]
    assert run(t, too_far) == []


def test_milestone_fires_once_ever() -> None:
    t = topo("triggers:\n  first_purchase:\n    milestone: Order Completed\n")
    events = [
        ev("o1", "order_completed", 0),
        ev("o3", "order_completed", 1, "u2"),
        ev("o2", "order_completed", 60),
    ]
    assert run(t, events) == [
        ("triggers", "first_purchase", "o1"),
        ("triggers", "first_purchase", "o3"),
    ]


def test_immediate_with_local_hour_predicate() -> None:
    t = topo("""
triggers:
  night_add:
    immediate: product_added
    where: {local_hour: {gte: 21}, properties.price: {gte: 200}}
""")
    # T0 is 12:53 UTC; +8h07m is 21:00 UTC
    events = [
        ev("a1", "product_added", 0, price=300),
        ev("a2", "product_added", 8 * 60 + 7, price=300),
        ev("a3", "product_added", 8 * 60 + 8, price=20),
    ]
    assert run(t, events) == [("triggers", "night_add", "a2")]


def test_caps_suppress_with_reason_and_quiet_hours() -> None:
    t = topo("""
triggers:
  added:
    immediate: product_added
    channel: push
caps:
  limits:
    - {name: push_2_per_hour, channel: push, max: 2, per: 1h}
  quiet_hours: {from: 0, to: 6}
""")
    events = [ev(f"a{i}", "product_added", i) for i in range(3)] + [ev("a9", "product_added", 70)]
    outs = rule_outputs(t, events)
    assert [(o.topic, o.record["event_ids"][0]) for o in outs] == [
        ("triggers", "a0"),
        ("triggers", "a1"),
        ("triggers.suppressed", "a2"),
        ("triggers", "a9"),
    ]
    assert outs[2].record["reason"] == "cap:push_2_per_hour"
    night = [ev("n1", "product_added", 12 * 60)]  # 00:53 UTC
    (out,) = rule_outputs(t, night)
    assert out.record["reason"] == "quiet_hours"


def test_fatigue_lowers_caps() -> None:
    t = topo("""
triggers:
  added: {immediate: product_added, channel: email}
caps:
  limits: [{name: email_2, channel: email, max: 2, per: 1d}]
  fatigue: {events: [email_dismissed], at_least: 2, within: 7d, factor: 0.5}
""")
    events = [
        ev("d1", "email_dismissed", 0),
        ev("d2", "email_dismissed", 1),
        ev("a1", "product_added", 2),
        ev("a2", "product_added", 3),
    ]
    outs = rule_outputs(t, events)
    assert [(o.topic, o.record.get("reason")) for o in outs] == [
        ("triggers", None),
        ("triggers.suppressed", "cap:email_2 (fatigue)"),
    ]


def test_custom_predicate_registered_by_name() -> None:
    @predicate("is_big_spender")
    def big(facts: Any) -> bool:
        return bool(facts.event.properties.get("value", 0) > 1000)

    t = topo(
        "triggers:\n  vip:\n    immediate: checkout_started\n    where: {custom: is_big_spender}\n"
    )
    assert run(
        t, [ev("c1", "checkout_started", 0, value=5), ev("c2", "checkout_started", 1, value=5000)]
    ) == [("triggers", "vip", "c2")]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "triggers:\n  a:\n    absence: {start: x, missing: y, within: thirty}\n",
            "t.yaml:3: triggers.a.absence.within: expected a duration like 30m",
        ),
        (
            "triggers:\n  a:\n    absence: {start: x, within: 5m}\n",
            "t.yaml:3: triggers.a.absence.missing: expected this field",
        ),
        (
            "triggers:\n  a:\n    immediate: x\n    wher: {}\n",
            "t.yaml:4: triggers.a.wher: expected one of",
        ),
        (
            "triggers:\n  a:\n    immediate: x\n    where: {properties.v: {bigger: 3}}\n",
            "t.yaml:4: triggers.a.where.properties.v.bigger: expected one of eq",
        ),
        (
            "triggers:\n  a:\n    immediate: x\n    where: {custom: nope}\n",
            "t.yaml:4: triggers.a.where.custom: expected a registered predicate",
        ),
        (
            "triggers:\n  a:\n    repetition: {event: x, at_least: 1, within: 1h}\n",
            "t.yaml:3: triggers.a.repetition.at_least: expected an integer >= 2",
        ),
        (
            "caps:\n  quiet_hours: {from: 25, to: 3}\n",
            "t.yaml:2: caps.quiet_hours.from: expected an hour",
        ),
        ("triggers: [1, 2]\n", "t.yaml:1: triggers: expected a mapping"),
        ("triggers:\n  a: {immediate: x, where: {segment: ghost}}\n", "unknown segment 'ghost'"),
        ("triggers:\n  a:\n   - b\n  c: d: e\n", "not valid YAML"),
    ],
)
def test_errors_name_file_line_field_and_expectation(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=None) as info:
        topo(text)
    assert message in str(info.value)


def test_unknown_event_name_is_a_warning() -> None:
    t = topo("triggers:\n  a:\n    milestone: order_complete\n")
    (warning,) = t.warnings
    assert "t.yaml:3" in warning
    assert "order_complete" in warning
    assert (
        topo("events: [order_complete]\ntriggers:\n  a:\n    milestone: order_complete\n").warnings
        == ()
    )


@pytest.mark.parametrize("name", sorted(p.name for p in (ROOT / "topologies").glob("*.yaml")))
def test_shipped_topologies_load_without_warnings(name: str) -> None:
    t = load_topology(ROOT / "topologies" / name)
    assert t.stage.triggers
    assert t.warnings == ()
