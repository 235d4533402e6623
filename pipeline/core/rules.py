"""The rule stage: triggers, segments, caps and activations of a topology.

It runs after the operators (sessions, traits, ...) for every event and every
timer of a person, so predicates can read the person's current traits and
segment memberships. It owns ``state["rules"]``::

    {"t": {rule_name: snapshot},   # each trigger rule's own state
     "seg": [segment, ...],        # current memberships (sorted)
     "caps": {...},                # deliveries and negative engagement
     "tz": "Europe/Paris"}         # the person's last known time zone

Outputs: ``triggers`` (delivered), ``triggers.suppressed`` (with the reason),
``segments`` (entered/exited), ``activations.<destination>``.

Identity stitching merges two persons' slices (:meth:`RuleStage.merge`): each
rule's own merge (absence: both timelines, see ``absence.py``; milestones:
union; repetition: union of the seen lists; immediate: nothing), caps: both
persons' deliveries, the known person's time zone when set. Segment
memberships stay the known person's: they are recomputed from the merged
traits at the next evaluation, which emits the ``entered``/``exited`` changes.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pipeline.core.absence import AbsenceRule
from pipeline.core.caps import CapPolicy
from pipeline.core.events import Event
from pipeline.core.outputs import Output
from pipeline.core.predicates import ALWAYS, Facts, Predicate
from pipeline.core.triggers import ImmediateRule, MilestoneRule, RepetitionRule

Rule = AbsenceRule | ImmediateRule | RepetitionRule | MilestoneRule
#: ``(person_state, as_of_ms) -> trait values`` (see pipeline.topology.person_traits)
TraitsOf = Callable[[Mapping[str, Any], int], Mapping[str, Any]]

TRIGGERS = "triggers"
SUPPRESSED = "triggers.suppressed"
SEGMENTS = "segments"


def activation_topic(destination: str) -> str:
    return f"activations.{destination}"


@dataclass(frozen=True, slots=True)
class TriggerSpec:
    """A rule plus where it applies, which channel it speaks on and where it goes."""

    rule: Rule
    where: Predicate = ALWAYS
    channel: str | None = None
    destinations: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        return self.rule.name


@dataclass(frozen=True, slots=True)
class SegmentSpec:
    """A live segment: a predicate over traits; membership changes are emitted."""

    name: str
    where: Predicate
    destinations: tuple[str, ...] = ()


def _no_traits(_state: Mapping[str, Any], _as_of_ms: int) -> Mapping[str, Any]:
    return {}


def _digest(*parts: object) -> str:
    text = "\x1f".join(str(p) for p in parts)
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


@dataclass(frozen=True)
class RuleStage:
    """Evaluates triggers and segments for one person; see the module docstring."""

    triggers: tuple[TriggerSpec, ...] = ()
    segments: tuple[SegmentSpec, ...] = ()
    caps: CapPolicy = field(default_factory=CapPolicy)
    traits_of: TraitsOf = _no_traits
    #: While a person is in a segment, re-check it this often (event time: 6 h), so
    #: that exits caused only by time passing (a window sliding past the events
    #: that qualified) are emitted without a new event.
    segment_recheck_ms: int = 6 * 3_600_000

    # -- the engine's hooks ------------------------------------------------------

    def after_event(
        self, person: dict[str, Any], event: Event, person_id: str, watermark_ms: int
    ) -> list[Output]:
        st = dict(person.get("rules") or {})
        if tz := event.context.get("timezone"):
            st["tz"] = tz
        rule_states: dict[str, Any] = dict(st.get("t") or {})
        members = frozenset(st.get("seg") or ())
        traits = self.traits_of(person, event.timestamp_ms)
        facts = Facts(event, traits, members)
        st["caps"] = self.caps.observe(st.get("caps"), event)
        fired: list[tuple[TriggerSpec, dict[str, Any]]] = []
        for spec in self.triggers:
            rule = spec.rule
            snap = rule_states.get(spec.name)
            if isinstance(rule, AbsenceRule):
                if event.event == rule.start and not spec.where(facts):
                    continue  # the journey only starts for matching start events
                snap, outs = rule.on_event(snap, event, person_id, watermark_ms)
                records = [o.record for o in outs]
            else:
                if not spec.where(facts):
                    continue
                snap, records = rule.on_event(snap, event, person_id)
            _put(rule_states, spec.name, snap)
            fired.extend((spec, r) for r in records)
        st["t"] = rule_states
        outputs = self._segments(st, traits, event, person_id, event.timestamp_ms)
        outputs.extend(self._deliver(st, fired))
        _store(person, st)
        return outputs

    def after_watermark(
        self, person: dict[str, Any], person_id: str, watermark_ms: int
    ) -> list[Output]:
        st = dict(person.get("rules") or {})
        rule_states: dict[str, Any] = dict(st.get("t") or {})
        fired: list[tuple[TriggerSpec, dict[str, Any]]] = []
        for spec in self.triggers:
            if isinstance(spec.rule, AbsenceRule) and spec.name in rule_states:
                snap, outs = spec.rule.on_watermark(rule_states[spec.name], person_id, watermark_ms)
                _put(rule_states, spec.name, snap)
                fired.extend((spec, o.record) for o in outs)
        st["t"] = rule_states
        outputs: list[Output] = []
        if self.segments:
            at = max(watermark_ms, 0)
            probe = Event(message_id="", type="track", timestamp_ms=at, user_id=person_id)
            outputs = self._segments(st, self.traits_of(person, at), probe, person_id, at)
        outputs.extend(self._deliver(st, fired))
        _store(person, st)
        return outputs

    def next_deadline_ms(self, person: Mapping[str, Any]) -> int | None:
        states = (person.get("rules") or {}).get("t") or {}
        deadlines = [
            d
            for spec in self.triggers
            if isinstance(spec.rule, AbsenceRule) and spec.name in states
            if (d := spec.rule.next_deadline_ms(states[spec.name])) is not None
        ]
        seg_at = (person.get("rules") or {}).get("seg_at")
        if seg_at is not None and self.segments:
            deadlines.append(int(seg_at) + self.segment_recheck_ms)
        return min(deadlines) if deadlines else None

    # -- identity stitching -----------------------------------------------------

    def merge(self, a: Mapping[str, Any], b: Mapping[str, Any]) -> dict[str, Any]:
        """The stage's part of two merged person states: ``{"rules": ...}`` or ``{}``.

        ``a`` is the person who stays (the known user), ``b`` the one merged in;
        inputs are untouched. Evaluate the merged person afterwards
        (:meth:`after_watermark`): due absence timers fire and segment changes
        are emitted then.
        """
        sa: Mapping[str, Any] = a.get("rules") or {}
        sb: Mapping[str, Any] = b.get("rules") or {}
        ta: Mapping[str, Any] = sa.get("t") or {}
        tb: Mapping[str, Any] = sb.get("t") or {}
        states: dict[str, Any] = {}
        for spec in self.triggers:
            _put(states, spec.name, spec.rule.merge(ta.get(spec.name), tb.get(spec.name)))
        st: dict[str, Any] = {"t": states}
        if sa.get("seg"):
            st["seg"] = list(sa["seg"])
        if caps := self.caps.merge(sa.get("caps"), sb.get("caps")):
            st["caps"] = caps
        if tz := sa.get("tz") or sb.get("tz"):
            st["tz"] = tz
        merged: dict[str, Any] = {}
        _store(merged, st)
        return merged

    # -- internals ---------------------------------------------------------------

    def _segments(
        self,
        st: dict[str, Any],
        traits: Mapping[str, Any],
        event: Event,
        person_id: str,
        at_ms: int,
    ) -> list[Output]:
        if not self.segments:
            return []
        before = set(st.get("seg") or ())
        facts = Facts(event, traits, frozenset(before))
        now = {seg.name for seg in self.segments if seg.where(facts)}
        outputs: list[Output] = []
        for seg in self.segments:
            change = (
                "entered"
                if seg.name in now - before
                else "exited"
                if seg.name in before - now
                else None
            )
            if change is None:
                continue
            record = {
                "change_id": _digest(seg.name, person_id, change, at_ms),
                "segment": seg.name,
                "person_id": person_id,
                "change": change,
                "event_time_ms": at_ms,
                "cause": event.message_id or None,
            }
            outputs.append(Output(SEGMENTS, person_id, record))
            outputs.extend(
                Output(activation_topic(dest), person_id, _activation(dest, record, seg.name))
                for dest in seg.destinations
            )
        if now:
            st["seg"] = sorted(now)
            st["seg_at"] = at_ms
        else:
            st.pop("seg", None)
            st.pop("seg_at", None)
        return outputs

    def _deliver(
        self, st: dict[str, Any], fired: list[tuple[TriggerSpec, dict[str, Any]]]
    ) -> list[Output]:
        outputs: list[Output] = []
        for spec, record in fired:
            person_id = record["person_id"]
            caps, reason = self.caps.admit(
                st.get("caps"), spec.name, spec.channel, record["event_time_ms"], st.get("tz")
            )
            st["caps"] = caps
            if reason is not None:
                outputs.append(Output(SUPPRESSED, person_id, {**record, "reason": reason}))
                continue
            outputs.append(Output(TRIGGERS, person_id, record))
            outputs.extend(
                Output(
                    activation_topic(dest),
                    person_id,
                    _activation(dest, record, spec.name, spec.channel),
                )
                for dest in spec.destinations
            )
        if not st.get("caps"):
            st.pop("caps", None)
        return outputs


def _activation(
    destination: str, record: dict[str, Any], source: str, channel: str | None = None
) -> dict[str, Any]:
    """The record a CRM/email/push/audience consumer takes as is (schemas/activation.avsc)."""
    source_id = record.get("trigger_id") or record["change_id"]
    kind = "trigger" if "trigger_id" in record else f"segment_{record['change']}"
    return {
        "activation_id": _digest(destination, source_id),
        "destination": destination,
        "kind": kind,
        "name": source,
        "person_id": record["person_id"],
        "channel": channel,
        "event_time_ms": record["event_time_ms"],
        "source_id": source_id,
        "payload": dict(record.get("context") or {}),
    }


def _put(states: dict[str, Any], name: str, snap: Any) -> None:
    if snap is None:
        states.pop(name, None)
    else:
        states[name] = snap


def _store(person: dict[str, Any], st: dict[str, Any]) -> None:
    if not st.get("t"):
        st.pop("t", None)
    if set(st) <= {"tz"}:
        person.pop("rules", None)
    else:
        person["rules"] = st
