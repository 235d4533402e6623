"""The hour-of-week engagement fold of best send time (see :mod:`pipeline.core.sendtime`).

**Hour of week** (``how``): ``weekday * 24 + hour`` in the person's local time
(Monday 00:00-00:59 is 0, Sunday 23:00-23:59 is 167). **Engagement** on a
channel ``c`` is an event named ``c_opened`` or ``c_clicked``; closed sessions
count in the ``"*"`` histogram at the hour they started.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pipeline.core.facts import Fact
from pipeline.core.localtime import local_time

HOURS = 168
ANY = "*"  # the all-channel histogram (sessions) and prior
ENGAGEMENT_SUFFIXES = ("_opened", "_clicked")
#: What a session counts for, on every channel, against one engagement.
SESSION_WEIGHT = 0.5
#: A channel's counts are halved when they pass this (old habits fade; numbers stay small).
MAX_COUNT = 1000


def hour_of_week(ts_ms: int, tz: str | None) -> int:
    """``weekday * 24 + hour`` of ``ts_ms`` in the zone (UTC if unknown or None).

    >>> hour_of_week(1_700_000_000_000, "Europe/Paris")  # Tuesday 23:13 in Paris
    47
    """
    hour, weekday = local_time(ts_ms, tz)
    return weekday * 24 + hour


def engagement_channel(name: str) -> str | None:
    """The channel an event name is an engagement with: ``email_opened`` -> ``email``."""
    for suffix in ENGAGEMENT_SUFFIXES:
        if name.endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)]
    return None


def _bump(hist: dict[str, Any], how: int, weight: float) -> None:
    key = str(how)
    hist[key] = hist.get(key, 0) + weight
    total: float = 0.0
    for n in hist.values():
        total += n
    if total > MAX_COUNT:
        for k in list(hist):
            half = hist[k] / 2
            if half < 0.25:
                del hist[k]
            else:
                hist[k] = half


class EngagementHours:
    """The per-channel hour-of-week engagement fold (module docstring).

    Only built when ``predictions.send_time`` names channels; then the traits
    state has one more key (``"eh"``) and the result one more trait,
    ``engagement_hours`` (``{channel: {how: count}}``, ``"*"`` = sessions).
    """

    key = "eh"

    def __init__(self, channels: Sequence[str]) -> None:
        self.channels = frozenset(channels)

    def initialize(self) -> dict[str, dict[str, Any]]:
        return {}

    def aggregate_at(self, state: dict[str, Any], fact: Fact, tz: str | None) -> dict[str, Any]:
        """Fold one event; ``tz`` is the event's zone, else the person's known one."""
        channel = engagement_channel(fact.name)
        if channel is None or channel not in self.channels:
            return state
        hist = state.get(channel)
        if hist is None:
            hist = state[channel] = {}
        _bump(hist, hour_of_week(fact.ts, tz), 1)
        return state

    def aggregate(self, state: dict[str, Any], fact: Fact) -> dict[str, Any]:
        return self.aggregate_at(state, fact, fact.tz)

    def aggregate_session(self, state: dict[str, Any], start_ms: int, tz: str | None) -> Any:
        hist = state.get(ANY)
        if hist is None:
            hist = state[ANY] = {}
        _bump(hist, hour_of_week(start_ms, tz), 1)
        return state

    def merge(self, a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for channel in sorted(set(a) | set(b)):
            hist: dict[str, Any] = {}
            for side in (a.get(channel) or {}, b.get(channel) or {}):
                for k, n in side.items():
                    hist[k] = hist.get(k, 0) + n
            out[channel] = hist
        return out

    def result(self, state: dict[str, Any], as_of_ms: int) -> dict[str, Any]:
        return {
            "engagement_hours": {
                ch: {k: hist[k] for k in sorted(hist, key=int)}
                for ch, hist in sorted(state.items())
            }
        }
