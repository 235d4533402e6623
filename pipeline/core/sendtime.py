"""Best send time: a person's hour-of-week engagement histogram, shrunk toward the population's.

**Hour of week** (``how``): ``weekday * 24 + hour`` in the person's local time
(Monday 00:00-00:59 is 0, Sunday 23:00-23:59 is 167), from
:func:`pipeline.core.localtime.local_time`.

**Engagement** on a channel ``c`` (``email``, ``push``, ...) is an event named
``c_opened`` or ``c_clicked`` (``email_opened``, ``push_clicked``); every closed
session also counts, at the hour of week it started, with
:data:`SESSION_WEIGHT`, for every channel (someone browsing at 20:00 is
around at 20:00, whatever brought them). :class:`EngagementHours` is the fold
(state ``{"*": {how: n}, "email": {how: n}, ...}``, hours as strings, at most
168 entries per channel; counts are halved when a channel passes
:data:`MAX_COUNT` engagements, so old habits fade and numbers stay small).

**The prior** is model ``send_time`` (``pulse train --task send_time``,
:mod:`pipeline.tools.train_sendtime`), format::

    {"format": "pulse-model", "version": 1, "task": "send_time", "kind": "send_time",
     "send_time": {"strength": 5.0,
                   "hours": {"*": [168 shares summing to 1], "email": [...], "push": [...]}},
     "trained": {...}}

No model: a uniform prior (every hour 1/168).

**The posterior** of channel ``c`` for a person with counts ``n[h]`` (the
channel's engagements plus ``SESSION_WEIGHT`` x sessions), ``N = sum(n)``,
prior ``p[h]`` (the channel's, else ``"*"``, else uniform) and strength ``s``::

    post[h] = (n[h] + s * p[h]) / (N + s)

**Best hour** is the local hour of day whose three-hour neighbourhood
``h-1, h, h+1`` (wrapping around midnight) holds the most posterior mass,
summed over the weekdays (ties: the most at ``h`` itself, then the smallest);
its **confidence** is that mass: the posterior probability that the person's
next engagement falls within +-1 h of it (the hit rate it is evaluated by).
The best hour of *week* is found the same way on the 168 hours. With fewer than
``min_events`` engagements the person's own counts are not used
(``source = "population"``); with no model and fewer than ``min_events``
there is no best hour (``None``: the lookup is missing).

For the delivery time of an activation (``deliver_at: best_hour``),
:func:`send_at` picks, among the instants from the trigger's event time up
to ``max_delay_ms`` later, the start of the local hour with the highest
posterior, skipping quiet hours; the event time itself if the current hour
wins (ties go to the earliest), hours ranked by :func:`send_scores`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pipeline.core.engagement import (
    ANY,
    HOURS,
    SESSION_WEIGHT,
    EngagementHours,
    engagement_channel,
    hour_of_week,
)
from pipeline.core.localtime import HOUR_MS, QUARTER_MS, local_time
from pipeline.core.scoring import table_body
from pipeline.errors import ModelError

TASK = "send_time"
DEFAULT_STRENGTH = 5.0
UNIFORM: tuple[float, ...] = tuple(1.0 / HOURS for _ in range(HOURS))


# -- the prior (model "send_time") ---------------------------------------------------------


@dataclass(frozen=True)
class SendTimePrior:
    """The population's hour-of-week shares per channel (``"*"``: any) and the shrink strength."""

    hours: Mapping[str, tuple[float, ...]]
    strength: float = DEFAULT_STRENGTH

    def of(self, channel: str) -> tuple[float, ...]:
        """The channel's shares, else the all-channel ones, else uniform."""
        found = self.hours.get(channel)
        if found is None:
            found = self.hours.get(ANY)
        return UNIFORM if found is None else found


