"""The rule stage: triggers, segments, caps and activations of a topology.

Every decision is made in **event time, once final**: an event is buffered when
it arrives and decided when the watermark has passed it; the stage walks the
person's timeline in order -- buffered events, absence deadlines, session
closes, segment re-checks -- moving the operators (sessions, traits) along so
that each decision reads the person *as of* its own time. So triggers, caps
and segment changes are a function of the events and their times, whatever
the arrival order within the allowed lateness and wherever the watermark
moved. It owns ``state["rules"]``::

    {"q": [[ts, mid, name, rules, props, channel, flags, tz, record], ...],
     "t": {rule_name: snapshot},   # each trigger rule's own state
     "seg": [segment, ...],        # current memberships (sorted)
     "sxs": {segment: ms}, "sx": ms,   # when time alone may change a segment
     "caps": {...},                # deliveries and negative engagement
     "tz": "Europe/Paris",         # the zone of the last decided event that had one
     "ini": 1}                     # segments were evaluated once

What each construct means (see docs/time-and-state.md):

* a trigger's ``where`` reads the event when it arrives and the person (traits
  as of the event's time, segments) when it is decided;
* absence rules fire at their deadline, immediate, milestone and repetition
  rules at their event, in event-time order; caps count every delivery
  before a trigger's time, in that order;
* a segment is re-checked right after each event that can change what it
  reads (the event included), when a session closes (session traits), when
  time alone changes it (a count window: the exact time its buckets leave;
  recency and decayed interest: every ``segment_recheck_ms`` of event time),
  on eviction and at an identity merge.
"""

from __future__ import annotations

from bisect import insort
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pipeline.core.absence import AbsenceRule
from pipeline.core.caps import CapPolicy
from pipeline.core.delivery import SEGMENTS, SUPPRESSED, TRIGGERS, activation_topic
from pipeline.core.events import Event
from pipeline.core.facts import ORDER_EVENT
from pipeline.core.labels import LABELS_KEY, merge_labels
from pipeline.core.models import ModelSet
from pipeline.core.outputs import Output
from pipeline.core.plan import plan_of
from pipeline.core.predicates import ALWAYS, Predicate
from pipeline.core.predictions import ORDER_FACTS, PredictionsConfig, merge_order_facts
from pipeline.core.stagerun import FATIGUE, PRED, SEG, SEG_ALL, settle, store

# ``flags`` of a buffered event (RuleStage.after_event): SEG segments to re-check after
# it; SEG_ALL a first check of every segment; FATIGUE negative engagement for the caps;
# PRED an outcome of a prediction task (or an order, for the order facts features read).
from pipeline.core.triggers import DeliverAt, ImmediateRule, MilestoneRule, RepetitionRule

if TYPE_CHECKING:
    from pipeline.core.engine import Operator
    from pipeline.core.plan import Plan

Rule = AbsenceRule | ImmediateRule | RepetitionRule | MilestoneRule
#: ``(person_state, as_of_ms) -> trait values`` (see pipeline.topology.person_traits)
TraitsOf = Callable[[Mapping[str, Any], int], Mapping[str, Any]]

__all__ = [
    "SEGMENTS",
    "SUPPRESSED",
    "TRIGGERS",
    "Rule",
    "RuleStage",
    "SegmentSpec",
    "TraitsOf",
    "TriggerSpec",
    "activation_topic",
]


@dataclass(frozen=True, slots=True)
class TriggerSpec:
    """A rule plus where it applies, which channel it speaks on and where it goes."""

    rule: Rule
    where: Predicate = ALWAYS
    channel: str | None = None
    destinations: tuple[str, ...] = ()
    #: deliver at the person's best hour within a delay (None: at once); see DeliverAt
    deliver_at: DeliverAt | None = None

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


