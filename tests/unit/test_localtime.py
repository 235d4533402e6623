"""local_time from cached quarter-hour offsets equals datetime's, DST and odd zones included."""

from __future__ import annotations

from datetime import datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.core.localtime import local_time, zone

ZONES = [None, "", "Not/AZone", "UTC", "Europe/Paris", "America/New_York", "America/St_Johns",
         "Asia/Kathmandu", "Australia/Lord_Howe", "Pacific/Chatham", "Africa/Monrovia",
         "Europe/Dublin", "America/Sao_Paulo"]  # fmt: skip


def reference(ts_ms: int, name: str | None) -> tuple[int, int]:
    local = datetime.fromtimestamp(ts_ms / 1000, zone(name))
    return local.hour, local.weekday()


@settings(max_examples=400, deadline=None)
@given(st.integers(-2_500_000_000_000, 4_000_000_000_000), st.sampled_from(ZONES))
def test_any_time_any_zone(ts_ms: int, name: str | None) -> None:
    assert local_time(ts_ms, name) == reference(ts_ms, name)


def test_every_second_around_dst_changes() -> None:
    # 2026-03-29 01:00 UTC (Paris forward), 2026-11-01 06:00 UTC (New York back),
    # 2026-04-05 15:00 UTC (Lord Howe back half an hour)
    for name, at in (("Europe/Paris", 1_774_746_000_000), ("America/New_York", 1_793_512_800_000),
                     ("Australia/Lord_Howe", 1_775_401_200_000)):  # fmt: skip
        for ts in range(at - 3_600_000, at + 3_600_000, 997):
            assert local_time(ts, name) == reference(ts, name), (name, ts)