def load_send_time_model(doc: Mapping[str, Any]) -> SendTimePrior:
    """Validate a ``send_time`` model document (module docstring) into a :class:`SendTimePrior`.

    Raises :class:`~pipeline.errors.ModelError` naming what is wrong.
    """
    body = table_body(doc, TASK)
    strength = body.get("strength", DEFAULT_STRENGTH)
    if not isinstance(strength, int | float) or not math.isfinite(strength) or strength <= 0:
        raise ModelError(f"{TASK}: strength must be a positive number")
    hours = body.get("hours")
    if not isinstance(hours, Mapping):
        raise ModelError(f"{TASK}: no hours")
    parsed: dict[str, tuple[float, ...]] = {}
    for channel, shares in hours.items():
        if not isinstance(shares, list) or len(shares) != HOURS:
            raise ModelError(f"{TASK}: hours[{channel!r}] must be {HOURS} numbers")
        values: list[float] = []
        for x in shares:
            if not isinstance(x, int | float) or not math.isfinite(x) or x < 0:
                raise ModelError(f"{TASK}: hours[{channel!r}] has a negative or non-number share")
            values.append(float(x))
        total = sum(values)
        if total <= 0:
            raise ModelError(f"{TASK}: hours[{channel!r}] sums to 0")
        parsed[str(channel)] = tuple(v / total for v in values)
    return SendTimePrior(parsed, float(strength))


# -- the posterior and the best hour -------------------------------------------------------


@dataclass(frozen=True)
class BestHour:
    """A person's best hour on one channel (module docstring).

    ``hour`` 0-23: the best local hour of *day* (the posterior summed over
    the weekdays), ``confidence`` its +-1 h mass; ``how`` 0-167 the best
    hour of *week* (``weekday * 24 + hour``, Monday first), ``weekday`` 0-6
    its day and ``how_confidence`` its +-1 h mass; ``events`` the person's
    engagement count used; ``source`` ``"person"`` or ``"population"``.
    """

    hour: int
    confidence: float
    how: int
    weekday: int
    how_confidence: float
    events: float
    source: str


def person_counts(hours: Mapping[str, Any] | None, channel: str) -> tuple[list[float], float]:
    """``(n[168], N)``: the channel's engagements plus ``SESSION_WEIGHT`` x sessions."""
    n = [0.0] * HOURS
    if not hours:
        return n, 0.0
    for name, weight in ((channel, 1.0), (ANY, SESSION_WEIGHT)):
        hist = hours.get(name)
        if hist:
            for k, c in hist.items():
                n[int(k) % HOURS] += weight * c
    return n, sum(n)


def posterior(
    hours: Mapping[str, Any] | None,
    channel: str,
    prior: SendTimePrior | None,
    min_events: int,
) -> tuple[list[float], float, str] | None:
    """``(post[168], N, source)`` for one channel, or None (no model and too few events).

    ``hours`` is the person's ``engagement_hours`` trait.
    """
    n, total = person_counts(hours, channel)
    if total < min_events:
        if prior is None:
            return None
        return list(prior.of(channel)), total, "population"
    p = UNIFORM if prior is None else prior.of(channel)
    s = DEFAULT_STRENGTH if prior is None else prior.strength
    den = total + s
    return [(n[h] + s * p[h]) / den for h in range(HOURS)], total, "person"


def best_hour(
    hours: Mapping[str, Any] | None,
    channel: str,
    prior: SendTimePrior | None,
    min_events: int = 5,
) -> BestHour | None:
    """The person's best hour on ``channel`` (module docstring), or None when unknown.

    >>> b = best_hour({"email": {"10": 6, "34": 3}}, "email", None, min_events=5)
    >>> (b.hour, b.how, b.weekday, b.source)
    (10, 10, 0, 'person')
    """
    found = posterior(hours, channel, prior, min_events)
    if found is None:
        return None
    post, total, source = found
    how, how_mass = _peak(post)
    hour, mass = _peak(daily(post))
    return BestHour(hour, round(min(mass, 1.0), 6), how, how // 24, round(min(how_mass, 1.0), 6),
                    total, source)  # fmt: skip


def daily(post: Sequence[float]) -> list[float]:
    """The hour-of-week posterior summed over the weekdays: 24 shares."""
    out = [0.0] * 24
    for h in range(HOURS):
        out[h % 24] += post[h]
    return out