@dataclass(frozen=True)
class RuleStage:
    """Evaluates triggers and segments for one person; see the module docstring."""

    triggers: tuple[TriggerSpec, ...] = ()
    segments: tuple[SegmentSpec, ...] = ()
    caps: CapPolicy = field(default_factory=CapPolicy)
    traits_of: TraitsOf = _no_traits
    #: Segments reading a trait that drifts with time alone (recency, decayed
    #: interest, custom code) are re-checked on this grid of event time (6 h).
    segment_recheck_ms: int = 6 * 3_600_000
    #: The models ``score.*`` reads (pipeline/core/models.py): one object for the
    #: stage's life, whose models the worker replaces as they are published.
    models: ModelSet = field(default_factory=ModelSet, compare=False, repr=False)
    #: The ``predictions:`` section (pipeline/core/predictions.py); None: off, and
    #: nothing below changes (same outputs, same state as without predictions).
    predictions: PredictionsConfig | None = None
    #: :attr:`plan`, compiled on first use (a field, not ``__dict__``: mypyc compiles it)
    _plan: Plan | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_plan", None)  # (mypyc leaves init=False fields unset)

    @property
    def plan(self) -> Plan:
        """The compiled form (predicates split, dependencies), built once."""
        cached = self._plan
        if cached is None:
            cached = plan_of(self)
            object.__setattr__(self, "_plan", cached)
        return cached

    # -- the engine's hooks ------------------------------------------------------

    def after_event(
        self, person: dict[str, Any], event: Event, person_id: str, watermark_ms: int
    ) -> list[Output]:
        """Buffer what the rules and segments need of ``event`` until it is final."""
        plan = self.plan
        name = event.event
        rules: list[int] = []
        if name is not None:
            rules = [
                i
                for i in plan.by_event.get(name, ())
                if plan.is_cancel(i, name) or plan.where[i].event_ok(event)
            ]
        st = person.get("rules")
        flags = 0
        if plan.segment_names is not None:
            if st is None or "ini" not in st:
                flags |= SEG | SEG_ALL
            elif plan.segment_names is plan.every or (name or event.type) in plan.segment_names:
                flags |= SEG
        if self.caps.fatigues(name):
            flags |= FATIGUE
        labels = plan.labels
        if labels is not None and (labels.mask_of(name or event.type) or name == ORDER_EVENT):
            flags |= PRED
        if not rules and not flags:
            return []
        props = None
        if rules:
            props = {k: event.properties[k] for k in plan.keys if k in event.properties}
        # (an entry only predictions need carries no zone: the stage's zone stays as without)
        tz = None if flags == PRED and not rules else event.context.get("timezone") or None
        entry = [
            event.timestamp_ms, event.message_id, name or event.type, rules, props,
            event.context.get("channel"), flags, tz,
            event.to_record() if plan.keep_events else None,
        ]  # fmt: skip
        if st is None:
            st = person["rules"] = {}
        queue = st.get("q")
        if queue is None:
            st["q"] = [entry]
        elif queue[-1][0] < entry[0] or (queue[-1][0] == entry[0] and queue[-1][1] < entry[1]):
            queue.append(entry)
        else:
            insort(queue, entry, key=lambda e: (e[0], e[1]))
        return []

    def settle(
        self,
        person: dict[str, Any],
        person_id: str,
        watermark_ms: int,
        operators: Sequence[Operator] = (),
    ) -> list[Output]:
        """Decide everything below ``watermark_ms`` in event-time order (see the module doc)."""
        st = person.get("rules")
        if not st:
            if self.plan.labels is None:
                return []
            st = {}  # predictions: a session may close (a scoring point) with nothing buffered
        return settle(self, person, st, person_id, watermark_ms, operators=operators)

    def after_watermark(
        self, person: dict[str, Any], person_id: str, watermark_ms: int
    ) -> list[Output]:
        """:meth:`settle` without operators to move along."""
        return self.settle(person, person_id, watermark_ms)

    def next_deadline_ms(self, person: Mapping[str, Any]) -> int | None:
        st = person.get("rules")
        if not st:
            return None
        best: int | None = None
        if queue := st.get("q"):
            best = queue[0][0] + 1  # decided once the watermark is past it
        states = st.get("t")
        if states:
            by_name = self.plan.absence_by_name
            for name, snap in states.items():
                rule = by_name.get(name)
                if rule is not None:
                    d = rule.next_deadline_ms(snap)
                    if d is not None and (best is None or d < best):
                        best = d
        sx = st.get("sx")
        if sx is not None and (best is None or sx < best):
            best = sx
        labels = self.plan.labels
        if labels is not None:
            d = labels.next_due(st)
            if d is not None and (best is None or d < best):
                best = d
        return best

    # -- identity stitching -----------------------------------------------------

    def merge(
        self, a: Mapping[str, Any], b: Mapping[str, Any], *, at_ms: int | None = None
    ) -> dict[str, Any]:
        """The stage's part of two merged person states: ``{"rules": ...}`` or ``{}``.

        ``a`` is the person who stays (the known user), ``b`` the one merged in;
        inputs are untouched. Each rule merges its own state (absence: both
        timelines, see ``absence.py``; milestones: union; repetition: union of
        the seen lists; immediate: nothing), caps take both persons' deliveries,
        buffered events both queues; memberships stay ``a``'s. With ``at_ms``
        (the link time, both settled up to it) every segment is re-checked at
        that time: the ``entered``/``exited`` changes of the merged person.
        """
        sa: Mapping[str, Any] = a.get("rules") or {}
        sb: Mapping[str, Any] = b.get("rules") or {}
        ta: Mapping[str, Any] = sa.get("t") or {}
        tb: Mapping[str, Any] = sb.get("t") or {}
        states: dict[str, Any] = {}
        for spec in self.triggers:
            snap = spec.rule.merge(ta.get(spec.name), tb.get(spec.name))
            if snap is not None:
                states[spec.name] = snap
        st: dict[str, Any] = {"t": states}
        queue = sorted([*(sa.get("q") or ()), *(sb.get("q") or ())], key=lambda e: (e[0], e[1]))
        if queue:
            st["q"] = queue
        if sa.get("seg"):
            st["seg"] = list(sa["seg"])
        if caps := self.caps.merge(sa.get("caps"), sb.get("caps")):
            st["caps"] = caps
        if tz := sa.get("tz") or sb.get("tz"):
            st["tz"] = tz
        if sa.get("ini") or sb.get("ini"):
            st["ini"] = 1
        if sa.get("sxs"):
            st["sxs"] = dict(sa["sxs"])
            st["sx"] = min(st["sxs"].values())
        if self.predictions is not None:
            if lab := merge_labels(sa.get(LABELS_KEY), sb.get(LABELS_KEY)):
                st[LABELS_KEY] = lab
            if facts := merge_order_facts(sa.get(ORDER_FACTS), sb.get(ORDER_FACTS)):
                st[ORDER_FACTS] = facts
        if at_ms is not None and self.segments:
            st["sx"] = min(at_ms, st.get("sx", at_ms))
            st["sa"] = 1
        merged: dict[str, Any] = {}
        store(merged, st)
        return merged
