"""Local time of day in a person's zone, and the two folds that use it.

:func:`local_time` gives the hour and weekday of an event time in an IANA
zone; :class:`LocalClock` keeps hour and weekday histograms of events,
:class:`SessionShares` the share of sessions that start at night or on a
weekend (see :mod:`pipeline.core.folds` for the fold contract).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, tzinfo
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pipeline.core.events import MAX_TIMESTAMP_MS
from pipeline.core.facts import Fact

MINUTE_MS, HOUR_MS, DAY_MS = 60_000, 3_600_000, 86_400_000
QUARTER_MS = 15 * MINUTE_MS


def _ratio(num: float, den: float) -> float | None:
    return num / den if den else None


@lru_cache(maxsize=512)
def zone(name: str | None) -> tzinfo:
    """The ``ZoneInfo`` for an IANA name; UTC for ``None`` or an unknown name."""
    if not name:
        return UTC
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return UTC


def local_time(ts_ms: int, tz_name: str | None) -> tuple[int, int]:
    """``(hour 0-23, weekday 0=Monday)`` of an event time in the named zone.

    >>> local_time(1_700_000_000_000, "Europe/Paris")  # 2023-11-14 23:13 in Paris
    (23, 1)

    Zone offsets are whole quarter hours and change at quarter-hour instants
    (except historical local mean times), so the offset of each (zone, quarter
    hour) is looked up once (:func:`_quarter_offset`); a quarter hour whose
    offset differs at its two ends, or is not whole minutes, asks ``datetime``.
    """
    offset = _quarter_offset(tz_name, ts_ms // QUARTER_MS)
    if offset is None:
        local = datetime.fromtimestamp(ts_ms / 1000, zone(tz_name))
        return local.hour, local.weekday()
    days, ms = divmod(ts_ms + offset, DAY_MS)
    return ms // HOUR_MS, (days + 3) % 7  # 1970-01-01 was a Thursday


def local_day_hour(ts_ms: int, tz_name: str | None) -> tuple[str, int]:
    """``("YYYY-MM-DD", hour)`` of an event time in the named zone (UTC if unknown).

    The same as ``strftime("%Y-%m-%d")`` and ``hour`` of
    :func:`pipeline.core.predicates.local_time` (the time clamped to the
    calendar's range), through the cached quarter-hour offsets of :func:`local_time`::

        >>> local_day_hour(1_700_000_000_000, "Europe/Paris")
        ('2023-11-14', 23)
    """
    clamped = min(max(ts_ms, 0), MAX_TIMESTAMP_MS)
    offset = _quarter_offset(tz_name, clamped // QUARTER_MS)
    if offset is None:
        local = datetime.fromtimestamp(clamped / 1000, zone(tz_name))
        return local.strftime("%Y-%m-%d"), local.hour
    days, ms = divmod(clamped + offset, DAY_MS)
    return _day_name(days), ms // HOUR_MS


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@lru_cache(maxsize=4096)
def _day_name(days: int) -> str:
    """``YYYY-MM-DD`` of the day ``days`` after 1970-01-01."""
    return (_EPOCH + timedelta(days=days)).strftime("%Y-%m-%d")


@lru_cache(maxsize=8192)
def _quarter_offset(tz_name: str | None, quarter: int) -> int | None:
    """The zone's UTC offset (ms) throughout one quarter hour, or None if it changes."""
    tz = zone(tz_name)
    start = quarter * QUARTER_MS
    first = datetime.fromtimestamp(start / 1000, tz).utcoffset()
    last = datetime.fromtimestamp((start + QUARTER_MS - 1) / 1000, tz).utcoffset()
    if first is None or first != last or first.total_seconds() % 60:
        return None
    return int(first.total_seconds()) * 1000


class LocalClock:
    """Hour-of-day and day-of-week histograms in the person's own time zone.

    The zone is the event's ``context.timezone``, else the latest one the person
    sent before it, else UTC. (So ``merge`` equals the union only for events that
    carry their zone: a zone-less event keeps the hour it was given at fold time.)
    State ``{"h": [24 counts], "d": [7 counts, Monday first],
    "z": [ts, zone] | None}``.
    """

    key = "t"

    def initialize(self) -> dict[str, Any]:
        return {"h": [0] * 24, "d": [0] * 7, "z": None}

    def aggregate(self, state: dict[str, Any], fact: Fact) -> dict[str, Any]:
        known = state["z"]
        if fact.tz and (known is None or fact.ts >= known[0]):
            state["z"] = known = [fact.ts, fact.tz]
        hour, weekday = local_time(fact.ts, fact.tz or (known[1] if known else None))
        hours: list[int] = state["h"]
        days: list[int] = state["d"]
        hours[hour] += 1
        days[weekday] += 1
        return state

    def merge(self, a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
        zones = [z for z in (a["z"], b["z"]) if z is not None]
        return {"h": [x + y for x, y in zip(a["h"], b["h"], strict=True)],
                "d": [x + y for x, y in zip(a["d"], b["d"], strict=True)],
                "z": max(zones) if zones else None}  # fmt: skip

    def result(self, state: dict[str, Any], as_of_ms: int) -> dict[str, Any]:
        return {"hour_histogram": list(state["h"]), "weekday_histogram": list(state["d"]),
                "timezone": state["z"][1] if state["z"] else None}  # fmt: skip


class SessionShares:
    """Sessions, and the share that start after ``night_from_hour`` or on a weekend.

    Aggregates *closed sessions* (``aggregate_session``), not events; local time
    of the session start in the session's (or person's) zone. A night session
    starts in ``[night_from_hour:00, 24:00)`` or ``[00:00, night_until_hour:00)``
    ("shops after 9 PM" includes after midnight). State ``[sessions, night, weekend]``.
    """

    key = "s"

    def __init__(self, night_from_hour: int = 21, night_until_hour: int = 5) -> None:
        self.night_from_hour = night_from_hour
        self.night_until_hour = night_until_hour

    def initialize(self) -> list[int]:
        return [0, 0, 0]

    def aggregate(self, state: list[int], fact: Fact) -> list[int]:
        return state  # sessions, not events, feed this fold

    def aggregate_session(self, state: list[int], start_ms: int, tz: str | None) -> list[int]:
        hour, weekday = local_time(start_ms, tz)
        state[0] += 1
        state[1] += hour >= self.night_from_hour or hour < self.night_until_hour
        state[2] += weekday >= 5
        return state

    def merge(self, a: list[int], b: list[int]) -> list[int]:
        return [x + y for x, y in zip(a, b, strict=True)]

    def result(self, state: list[int], as_of_ms: int) -> dict[str, Any]:
        return {"sessions_total": state[0],
                "sessions_night_share": _ratio(state[1], state[0]),
                "sessions_weekend_share": _ratio(state[2], state[0])}  # fmt: skip
