"""The runtime's pure pieces: the partitioner, source lateness, input clocks and idleness."""

from __future__ import annotations

import random

import pytest
from aiokafka.partitioner import DefaultPartitioner

from pipeline.core.clock import NEG_INF_MS
from pipeline.core.events import Event
from pipeline.worker.clocks import (
    ACTIVE,
    IDLE,
    QUIET,
    InputClocks,
    SourceActivity,
    clock_record,
    parse_clock,
)
from pipeline.worker.partitioner import partition_for
from pipeline.worker.source import SourcePartition


def ev(mid: str, t: int, **ids: str) -> Event:
    return Event(message_id=mid, type="track", event="page_viewed", timestamp_ms=t, **ids)


def test_partition_for_matches_the_java_partitioner() -> None:
    java = DefaultPartitioner()
    rnd = random.Random(3)
    for _ in range(2_000):
        key = bytes(rnd.randrange(256) for _ in range(rnd.randrange(0, 24)))
        n = rnd.randrange(1, 13)
        every = list(range(n))
        assert partition_for(key, n) == java(key, every, every)


def test_lateness_is_judged_by_the_source_partitions_own_stream_time() -> None:
    src = SourcePartition(allowed_lateness_ms=100)
    assert src.accept(ev("a", 1_000, user_id="u")).kind == "route"
    assert src.accept(ev("b", 900, user_id="u")).kind == "route"  # within lateness
    late = src.accept(ev("c", 899, user_id="u"))
    assert late.kind == "late"
    assert late.late is not None
    assert late.late.record["watermark_ms"] == 900
    assert src.stream_time_ms == 1_000  # a late event moves nothing
    assert src.accept(ev("a", 2_000, user_id="u")).kind == "duplicate"
    assert src.stream_time_ms == 1_000


def test_a_link_routes_the_anonymous_ids_later_events_to_the_user() -> None:
    src = SourcePartition(allowed_lateness_ms=0)
    assert src.accept(ev("1", 1, anonymous_id="a")).person == "a"
    linked = src.accept(ev("2", 2, anonymous_id="a", user_id="u"))
    assert (linked.person, [a.kind for a in linked.actions]) == ("u", ["link"])
    assert src.accept(ev("3", 3, anonymous_id="a")).person == "u"
    # without identity rules the event names its person
    plain = SourcePartition(allowed_lateness_ms=0, identity=None)
    assert plain.accept(ev("4", 4, anonymous_id="a", user_id="u")).person == "u"


def test_the_watermark_is_the_minimum_over_sources_once_all_were_heard_of() -> None:
    clocks = InputClocks(sources=3, idle_timeout_s=1.0)
    clocks.observe(0, 500, ACTIVE, now=0.0)
    clocks.observe(1, 300, ACTIVE, now=0.0)
    assert clocks.stream_time_ms(now=0.0) == NEG_INF_MS  # source 2 never reported
    clocks.observe(2, 400, ACTIVE, now=0.0)
    assert clocks.stream_time_ms(now=0.0) == 300
    clocks.observe(1, 200, ACTIVE, now=0.0)  # never goes back
    assert clocks.stream_time_ms(now=0.0) == 300


def test_idle_sources_stop_holding_time_back_and_a_quiet_system_decides() -> None:
    clocks = InputClocks(sources=3, idle_timeout_s=1.0)
    clocks.observe(0, 500, ACTIVE, now=0.0)
    clocks.observe(1, 300, IDLE, now=0.0)
    clocks.observe(2, NEG_INF_MS, IDLE, now=0.0)  # an empty partition
    assert clocks.stream_time_ms(now=0.0) == 500
    # every source idle (a pause in production): the smallest time that is known,
    # so records produced after the pause are not made late
    clocks.observe(0, 500, IDLE, now=0.0)
    assert clocks.stream_time_ms(now=0.0) == 300
    for source, time in ((0, 500), (1, 300), (2, NEG_INF_MS)):
        clocks.observe(source, time, QUIET, now=0.0)
    assert clocks.stream_time_ms(now=0.0) == 500  # every source quiet: the largest time


def test_a_source_waking_up_pauses_idle_exclusions_for_one_timeout() -> None:
    clocks = InputClocks(sources=3, idle_timeout_s=1.0)
    clocks.observe(0, NEG_INF_MS, IDLE, now=0.0)
    clocks.observe(1, NEG_INF_MS, IDLE, now=0.0)
    clocks.observe(2, NEG_INF_MS, IDLE, now=0.0)
    # a producer starts writing every partition; source 0's records are seen first
    clocks.observe(0, 10_000, ACTIVE, now=5.0)
    assert clocks.stream_time_ms(now=5.1) == NEG_INF_MS  # 1 and 2 may be about to wake
    clocks.observe(1, 2_000, ACTIVE, now=5.2)
    assert clocks.stream_time_ms(now=5.5) == NEG_INF_MS
    assert clocks.stream_time_ms(now=6.3) == 2_000  # 2 stayed idle past the pause


def test_input_clocks_round_trip_through_a_snapshot() -> None:
    clocks = InputClocks(sources=2, idle_timeout_s=1.0)
    clocks.observe(0, 5, ACTIVE, now=0.0)
    clocks.observe(1, 7, IDLE, now=0.0)
    again = InputClocks(sources=2, idle_timeout_s=1.0)
    again.restore(clocks.snapshot(), now=10.0)
    assert (again.times, again.idle) == (clocks.times, clocks.idle)
    assert again.stream_time_ms(now=10.5) == 5  # paused after a restore: both count
    assert again.stream_time_ms(now=11.5) == 5


@pytest.mark.parametrize(
    ("caught_up", "since_record", "since_wake", "level"),
    [
        (True, 2.0, 2.0, IDLE),
        (True, 6.0, 2.0, QUIET),  # idle, and long enough to be quiet
        (False, 6.0, 6.0, ACTIVE),  # records wait at the broker: never idle
        (True, 0.5, 2.0, ACTIVE),  # a record came lately
        (True, 2.0, 0.5, ACTIVE),  # another source woke up lately
    ],
)
def test_a_source_is_idle_only_when_caught_up_and_without_records(
    caught_up: bool, since_record: float, since_wake: float, level: int
) -> None:
    activity = SourceActivity(last_record=10.0 - since_record)
    assert activity.check(10.0, caught_up, 10.0 - since_wake, 1.0, 5.0) == level
    assert activity.saw_record(11.0) is (level != ACTIVE)  # a record after idleness wakes it


def test_clock_records_round_trip() -> None:
    reports = {0: (5, ACTIVE), 3: (NEG_INF_MS, IDLE), 4: (9, QUIET)}
    assert parse_clock(clock_record(reports)) == reports
