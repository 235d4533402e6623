"""Delivering fired triggers and segment changes: caps, suppression, activations.

The rule stage decides in event time, in order, so a cap counts every
delivery before the trigger's event time, whichever was decided first live:
caps are a function of the triggers' event times, not of processing order.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from pipeline.core.caps import CapPolicy
from pipeline.core.outputs import Output

if TYPE_CHECKING:
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
    destination: str, record: dict[str, Any], source: str, channel: str | None = None
) -> dict[str, Any]:
    """The record a CRM/email/push/audience consumer takes as is (schemas/activation.avsc)."""
    source_id = record.get("trigger_id") or record["change_id"]
    kind = "trigger" if "trigger_id" in record else f"segment_{record['change']}"
    return {
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


def deliver(
    caps: CapPolicy,
    st: dict[str, Any],
    fired: Iterable[tuple[TriggerSpec, dict[str, Any], str | None]],
    out: list[Output],
) -> None:
    """Admit each fired ``(spec, record, time zone)`` through the caps, in order."""
    for spec, record, tz in fired:
        person_id = record["person_id"]
        state, reason = caps.admit(
            st.get("caps"), spec.name, spec.channel, record["event_time_ms"], tz
        )
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
                    activation(dest, record, spec.name, spec.channel),
                )
            )


def segment_change(
    spec: SegmentSpec, person_id: str, change: str, at_ms: int, *, cause: str | None,
    out: list[Output],
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
        out.append(Output(activation_topic(dest), person_id, activation(dest, record, segment)))
