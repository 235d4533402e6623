"""Delivering fired triggers and segment changes: caps, suppression, activations.

The rule stage decides in event time, in order, so a cap counts every
delivery before the trigger's event time, whichever was decided first live:
caps are a function of the triggers' event times, not of processing order.

**Timed delivery** (a trigger with ``deliver_at: best_hour``, ``max_delay``;
:class:`~pipeline.core.triggers.DeliverAt`): the activation's ``send_at_ms``
is the start of the person's best local hour on the rule's channel within
``max_delay`` of the trigger (:func:`pipeline.core.sendtime.send_at` over the
person's ``engagement_hours`` shrunk toward model ``send_time``; no model and
too few engagements: the earliest allowed hour). Quiet hours are never
chosen, so a trigger in quiet hours is delivered at the first allowed hour
within ``max_delay`` instead of being suppressed (suppressed ``quiet_hours``
when there is none). Caps count the delivery at ``send_at`` (its local day
and rolling windows; :meth:`~pipeline.core.caps.CapPolicy.admit` with
``decided_ms``). The delivery service holds the activation until
``send_at_ms`` (wall clock). Without ``deliver_at`` nothing changes: no
``send_at_ms`` key, the same caps.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pipeline.core.caps import CapPolicy
from pipeline.core.outputs import Output
from pipeline.core.sendtime import (
    ANY,
    UNIFORM,
    SendTimePrior,
    posterior,
    send_at,
    send_scores,
)
from pipeline.core.sendtime import TASK as TASK_SEND_TIME
from pipeline.core.traits import BEHAVIOR, TRAITS_KEY

if TYPE_CHECKING:
    from pipeline.core.models import ModelSet
    from pipeline.core.rules import SegmentSpec, TriggerSpec

TRIGGERS = "triggers"
SUPPRESSED = "triggers.suppressed"
SEGMENTS = "segments"


def activation_topic(destination: str) -> str:
    return f"activations.{destination}"


def digest(*parts: object) -> str:
    text = "\x1f".join(str(p) for p in parts)
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


def activation(
    destination: str, record: dict[str, Any], source: str, channel: str | None = None,
    send_at_ms: int | None = None, *, predicted: Mapping[str, Any] | None = None,
) -> dict[str, Any]:  # fmt: skip
    """The record a CRM/email/push/audience consumer takes as is (schemas/activation.avsc).

    ``send_at_ms`` (timed delivery only; the key is absent otherwise): deliver
    not before this time. ``predicted``: :func:`prediction_payload`, added to
    the payload (nothing without models).
    """
    source_id = record.get("trigger_id") or record["change_id"]
    kind = "trigger" if "trigger_id" in record else f"segment_{record['change']}"
    out = {
        "activation_id": digest(destination, source_id),
        "destination": destination,
        "kind": kind,
        "name": source,
        "person_id": record["person_id"],
        "channel": channel,
        "event_time_ms": record["event_time_ms"],
        "source_id": source_id,
        "payload": dict(record.get("context") or {}),
    }
    if predicted:
        out["payload"].update(predicted)
    if send_at_ms is not None:
        out["send_at_ms"] = send_at_ms
    return out


@dataclass(frozen=True)
class SendTiming:
    """What timed delivery knows of the person and the population.

    ``hours``: the person's ``engagement_hours`` traits state (``traits["eh"]``,
    or the trait); ``prior``: model ``send_time`` parsed
    (:func:`pipeline.core.sendtime.load_send_time_model`), None without one;
    ``min_events``: ``predictions.send_time.min_events``.
    """

    hours: Mapping[str, Any] | None = None
    prior: SendTimePrior | None = None
    min_events: int = 5


def timing_of(person: Mapping[str, Any], models: ModelSet | None, min_events: int) -> SendTiming:
    """The :class:`SendTiming` of a person (their whole state) with a ``ModelSet``'s prior.

    The prior is the ModelSet's parsed ``send_time`` model
    (:func:`pipeline.core.sendtime.load_send_time_model` ran on it when it was put).
    """
    prior: SendTimePrior | None = None
    if models is not None:
        found = models.parsed(TASK_SEND_TIME)
        if isinstance(found, SendTimePrior):
            prior = found
    hours: Mapping[str, Any] | None = None
    slice_ = person.get(BEHAVIOR)
    if slice_:
        hours = slice_[TRAITS_KEY].get("eh")
    return SendTiming(hours, prior, min_events)


def send_time_of(
    caps: CapPolicy, spec: TriggerSpec, at_ms: int, tz: str | None, timing: SendTiming | None
) -> int | None:
    """``send_at_ms`` of a timed trigger (module docstring); None: every hour is quiet."""
    plan = spec.deliver_at
    assert plan is not None
    timing = timing or SendTiming()
    found = posterior(timing.hours, spec.channel or ANY, timing.prior, timing.min_events)
    scores = send_scores(UNIFORM if found is None else found[0])
    quiet = None
    if caps.quiet_start_hour is not None and caps.quiet_end_hour is not None:
        quiet = (caps.quiet_start_hour, caps.quiet_end_hour)
    return send_at(at_ms, scores, tz, plan.max_delay_ms, quiet)


def deliver(
    caps: CapPolicy,
    st: dict[str, Any],
    fired: Iterable[tuple[TriggerSpec, dict[str, Any], str | None]],
    out: list[Output],
    timing: SendTiming | None = None,
    *,
    predicted: Mapping[str, Any] | None = None,
) -> None:
    """Admit each fired ``(spec, record, time zone)`` through the caps, in order.

    ``timing``: for triggers with ``deliver_at`` (module docstring).
    ``predicted``: the person's scores and recommendations for the
    activations' payloads (:func:`prediction_payload`; None: nothing added).
    """
    for spec, record, tz in fired:
        person_id = record["person_id"]
        at: int = record["event_time_ms"]
        when: int | None = None
        if spec.deliver_at is not None:
            when = send_time_of(caps, spec, at, tz, timing)
            if when is None:
                out.append(Output(SUPPRESSED, person_id, {**record, "reason": "quiet_hours"}))
                continue
            state, reason = caps.admit(
                st.get("caps"), spec.name, spec.channel, when, tz, decided_ms=at
            )
        else:
            state, reason = caps.admit(st.get("caps"), spec.name, spec.channel, at, tz)
        if state:
            st["caps"] = state
        else:
            st.pop("caps", None)
        if reason is not None:
            out.append(Output(SUPPRESSED, person_id, {**record, "reason": reason}))
            continue
        out.append(Output(TRIGGERS, person_id, record))
        for dest in spec.destinations:
            out.append(
                Output(
                    activation_topic(dest),
                    person_id,
                    activation(dest, record, spec.name, spec.channel, when, predicted=predicted),
                )
            )


def segment_change(
    spec: SegmentSpec, person_id: str, change: str, at_ms: int, *, cause: str | None,
    out: list[Output], predicted: Mapping[str, Any] | None = None,
) -> None:  # fmt: skip
    """The ``segments`` record of one change and its activations."""
    segment = spec.name
    record = {
        "change_id": digest(segment, person_id, change, at_ms),
        "segment": segment,
        "person_id": person_id,
        "change": change,
        "event_time_ms": at_ms,
        "cause": cause or None,
    }
    out.append(Output(SEGMENTS, person_id, record))
    for dest in spec.destinations:
        out.append(
            Output(
                activation_topic(dest),
                person_id,
                activation(dest, record, segment, predicted=predicted),
            )
        )


def prediction_payload(
    models: Any, traits: Mapping[str, Any], at_ms: int, recs_k: int = 0
) -> dict[str, Any]:
    """What an activation's payload carries from the models, for a person as of ``at_ms``.

    ``models``: the stage's :class:`~pipeline.core.models.ModelSet`;
    ``traits``: the person's traits as of ``at_ms`` (the stage's ``traits_of``).
    For each scoring task ``score.<task>`` (the probability) and
    ``score.<task>.percentile``; with a ``recs`` model and ``recs_k > 0``,
    ``recs`` (the top ``recs_k`` products). Flat keys, as the payload's Avro
    map takes them; ``{}`` without models or traits.
    """
    out: dict[str, Any] = {}
    if models is None or not traits:
        return out
    for task, s in models.scores(traits, at_ms).items():
        out["score." + task] = s["probability"]
        out["score." + task + ".percentile"] = s["percentile"]
    if recs_k > 0:
        model = models.parsed("recs")
        if model is not None:
            from pipeline.core.recommend import recs_of

            recs = recs_of(model, traits, recs_k)
            if recs is not None:
                out["recs"] = list(recs)
    return out


def predicted_for(
    stage: Any, person: Mapping[str, Any], at_ms: int, fired: Iterable[Any] | None = None
) -> dict[str, Any] | None:
    """:func:`prediction_payload` of the rule ``stage``'s person as of ``at_ms``.

    None (nothing computed) without a model for the payloads, or when none
    of the ``fired`` ``(spec, record, tz)`` has a destination.
    """
    models = stage.models
    if not models.in_payload():
        return None
    if fired is not None and not any(spec.destinations for spec, _, _ in fired):
        return None
    predictions = stage.predictions
    recs_k = predictions.recs_k if predictions is not None else 0
    return prediction_payload(models, stage.traits_of(person, at_ms), at_ms, recs_k)
