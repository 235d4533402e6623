"""Trait folds one by one, merge == aggregate over the union, and the behavior operator."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest

from pipeline.contract.avro import SCHEMA_DIR
from pipeline.contract.topics import encode_output
from pipeline.core.behavior import BehaviorOperator
from pipeline.core.engine import MemoryStore, Processor
from pipeline.core.events import Event
from pipeline.core.facts import Fact, fact_of
from pipeline.core.folds import (
    DAY_MS,
    HOUR_MS,
    Activity,
    CartValue,
    Coupons,
    LocalClock,
    Orders,
    SessionShares,
    WindowCounts,
    local_time,
)
from pipeline.core.interest import Interest
from pipeline.core.sessions import SessionWindows
from pipeline.core.traits import Traits, TraitsConfig, traits_of
from pipeline.tools.replay import replay_events
from pipeline.worker.records import decode_state, encode_state

MIN = 60_000
T0 = 1_789_999_200_000  # 2026-09-21 14:00 UTC, a Monday; a whole hour
assert T0 % HOUR_MS == 0


def fact(
    ts: int,
    name: str = "page_viewed",
    mid: str | None = None,
    *,
    tz: str | None = None,
    cart: float | None = None,
    revenue: float | None = None,
    coupon: bool = False,
    items: tuple[tuple[str | None, str | None], ...] = (),
) -> Fact:
    return Fact(ts, mid or f"m{ts}-{name}", name, tz, cart, revenue, coupon, items, None)


def run(fold: Any, facts: list[Fact]) -> Any:
    state = fold.initialize()
    for f in sorted(facts, key=lambda f: (f.ts, f.mid)):  # event-time order
        state = fold.aggregate(state, f)
    return state


# -- each fold -----------------------------------------------------------------------


def test_activity() -> None:
    s = run(Activity(), [fact(T0 + 5, "a"), fact(T0, "b"), fact(T0 + 9, "a")])
    assert Activity().result(s, T0 + 100) == {
        "first_seen_ms": T0,
        "last_seen_ms": T0 + 9,
        "recency_ms": 91,
        "events_total": 3,
        "event_counts_total": {"a": 2, "b": 1},
    }
    empty = Activity().result(Activity().initialize(), T0)
    assert (empty["first_seen_ms"], empty["recency_ms"], empty["events_total"]) == (None, None, 0)


@pytest.mark.parametrize(
    ("event_offsets_ms", "as_of_offset_ms", "expected"),
    [
        # as_of is rounded up to the grid: everything up to as_of counts
        ([0], 1, {"1h": 1, "1d": 1, "7d": 1, "30d": 1}),
        ([0, 30 * MIN], 31 * MIN, {"1h": 2, "1d": 2, "7d": 2, "30d": 2}),
        # 1h by the minute: [e - 1h, as_of) with e = as_of rounded up to the minute
        ([0], HOUR_MS, {"1h": 1, "1d": 1, "7d": 1, "30d": 1}),
        ([0], HOUR_MS + 1, {"1h": 0, "1d": 1, "7d": 1, "30d": 1}),
        ([61 * MIN], 2 * HOUR_MS + MIN, {"1h": 1, "1d": 1, "7d": 1, "30d": 1}),
        ([61 * MIN], 2 * HOUR_MS + MIN + 1, {"1h": 0, "1d": 1, "7d": 1, "30d": 1}),
        ([59 * MIN], 2 * HOUR_MS - 1, {"1h": 0, "1d": 1, "7d": 1, "30d": 1}),
        ([0], DAY_MS + 1, {"1h": 0, "1d": 0, "7d": 1, "30d": 1}),
        ([0], 7 * DAY_MS + 1, {"1h": 0, "1d": 0, "7d": 0, "30d": 1}),
        ([0], 31 * DAY_MS, {"1h": 0, "1d": 0, "7d": 0, "30d": 0}),
    ],
)
def test_window_counts(
    event_offsets_ms: list[int], as_of_offset_ms: int, expected: dict[str, int]
) -> None:
    fold = WindowCounts()
    s = run(fold, [fact(T0 + off, "x") for off in event_offsets_ms])
    got = fold.result(s, T0 + as_of_offset_ms)
    assert {k: got[f"counts_{k}"].get("x", 0) for k in expected} == expected


def test_window_counts_state_is_bounded() -> None:
    fold = WindowCounts()
    s = run(fold, [fact(T0 + i * 7 * MIN, "x") for i in range(20_000)])  # ~97 days
    assert [len(s[level]) for level in ("m", "h", "d")] <= [61, 169, 31]
    r = fold.result(s, T0 + 20_000 * 7 * MIN)
    assert r["counts_1h"]["x"] in (8, 9)


def test_local_clock_uses_the_persons_zone() -> None:
    fold = LocalClock()
    # 14:00 UTC = 16:00 in Paris (summer time), Monday; 23:30 UTC Monday = Tuesday 01:30 Paris
    s = run(
        fold,
        [
            fact(T0, tz="Europe/Paris"),
            fact(T0 + 9 * HOUR_MS + 30 * MIN),
            fact(T0 + DAY_MS, tz="Not/AZone"),
        ],
    )
    r = fold.result(s, T0)
    assert (r["hour_histogram"][16], r["hour_histogram"][1]) == (1, 1)
    assert r["hour_histogram"][14] == 1  # an unknown zone name falls back to UTC
    assert r["weekday_histogram"] == [1, 2, 0, 0, 0, 0, 0]
    assert r["timezone"] == "Not/AZone"  # the latest zone the person sent
    assert local_time(T0, None) == (14, 0)


def test_orders_recency_frequency_monetary() -> None:
    fold = Orders()
    s = run(
        fold,
        [
            fact(T0, "order_completed", revenue=10.0),
            fact(T0 + 5, "order_completed", revenue=30.0),
            fact(T0 + 6, "page_viewed"),
        ],
    )
    assert fold.result(s, T0 + 10) == {
        "orders_total": 2,
        "revenue_total": 40.0,
        "average_order_value": 20.0,
        "last_order_ms": T0 + 5,
        "order_recency_ms": 5,
    }
    assert fold.result(fold.initialize(), T0)["average_order_value"] is None


def test_coupons_and_conversion_with_and_without() -> None:
    fold = Coupons()
    s = run(
        fold,
        [
            fact(T0, "checkout_started", coupon=True),
            fact(T0 + 1, "order_completed", coupon=True),
            fact(T0 + 2, "checkout_started"),
            fact(T0 + 3, "checkout_started"),
            fact(T0 + 4, "order_completed"),
            fact(T0 + 5, "coupon_applied", coupon=True),
        ],
    )
    assert fold.result(s, T0) == {
        "coupon_uses": 3,
        "orders_with_coupon": 1,
        "orders_without_coupon": 1,
        "conversion_with_coupon": 1.0,
        "conversion_without_coupon": 0.5,
        "coupon_order_share": 0.5,
    }


def test_cart_value() -> None:
    fold = CartValue()
    s = run(
        fold,
        [
            fact(T0, "product_added", cart=10.0),
            fact(T0 + 1, "cart_viewed", cart=50.0),
            fact(T0 + 2, "page_viewed"),
        ],
    )
    assert fold.result(s, T0) == {"cart_value_avg": 30.0, "cart_value_max": 50.0}


def test_interest_decays_by_half_life_and_counts_repeat_views() -> None:
    fold = Interest()
    views = [fact(T0 + i, "product_viewed", items=(("p1", "shoes"),)) for i in range(3)]
    s = run(fold, [*views, fact(T0 + 10, "product_added", items=(("p2", "bags"),))])
    now = fold.result(s, T0 + 10)
    assert now["product_interest"]["p2"] == 3.0
    assert now["product_interest"]["p1"] == pytest.approx(3.0, rel=1e-6)
    assert (now["repeat_views"], now["max_repeat_views"]) == ({"p1": 3}, 3)
    later = fold.result(s, T0 + 10 + 7 * DAY_MS)
    assert later["category_interest"]["bags"] == pytest.approx(1.5)
    assert list(later["category_interest"]) == ["bags", "shoes"]  # highest first
    assert fold.result(s, T0 + 60 * DAY_MS)["product_interest"] == {}  # below the floor


def test_interest_prunes_below_floor_and_caps_entries() -> None:
    fold = Interest(max_entries=3)
    facts = [fact(T0 + i * HOUR_MS, "product_viewed", items=((f"p{i}", None),)) for i in range(10)]
    facts.append(fact(T0 + 40 * DAY_MS, "product_viewed", items=(("new", None),)))
    s = run(fold, facts)
    assert set(s["p"]) == {"new"}  # the rest decayed below the floor and were pruned
    s = run(fold, facts[:10])
    assert len(s["p"]) <= 3 * 2 + 1


def test_session_shares_in_local_time() -> None:
    fold = SessionShares()
    s = fold.initialize()
    s = fold.aggregate_session(s, T0 + 5 * HOUR_MS, "Europe/Paris")  # Mon 21:00 Paris: night
    s = fold.aggregate_session(s, T0 + 5 * DAY_MS, None)  # Saturday 14:00 UTC: weekend
    s = fold.aggregate_session(s, T0, "UTC")
    s = fold.aggregate_session(s, T0 + 6 * HOUR_MS + 59 * MIN, "UTC")  # 20:59: not night
    assert fold.result(s, T0) == {
        "sessions_total": 4,
        "sessions_night_share": 0.25,
        "sessions_weekend_share": 0.25,
    }


# -- merge is aggregate over the union -----------------------------------------------

PARIS, NY = "Europe/Paris", "America/New_York"
MIXED = [  # every event carries its zone: see LocalClock's note on merge
    fact(T0, "product_viewed", tz=PARIS, items=(("p1", "shoes"),)),
    fact(T0 + 3 * MIN, "product_viewed", tz=PARIS, items=(("p1", "shoes"),)),
    fact(T0 + HOUR_MS, "product_added", tz=PARIS, cart=40.0, items=(("p2", "bags"),)),
    fact(T0 + 2 * HOUR_MS, "checkout_started", tz=PARIS, cart=60.0, coupon=True),
    fact(T0 + 2 * HOUR_MS + 1, "order_completed", tz=PARIS, cart=60.0, revenue=55.0, coupon=True),
    fact(T0 + 3 * DAY_MS, "checkout_started", tz=NY, cart=20.0),
    fact(T0 + 9 * DAY_MS, "product_viewed", tz=NY, items=(("p1", "shoes"), ("p3", None))),
    fact(T0 + 9 * DAY_MS + 1, "order_completed", tz=NY, revenue=20.0),
]
SPLITS = [[0, 2, 4, 6], [1, 3, 5, 7], [0], [], [7, 6, 5]]


def _close(a: Any, b: Any) -> bool:
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_close(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(_close(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float) or isinstance(b, float):
        return math.isclose(a, b, rel_tol=1e-9)
    return bool(a == b)


FOLDS = [
    Activity(),
    WindowCounts(),
    LocalClock(),
    Orders(),
    Coupons(),
    CartValue(),
    Interest(),
    Traits(),
]


@pytest.mark.parametrize("fold", FOLDS, ids=lambda f: type(f).__name__)
@pytest.mark.parametrize("left", SPLITS)
def test_merge_equals_aggregate_over_the_union(fold: Any, left: list[int]) -> None:
    a_facts = [MIXED[i] for i in left]
    b_facts = [f for i, f in enumerate(MIXED) if i not in left]
    a, b = run(fold, a_facts), run(fold, b_facts)
    a_before, b_before = json.dumps(a), json.dumps(b)
    merged = fold.merge(a, b)
    assert (json.dumps(a), json.dumps(b)) == (a_before, b_before)  # inputs untouched
    union = run(fold, MIXED)
    as_of = T0 + 10 * DAY_MS
    assert _close(fold.result(merged, as_of), fold.result(union, as_of))
    assert _close(fold.result(fold.merge(b, a), as_of), fold.result(union, as_of))


def test_traits_result_is_the_documented_list() -> None:
    schema = json.loads((SCHEMA_DIR / "profile.avsc").read_text())
    traits_fields = [f["name"] for f in schema["fields"][4]["type"]["fields"]]
    t = Traits(TraitsConfig(send_channels=("email",), recent_products=True))  # predictions on
    assert sorted(t.result(run(t, MIXED), T0 + 10 * DAY_MS)) == sorted(traits_fields)
    plain = Traits()  # without predictions: the optional two are absent
    r = plain.result(run(plain, MIXED), T0 + 10 * DAY_MS)
    assert sorted(r) == sorted(set(traits_fields) - {"engagement_hours", "purchased_products"})


def test_traits_config_validates_itself() -> None:
    with pytest.raises(ValueError, match="night_from_hour"):
        TraitsConfig(night_from_hour=24)
    with pytest.raises(ValueError, match="floor"):
        TraitsConfig(interest_floor=0)
    with pytest.raises(ValueError, match="shorter than the session gap"):
        BehaviorOperator(idle_ttl_ms=MIN)


# -- the behavior operator -----------------------------------------------------------


def ev(
    mid: str, at_min: float, name: str = "page_viewed", person: str = "u1", **props: Any
) -> Event:
    return Event(
        message_id=mid,
        type="track",
        event=name,
        user_id=person,
        timestamp_ms=T0 + int(at_min * MIN),
        properties=props,
        context={"timezone": "Europe/Paris"},
    )


def test_profile_is_as_of_session_close_and_excludes_later_events() -> None:
    op = BehaviorOperator(SessionWindows(inactivity_gap_ms=30 * MIN))
    events = [
        ev("a", 0),
        ev("b", 10, "order_completed", revenue=50.0),
        ev("c", 45),
        ev("d", 70),
    ]  # c is after the first session closes (at 40)
    outs = replay_events(events, [op], allowed_lateness_ms=60 * MIN)
    topics = [o.topic for o in outs]
    assert topics == ["sessions", "profiles", "sessions", "profiles", "persons.evicted"]
    first = outs[1].record
    assert first["as_of_ms"] == T0 + 40 * MIN
    assert first["traits"]["events_total"] == 2
    assert first["traits"]["revenue_total"] == 50.0
    assert first["traits"]["sessions_total"] == 1
    assert first["traits"]["recency_ms"] == 30 * MIN
    second = outs[3].record["traits"]
    assert (second["events_total"], second["sessions_total"]) == (4, 2)
    for out in outs:
        encode_output(out.topic, out.record)  # every record fits its Avro schema


def test_idle_person_is_evicted_on_the_watermark_with_a_record() -> None:
    op = BehaviorOperator(idle_ttl_ms=2 * DAY_MS)
    store = MemoryStore()
    proc = Processor([op], allowed_lateness_ms=0, store=store)
    proc.process(ev("a", 0))
    proc.process(ev("b", 1))
    assert [o.topic for o in proc.process(ev("x", 2 * 24 * 60, person="other"))] == [
        "sessions",
        "profiles",
    ]
    outs = proc.process(ev("y", 2 * 24 * 60 + 1, person="other"))
    assert [o.record for o in outs if o.topic == "persons.evicted"] == [
        {
            "eviction_id": outs[-1].record["eviction_id"],
            "person_id": "u1",
            "reason": "idle_ttl",
            "idle_ttl_ms": 2 * DAY_MS,
            "evicted_at_ms": T0 + MIN + 2 * DAY_MS,
            "first_seen_ms": T0,
            "last_seen_ms": T0 + MIN,
            "events_total": 2,
            "sessions_total": 1,
        }
    ]
    assert "u1" not in store.data
    proc.process(ev("c", 5 * 24 * 60))  # coming back starts from zero
    assert traits_of(store.data["u1"]) == {}  # nothing final yet: the event is still buffered


def test_traits_of_reads_person_state() -> None:
    store = MemoryStore()
    proc = Processor([BehaviorOperator()], allowed_lateness_ms=0, store=store)
    proc.process(ev("a", 0, "order_completed", revenue=12.5))
    proc.process(ev("b", 1))
    got = traits_of(store.data["u1"], T0 + 2 * MIN)
    assert (got["orders_total"], got["events_total"], got["timezone"]) == (1, 1, "Europe/Paris")
    assert traits_of(None) == traits_of({}) == {}


class JsonStore(MemoryStore):
    """Stores encoded bytes, like the worker's RocksDB table."""

    def __init__(self) -> None:
        super().__init__()
        self.raw: dict[str, bytes] = {}

    def load(self, person_id: str) -> dict[str, Any] | None:
        raw = self.raw.get(person_id)
        return None if raw is None else decode_state(raw)

    def save(self, person_id: str, state: dict[str, Any] | None) -> None:
        if state is None:
            self.raw.pop(person_id, None)
        else:
            self.raw[person_id] = encode_state(state)

    def items(self) -> Any:
        return [(k, decode_state(v)) for k, v in self.raw.items()]


