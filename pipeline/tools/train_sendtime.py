"""``pulse train --task send_time``: the population's hour-of-week engagement prior.

Reads the session records the stream emits on ``training.send_time``
(:func:`pipeline.core.sendtime.session_example`: the hour of week a session
started in the person's zone, and its ``<channel>_opened`` / ``_clicked``
counts; ``pulse replay --out DIR`` writes ``DIR/pulse.training.send_time.jsonl``)
and builds model ``send_time`` (format in :mod:`pipeline.core.sendtime`):

* ``hours["*"]``: each person's session-start histogram normalized to 1
  (one vote per person, however active), summed over people, plus one
  uniform vote;
* ``hours[c]`` per channel seen: the same with the channel's engagements,
  shrunk toward ``hours["*"]`` with the weight of :data:`CHANNEL_PRIOR_PEOPLE`
  people (a channel few people engage with borrows the sessions' shape);
* ``strength`` (``--strength``, default 5): how many engagements the prior
  is worth against a person's own.

**Evaluation** on a time split (the latest 25 % of sessions): prior and
person histograms from the sessions before the cut; for every engagement on a
channel after it, a hit when its local hour is within +-1 h of the person's
best hour (:func:`~pipeline.core.sendtime.best_hour`, the stream's own
function) or of the population's best hour (the baseline), for a few
strengths; the same for the hour of week. The published prior is then built from all the sessions.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pipeline.core.scoring import table_document
from pipeline.core.sendtime import (
    ANY,
    DEFAULT_STRENGTH,
    HOURS,
    TASK,
    SendTimePrior,
    best_hour,
    load_send_time_model,
)
from pipeline.errors import ModelError

CHANNEL_PRIOR_PEOPLE = 10.0
STRENGTHS = (1.0, 2.0, 5.0, 10.0, 20.0, 50.0)
MIN_SESSIONS = 100


@dataclass(frozen=True, slots=True)
class Visit:
    """One ``training.send_time`` record."""

    person: str
    start_ms: int
    how: int
    engagements: Mapping[str, int]


def parse_record(obj: Any) -> Visit:
    if not isinstance(obj, Mapping) or obj.get("task") != TASK:
        raise ModelError(f"not a {TASK} record: {str(obj)[:80]}")
    try:
        how = int(obj["how"])
        if not 0 <= how < HOURS:
            raise ValueError(how)
        return Visit(
            str(obj["person"]),
            int(obj.get("start_ms", obj["scored_at_ms"])),
            how,
            {str(c): int(n) for c, n in (obj.get("engagements") or {}).items()},
        )
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ModelError(f"a malformed {TASK} record: {str(obj)[:80]}") from exc


def parse_lines(lines: Iterable[bytes | str]) -> list[Visit]:
    return [parse_record(json.loads(line)) for line in lines if line.strip()]


def histograms(visits: Iterable[Visit]) -> dict[str, dict[str, dict[str, float]]]:
    """Per person, the ``engagement_hours`` trait the stream's fold would hold (by session)."""
    out: dict[str, dict[str, dict[str, float]]] = defaultdict(dict)
    for v in visits:
        hours = out[v.person]
        key = str(v.how)
        star = hours.setdefault(ANY, {})
        star[key] = star.get(key, 0) + 1
        for channel, n in v.engagements.items():
            if n > 0:
                hist = hours.setdefault(channel, {})
                hist[key] = hist.get(key, 0) + n
    return out


def _shares(hist: Mapping[str, float]) -> list[float]:
    total = sum(hist.values())
    shares = [0.0] * HOURS
    for k, n in hist.items():
        shares[int(k)] += n / total
    return shares


def fit(visits: Sequence[Visit]) -> dict[str, list[float]]:
    """``hours`` of the prior (module docstring)."""
    sums: dict[str, list[float]] = {}
    people: dict[str, int] = defaultdict(int)
    for hours in histograms(visits).values():
        for channel, hist in hours.items():
            if not hist:
                continue
            acc = sums.setdefault(channel, [0.0] * HOURS)
            for h, share in enumerate(_shares(hist)):
                acc[h] += share
            people[channel] += 1
    star = [(s + 1.0 / HOURS) / (people[ANY] + 1.0) for s in sums.get(ANY, [0.0] * HOURS)]
    out = {ANY: [round(x, 8) for x in star]}
    for channel, acc in sorted(sums.items()):
        if channel == ANY:
            continue
        w = CHANNEL_PRIOR_PEOPLE
        out[channel] = [
            round((acc[h] + w * star[h]) / (people[channel] + w), 8) for h in range(HOURS)
        ]
    return out


def _near(a: int, b: int, size: int) -> bool:
    d = abs(a - b) % size
    return min(d, size - d) <= 1


