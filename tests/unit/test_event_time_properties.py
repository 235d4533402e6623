"""Event-time properties of sessions and traits (hypothesis).

* sessions never overlap;
* any arrival order within the allowed lateness gives the same outputs
  (sessions, profiles with their traits, evictions);
* no event is lost or counted twice, late ones included;
* two replays give identical bytes, even in processes with different hash seeds.
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.core.behavior import BehaviorOperator
from pipeline.core.events import Event
from pipeline.core.outputs import Output
from pipeline.core.sessions import SessionWindows
from pipeline.tools.replay import load_events, replay_events, write_outputs
from pipeline.topology.operators import default_operators

MIN = 60_000
T0 = 1_790_000_000_000
GAP = 10 * MIN
LATENESS = 15 * MIN
OPS = [BehaviorOperator(SessionWindows(inactivity_gap_ms=GAP), idle_ttl_ms=86_400_000)]
ROOT = Path(__file__).resolve().parents[2]

NAMES = [
    "page_viewed",
    "product_viewed",
    "product_added",
    "checkout_started",
    "order_completed",
    "coupon_applied",
]


@st.composite
def raw_events(draw: st.DrawFn) -> dict[str, Any]:
    name = draw(st.sampled_from(NAMES))
    props: dict[str, Any] = {}
    if name != "page_viewed":
        props["product_id"] = draw(st.sampled_from(["p1", "p2", "p3"]))
        props["category"] = draw(st.sampled_from(["shoes", "bags"]))
    if name in ("product_added", "checkout_started", "order_completed"):
        props["value"] = draw(st.floats(0, 500, allow_nan=False).map(lambda v: round(v, 2)))
    if draw(st.booleans()) and name in ("checkout_started", "order_completed"):
        props["coupon"] = "SAVE10"
    tz = draw(st.sampled_from([None, "Europe/Paris", "America/New_York"]))
    return {
        "person": draw(st.sampled_from(["a", "b", "c"])),
        "ts": T0 + draw(st.integers(0, 180)) * MIN + draw(st.sampled_from([0, 1, 999])),
        "name": name,
        "props": props,
        "context": {"timezone": tz} if tz else {},
        "channel": draw(st.sampled_from([None, "web", "ios"])),
        "jitter": draw(st.integers(0, LATENESS)),
    }


def build(raws: list[dict[str, Any]]) -> list[Event]:
    events = []
    for i, r in enumerate(raws):
        ctx = dict(r["context"])
        if r["channel"]:
            ctx["channel"] = r["channel"]
        events.append(
            Event(
                message_id=f"m{i:03d}",
                type="track",
                event=r["name"],
                user_id=r["person"],
                timestamp_ms=r["ts"],
                properties=r["props"],
                context=ctx,
            )
        )
    return events


def in_time_order(events: list[Event]) -> list[Event]:
    return sorted(events, key=lambda e: (e.timestamp_ms, e.message_id))


def shuffled_within_lateness(events: list[Event], raws: list[dict[str, Any]]) -> list[Event]:
    # arrive at ts + jitter (jitter <= lateness): no event is ever below the watermark
    order = sorted(
        range(len(events)), key=lambda i: (events[i].timestamp_ms + raws[i]["jitter"], i)
    )
    return [events[i] for i in order]


def canonical(outputs: list[Output]) -> list[str]:
    return sorted(json.dumps([o.topic, o.key, o.record], sort_keys=True) for o in outputs)


EVENT_LISTS = st.lists(raw_events(), min_size=1, max_size=40)


@settings(max_examples=150, deadline=None)
@given(EVENT_LISTS)
def test_any_order_within_lateness_gives_the_same_outputs(raws: list[dict[str, Any]]) -> None:
    events = build(raws)
    expected = replay_events(in_time_order(events), OPS, allowed_lateness_ms=LATENESS)
    got = replay_events(shuffled_within_lateness(events, raws), OPS, allowed_lateness_ms=LATENESS)
    assert not [o for o in got if o.topic == "events.late"]
    assert canonical(got) == canonical(expected)
    reverse = replay_events(events[::-1], OPS, allowed_lateness_ms=10**12)  # everything in grace
    assert canonical(reverse) == canonical(expected)


@settings(max_examples=150, deadline=None)
@given(EVENT_LISTS, st.sampled_from([0, LATENESS]))
def test_sessions_never_overlap_and_nothing_is_lost_or_doubled(
    raws: list[dict[str, Any]], lateness: int
) -> None:
    events = build(raws)  # arbitrary arrival order: some events may be late
    outputs = replay_events(events, OPS, allowed_lateness_ms=lateness)
    late = Counter(o.key for o in outputs if o.topic == "events.late")
    sessions: dict[str, list[dict[str, Any]]] = {}
    for o in outputs:
        if o.topic == "sessions":
            sessions.setdefault(o.key, []).append(o.record)
    sent = Counter(e.person_id for e in events)
    for person, n in sent.items():
        mine = sorted(sessions.get(person, []), key=lambda r: r["start_ms"])
        for prev, nxt in itertools.pairwise(mine):
            assert nxt["start_ms"] - prev["end_ms"] >= GAP  # disjoint, and truly separate
        assert sum(r["event_count"] for r in mine) + late[person] == n
        assert sum(sum(r["event_counts"].values()) for r in mine) + late[person] == n
    evicted = [o.record for o in outputs if o.topic == "persons.evicted"]
    assert sum(r["events_total"] for r in evicted) + sum(late.values()) == len(events)
    assert sum(r["sessions_total"] for r in evicted) == sum(len(s) for s in sessions.values())
    ids = [o.record["session_id"] for o in outputs if o.topic == "sessions"]
    assert len(ids) == len(set(ids))


@settings(max_examples=25, deadline=None)
@given(EVENT_LISTS)
def test_two_replays_give_identical_bytes(
    tmp_path_factory: Any, raws: list[dict[str, Any]]
) -> None:
    events = build(raws)
    written = []
    for _ in range(2):
        out = tmp_path_factory.mktemp("replay")
        outputs = replay_events(events, default_operators(), allowed_lateness_ms=LATENESS)
        write_outputs(outputs, prefix="pulse.", out_dir=out, stdout=sys.stdout)
        written.append({p.name: p.read_bytes() for p in sorted(out.iterdir())})
    assert written[0] == written[1]
    assert "pulse.sessions.jsonl" in written[0]


_REPLAY = """
import sys
from pathlib import Path
from pipeline.tools.replay import load_events, replay_events, write_outputs
from pipeline.topology.operators import default_operators
events = load_events(Path(sys.argv[1]))
outputs = replay_events(events, default_operators(), allowed_lateness_ms=60_000)
write_outputs(outputs, prefix="pulse.", out_dir=Path(sys.argv[2]), stdout=sys.stdout)
"""


def test_replay_bytes_do_not_depend_on_the_process(tmp_path: Path) -> None:
    lines = []
    for i in range(60):
        lines.append(
            json.dumps(
                {
                    "messageId": f"m{i}",
                    "userId": f"u{i % 4}",
                    "event": NAMES[i % len(NAMES)],
                    "timestamp": T0 + (i * 7919 % 240) * MIN,
                    "properties": {
                        "product_id": f"p{i % 5}",
                        "category": f"c{i % 3}",
                        "value": i * 1.1,
                        **({"coupon": "X"} if i % 7 == 0 else {}),
                    },
                    "context": {
                        "timezone": ["Europe/Paris", "Asia/Tokyo"][i % 2],
                        "page": {"path": f"/{i % 6}"},
                        "campaign": {"name": f"camp{i % 2}"},
                        "channel": "web",
                    },
                }
            )
        )
    source = tmp_path / "events.jsonl"
    source.write_text("\n".join(lines) + "\n")
    assert len(load_events(source)) == 60
    dumps = []
    for seed in ("1", "2"):
        out = tmp_path / f"out{seed}"
        env = {**os.environ, "PYTHONHASHSEED": seed}
        subprocess.run(
            [sys.executable, "-c", _REPLAY, str(source), str(out)],
            check=True,
            env=env,
            cwd=ROOT,
            capture_output=True,
        )
        dumps.append({p.name: p.read_bytes() for p in sorted(out.iterdir())})
    assert dumps[0] == dumps[1]
    wanted = {"pulse.sessions.jsonl", "pulse.profiles.jsonl", "pulse.persons.evicted.jsonl"}
    assert wanted <= set(dumps[0])