def _peak(shares: Sequence[float]) -> tuple[int, float]:
    """The index whose +-1 neighbourhood (cyclic) holds the most; ties: the most at itself."""
    size = len(shares)
    best, mass, centre = 0, -1.0, -1.0
    for h in range(size):
        window = shares[h - 1] + shares[h] + shares[(h + 1) % size]
        if window > mass + 1e-12 or (window > mass - 1e-12 and shares[h] > centre + 1e-12):
            best, mass, centre = h, window, shares[h]
    return best, mass


def send_scores(post: Sequence[float]) -> list[float]:
    """What :func:`send_at` ranks hours of week by: the hour of day's share plus the hour's own.

    A person's week is sparse (a few engagements over 168 hours); the hour
    of day pooled over the weekdays carries most of the signal, the hour of
    week breaks its ties toward the days they engage on.
    """
    day = daily(post)
    return [day[h % 24] + post[h] for h in range(HOURS)]


def send_at(
    at_ms: int,
    post: Sequence[float],
    tz: str | None,
    max_delay_ms: int,
    quiet: tuple[int, int] | None = None,
) -> int | None:
    """When to deliver: the start of the best local hour within ``[at_ms, at_ms + max_delay_ms]``.

    ``post`` scores the 168 hours of week (a :func:`posterior`, or better its
    :func:`send_scores`); ``quiet`` the quiet hours ``(start, end)``
    (local, end exclusive, wrapping midnight when ``start > end``), never chosen.
    Candidates are ``at_ms`` and every later local hour start (found on the
    quarter-hour grid, so half-hour zones and DST changes are right); the
    highest score wins, ties to the earliest. None when every candidate is
    in quiet hours.

    >>> post = [0.0] * 168
    >>> post[2] = 1.0                      # Monday 02:00 local (UTC here)
    >>> send_at(0, post, None, 86_400_000 * 7)  # 1970-01-01 is a Thursday
    352800000
    """
    best: int | None = None
    best_score = -1.0
    t = at_ms
    last_how = -1
    end = at_ms + max(0, max_delay_ms)
    while t <= end:
        hour, weekday = local_time(t, tz)
        how = weekday * 24 + hour
        if how != last_how:
            last_how = how
            if not _in_quiet(hour, quiet) and post[how] > best_score + 1e-12:
                best, best_score = t, post[how]
        t = (t // QUARTER_MS + 1) * QUARTER_MS
    return best


def _in_quiet(hour: int, quiet: tuple[int, int] | None) -> bool:
    if quiet is None:
        return False
    start, end = quiet
    return start <= hour < end if start < end else hour >= start or hour < end


def best_hour_of(
    prior: SendTimePrior | None, traits: Mapping[str, Any], channel: str, min_events: int = 5
) -> BestHour | None:
    """The ``best_hour.<channel>`` lookup from a person's traits (``engagement_hours``)."""
    return best_hour(traits.get("engagement_hours"), channel, prior, min_events)


def session_example(session: Mapping[str, Any], person_id: str) -> dict[str, Any]:
    """The ``training.send_time`` record of one closed session (``sessions`` record in).

    ``{"task": "send_time", "person", "scored_at_ms": closed_at, "start_ms",
    "timezone", "how": hour of week of the start, "channel": the session's,
    "engagements": {channel: count of c_opened / c_clicked in it}}``.
    ``pulse train --task send_time`` builds the population prior from them.
    """
    tz = session.get("timezone")
    start: int = session["start_ms"]
    engagements: dict[str, int] = {}
    for name, count in sorted((session.get("event_counts") or {}).items()):
        channel = engagement_channel(name)
        if channel is not None:
            engagements[channel] = engagements.get(channel, 0) + int(count)
    return {
        "task": TASK,
        "person": person_id,
        "scored_at_ms": session["closed_at_ms"],
        "start_ms": start,
        "timezone": tz,
        "how": hour_of_week(start, tz),
        "channel": session.get("channel"),
        "engagements": engagements,
    }


__all__ = [
    "ANY", "HOURS", "HOUR_MS", "TASK", "BestHour", "EngagementHours", "SendTimePrior", "best_hour",
    "best_hour_of", "daily", "engagement_channel", "hour_of_week", "load_send_time_model",
    "person_counts", "posterior", "send_at", "send_scores", "session_example",
]  # fmt: skip