def evaluate(
    before: Sequence[Visit],
    after: Sequence[Visit],
    hours: Mapping[str, list[float]],
    min_events: int,
) -> dict[str, Any]:
    """+-1 h hit rates of the person's best hour and the population's, per strength.

    ``hit_rate``: the engagement's local hour of day within +-1 h of the best
    hour of day; ``week_hit_rate``: its hour of week within +-1 h of the best
    hour of week.
    """
    person_hours = histograms(before)
    results: dict[str, Any] = {}
    for strength in STRENGTHS:
        prior = SendTimePrior({c: tuple(v) for c, v in hours.items()}, strength)
        hits, base_hits, week_hits, base_week_hits, n, personal = 0, 0, 0, 0, 0, 0
        cache: dict[tuple[str, str], Any] = {}
        population: dict[str, Any] = {}
        for v in after:
            for channel, count in v.engagements.items():
                if count <= 0:
                    continue
                key = (v.person, channel)
                if key not in cache:
                    cache[key] = best_hour(person_hours.get(v.person), channel, prior, min_events)
                if channel not in population:
                    population[channel] = best_hour(None, channel, prior, 10**9)
                best, base = cache[key], population[channel]
                n += count
                if best is not None:
                    hits += count * _near(best.hour, v.how % 24, 24)
                    week_hits += count * _near(best.how, v.how, HOURS)
                    personal += count * (best.source == "person")
                base_hits += count * _near(base.hour, v.how % 24, 24)
                base_week_hits += count * _near(base.how, v.how, HOURS)
        results[f"{strength:g}"] = {
            "engagements": n,
            "hit_rate": round(hits / n, 4) if n else None,
            "population_hit_rate": round(base_hits / n, 4) if n else None,
            "week_hit_rate": round(week_hits / n, 4) if n else None,
            "population_week_hit_rate": round(base_week_hits / n, 4) if n else None,
            "personal_share": round(personal / n, 4) if n else None,
        }
    return results


def train(
    visits: Sequence[Visit],
    *,
    test_share: float = 0.25,
    strength: float = DEFAULT_STRENGTH,
    min_events: int = 5,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(model document, report)`` (module docstring)."""
    if not visits:
        raise ModelError(f"{TASK}: no sessions")
    if not 0.0 < test_share < 1.0:
        raise ModelError("the test share must be between 0 and 1")
    if not (strength > 0 and math.isfinite(strength)):
        raise ModelError("the strength must be a positive number")
    times = sorted(v.start_ms for v in visits)
    cut = times[min(len(times) - 1, math.floor(len(times) * (1.0 - test_share)))]
    before = [v for v in visits if v.start_ms < cut]
    after = [v for v in visits if v.start_ms >= cut]
    evaluation = evaluate(before, after, fit(before), min_events)
    hours = fit(visits)
    report = {
        "task": TASK,
        "sessions": len(visits),
        "people": len({v.person for v in visits}),
        "channels": sorted(c for c in hours if c != ANY),
        "engagements": sum(sum(v.engagements.values()) for v in visits),
        "split": {"cut_ms": cut, "train_sessions": len(before), "test_sessions": len(after)},
        "min_events": min_events,
        "strength": strength,
        "evaluation_by_strength": evaluation,
    }
    trained = {k: report[k] for k in ("sessions", "people", "split", "min_events")}
    trained["evaluation"] = evaluation.get(f"{strength:g}")
    doc = table_document(TASK, {"strength": strength, "hours": hours}, trained)
    load_send_time_model(doc)  # what a worker will do
    return doc, report


def publish_problem(report: dict[str, Any], min_sessions: int = MIN_SESSIONS) -> str | None:
    if report["sessions"] >= min_sessions:
        return None
    return (
        f"{TASK}: not publishing: {report['sessions']} session(s); "
        f"at least {min_sessions} are needed (--min-sessions)"
    )


def fmt(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.3f}"


def format_report(report: dict[str, Any]) -> str:
    lines = [
        f"task send_time: {report['sessions']} sessions of {report['people']} people, "
        f"{report['engagements']} engagements on {', '.join(report['channels']) or 'no channel'}",
        f"+-1 h hit rate on engagements after the cut (min_events {report['min_events']}), "
        "hour of day (hour of week):",
        f"{'strength':>9} {'engagements':>12} {'person':>15} {'population':>15} {'personal':>9}",
    ]
    for s, row in report["evaluation_by_strength"].items():
        mark = " *" if float(s) == report["strength"] else ""
        person = f"{fmt(row['hit_rate'])} ({fmt(row['week_hit_rate'])})"
        population = f"{fmt(row['population_hit_rate'])} ({fmt(row['population_week_hit_rate'])})"
        lines.append(
            f"{s:>9} {row['engagements']:>12} {person:>15} {population:>15} "
            f"{fmt(row['personal_share']):>9}{mark}"
        )
    return "\n".join(lines)
