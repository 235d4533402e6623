"""A TEST FIXTURE, not the product: training examples derived in batch from purchase events.

Pulse's training examples are to come from the stream (issue 15: a label
timer per scoring point, the examples on ``pulse.training.<task>``). Until the
stream emits them, this module derives examples of the same format
(:mod:`pipeline.tools.train_examples`) from a list of ``order_completed``
events, in one pass over the whole history, so that ``pulse train``, its
tests and the CDNOW evaluation in docs/predictions.md have data. Nothing
reads it at run time; the stream's features will differ, and the trainer
does not depend on these names (it learns whatever features an example has).

Scoring points: after the last purchase of each person-day (a day's
purchases are one session in the CDNOW events), and, with ``every_days``,
every N days from the first event for each person seen so far (a "monthly
rescore" of people who may never come back, as the batch CDPs do).

Labels, with ``H`` the task's horizon, ``t`` the scoring time:

* ``purchase_7d``: 1 if an ``order_completed`` is in ``(t, t + H]``
  (``outcome_at_ms`` its time), else 0 (``outcome_at_ms`` null);
* ``churn_30d``: 1 if the person has no event in ``(t, t + H]`` (null), else 0
  (``outcome_at_ms`` the first event's time).

A scoring point whose horizon ends after ``end_ms`` (default: the last event)
is censored, its label unknown, and left out.

Features at ``t`` (days are float days; money in the events' currency):
``purchases``, ``purchase_days``, ``purchases_{7,30,90,365}d``,
``revenue_total``, ``revenue_{30,90,365}d``, ``avg_order_value``,
``quantity_total``, ``days_since_first_purchase``,
``days_since_last_purchase``, and, once a person has bought on two days,
``days_since_previous_purchase`` (the gap before the latest purchase day) and
``mean_days_between_purchases`` (absent before: missing values, on purpose).
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from itertools import accumulate

from pipeline.core.events import Event
from pipeline.tools.train_examples import TASKS, Example

DAY_MS = 86_400_000
FEATURES_VERSION = "batch-purchases/1"
WINDOWS_DAYS = (7, 30, 90, 365)


@dataclass(frozen=True, slots=True)
class _History:
    """One person's purchases, ascending, with running sums."""

    times: list[int]
    revenue: list[float]  # cumulative
    quantity: list[float]  # cumulative
    day_ends: list[int]  # the last purchase time of each purchase day, ascending


def _histories(events: Iterable[Event]) -> dict[str, _History]:
    by_person: dict[str, list[tuple[int, float, float]]] = {}
    for e in events:
        if e.event != "order_completed":
            continue
        props = e.properties
        revenue = props.get("revenue", props.get("total", 0.0))
        quantity = props.get("quantity", 1)
        by_person.setdefault(e.person_id, []).append(
            (e.timestamp_ms, _number(revenue), _number(quantity))
        )
    out = {}
    for person, rows in by_person.items():
        rows.sort()
        times = [t for t, _, _ in rows]
        ends: dict[int, int] = {}
        for t in times:
            ends[t // DAY_MS] = t
        out[person] = _History(
            times,
            list(accumulate(r for _, r, _ in rows)),
            list(accumulate(q for _, _, q in rows)),
            sorted(ends.values()),
        )
    return out


def _number(value: object) -> float:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0.0


def features_at(h: _History, t: int) -> dict[str, float]:
    """The person's features at time ``t`` from their purchases at or before ``t``."""
    n = bisect_right(h.times, t)
    days = bisect_right(h.day_ends, t)
    first, last = h.times[0], h.times[n - 1]
    revenue = h.revenue[n - 1]
    f: dict[str, float] = {
        "purchases": float(n),
        "purchase_days": float(days),
        "revenue_total": revenue,
        "avg_order_value": revenue / n,
        "quantity_total": h.quantity[n - 1],
        "days_since_first_purchase": (t - first) / DAY_MS,
        "days_since_last_purchase": (t - last) / DAY_MS,
    }
    for w in WINDOWS_DAYS:
        start = bisect_right(h.times, t - w * DAY_MS)
        f[f"purchases_{w}d"] = float(n - start)
        if w >= 30:
            before = h.revenue[start - 1] if start else 0.0
            f[f"revenue_{w}d"] = revenue - before
    if days >= 2:
        f["days_since_previous_purchase"] = (h.day_ends[days - 1] - h.day_ends[days - 2]) / DAY_MS
        f["mean_days_between_purchases"] = (h.day_ends[days - 1] - h.day_ends[0]) / (
            DAY_MS * (days - 1)
        )
    return f


def _label(task: str, h: _History, t: int, horizon: int) -> tuple[int, int | None]:
    """(label, outcome_at_ms) of ``task`` for a person scored at ``t``."""
    i = bisect_right(h.times, t)
    nxt = h.times[i] if i < len(h.times) else None
    happened = nxt is not None and nxt <= t + horizon
    if TASKS[task].outcome == "purchase":
        return (1, nxt) if happened else (0, None)
    return (0, nxt) if happened else (1, None)


def scoring_points(
    h: _History, start_ms: int, end_ms: int, every_days: int | None
) -> Iterator[int]:
    """Scoring times for one person: each purchase day's end, then every N days (sorted)."""
    points = set(h.day_ends)
    if every_days:
        step = every_days * DAY_MS
        first = start_ms + ((h.times[0] - start_ms) // step + 1) * step
        points.update(range(first, end_ms + 1, step))
    return iter(sorted(points))


def derive(
    events: Iterable[Event],
    task: str,
    *,
    every_days: int | None = None,
    end_ms: int | None = None,
) -> list[Example]:
    """Training examples of ``task`` from the events (see the module doc), sorted by time."""
    spec = TASKS[task]
    histories = _histories(events)
    if not histories:
        return []
    start = min(h.times[0] for h in histories.values())
    end = end_ms if end_ms is not None else max(h.times[-1] for h in histories.values())
    out = []
    for person, h in histories.items():
        for t in scoring_points(h, start, end, every_days):
            if t + spec.horizon_ms > end:
                break  # censored: the horizon has not passed by the end of the data
            label, outcome = _label(task, h, t, spec.horizon_ms)
            out.append(
                Example(
                    task=task,
                    person=person,
                    scored_at_ms=t,
                    horizon_ms=spec.horizon_ms,
                    outcome_at_ms=outcome,
                    label=label,
                    features=features_at(h, t),
                    features_version=FEATURES_VERSION,
                )
            )
    out.sort(key=lambda x: (x.scored_at_ms, x.person))
    return out