def test_json_encoded_state_gives_the_same_outputs() -> None:
    events = [
        ev(
            f"m{i}",
            i * 7.0 % 200,
            ["product_viewed", "order_completed"][i % 2],
            person=f"u{i % 3}",
            product_id=f"p{i % 4}",
            revenue=float(i),
        )
        for i in range(40)
    ]
    outs = []
    for store in (MemoryStore(), JsonStore()):
        proc = Processor([BehaviorOperator()], allowed_lateness_ms=300 * MIN, store=store)
        got = [o for e in events for o in proc.process(e)] + proc.advance_to(2**62)
        outs.append(got)
    assert outs[0] == outs[1]


def test_behavior_merge_is_the_union() -> None:
    op = BehaviorOperator()
    left = [ev("a", 0, "product_viewed", product_id="p1"), ev("b", 50)]
    right = [ev("c", 25, "order_completed", revenue=5.0), ev("d", 200)]

    def slice_of(events: list[Event]) -> Any:
        state = None
        for e in events:
            state, _ = op.on_event(state, e, "u", T0 - 1)
        return state

    merged = op.merge(slice_of(left), slice_of(right))
    union = slice_of(left + right)
    assert merged == union
    assert op.merge(None, union) is union
    _, outs = op.on_watermark(merged, "u", 2**62)
    _, outs2 = op.on_watermark(union, "u", 2**62)
    assert [o.record for o in outs] == [o.record for o in outs2]


def test_fact_of_reads_products_and_cart() -> None:
    e = Event(
        message_id="m",
        type="track",
        event="checkout_started",
        user_id="u",
        timestamp_ms=T0,
        properties={
            "total": 12,
            "coupon": "X",
            "products": [{"product_id": "p1", "category": "c1"}, {"sku": 7}, "junk"],
        },
    )
    f = fact_of(e)
    assert (f.cart, f.revenue, f.coupon, f.items) == (12.0, None, True, (("p1", "c1"), ("7", None)))


def test_totals_are_the_two_totals_of_the_full_result() -> None:
    t = Traits()
    state = t.initialize()
    for i, name in enumerate(["product_viewed", "order_completed", "product_viewed"]):
        t.aggregate(state, Fact(i * 1_000, f"m{i}", name, None, None, 1.0, False, (), None))
    t.aggregate_session(state, 0, "UTC")
    result = t.result(state, 10_000)
    assert t.totals(state) == (result["events_total"], result["sessions_total"]) == (3, 1)
