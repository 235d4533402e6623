"""The rule stage's walk through one person's timeline.

:class:`StageRun` settles one person up to a watermark: it takes, in event
time, the next of (a) the buffered events at the earliest time below the
watermark and (b) the earliest deadline at or below it (an absence timer, a
session close or eviction when segments depend on it, a segment re-check),
deadlines first at equal times (windows are half-open), and moves the
operators (sessions, traits) to that time before deciding anything.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from pipeline.core.absence import AbsenceRule
from pipeline.core.behavior import BehaviorOperator
from pipeline.core.delivery import deliver, predicted_for, timing_of
from pipeline.core.events import Event
from pipeline.core.facts import ORDER_EVENT
from pipeline.core.labels import FLUSH_MS, closed_sessions
from pipeline.core.outputs import Output
from pipeline.core.predictions import ORDER_FACTS, observe_order
from pipeline.core.segmentcheck import check_segments, event_of
from pipeline.core.sessions import SESSIONS
from pipeline.core.traits import BEHAVIOR, TRAITS_KEY

if TYPE_CHECKING:
    from pipeline.core.engine import Operator
    from pipeline.core.plan import Plan
    from pipeline.core.rules import RuleStage, TriggerSpec

EVICTED = "persons.evicted"
SEG, SEG_ALL, FATIGUE, PRED = 1, 2, 4, 8  # a buffered entry's flags (RuleStage.after_event)


def settle(
    stage: RuleStage,
    person: dict[str, Any],
    st: dict[str, Any],
    person_id: str,
    watermark: int,
    *,
    operators: Sequence[Operator],
) -> list[Output]:
    """``StageRun(...).run(watermark)``, without the walk when nothing is due.

    Nothing buffered final and no deadline at or below ``watermark``: only the
    absence rules' end-of-settle step remains (each records the watermark it
    was decided at and prunes its history; nothing can fire there).
    """
    queue = st.get("q")
    if (queue and queue[0][0] < watermark) or "seg_at" in st:
        return StageRun(stage, person, st, person_id, operators).run(watermark)
    plan = stage.plan
    behavior = behavior_of(operators)
    due = next_due(plan, st, person, behavior)
    if due is not None and due <= watermark:
        return StageRun(stage, person, st, person_id, operators).run(watermark, due)
    states = st.get("t")
    run: StageRun | None = None
    if states:
        for spec, rule, name in plan.absence_named:
            snap = states.get(name)
            if snap is not None:
                snap, outs = rule.on_watermark(snap, person_id, watermark)
                if snap is None:
                    states.pop(name, None)
                else:
                    states[name] = snap
                if outs:  # (not expected: a due timer takes the walk above)
                    run = run or StageRun(stage, person, st, person_id, operators)
                    run._fire([(spec, o.record, None) for o in outs], watermark)
    if not queue:
        st.pop("q", None)
    store(person, st)
    return run.out if run is not None else []


def behavior_of(operators: Sequence[Operator]) -> Operator | None:
    """The behavior operator among ``operators`` (sessions and traits), if any."""
    for op in operators:
        if op.name == BEHAVIOR:
            return op
    return None


def next_due(
    plan: Plan, st: dict[str, Any], person: dict[str, Any], behavior: Operator | None
) -> int | None:
    """The earliest deadline of the stage's walk: absence timers, segment checks, closes.

    With predictions, every session close (a scoring point) and label deadline too.
    """
    best: int | None = st.get("sx")
    labels = plan.labels
    if labels is not None:
        d = labels.next_due(st)
        if d is not None and (best is None or d < best):
            best = d
    states = st.get("t")
    if states:
        by_name = plan.absence_by_name
        for name, snap in states.items():
            rule = by_name.get(name)
            if rule is None:
                continue
            d = rule.due_ms(snap)
            if snap["buf"]:  # a snapshot from before final-only buffering
                d = min(d, min(it[0] for it in snap["buf"]) + 1) if d else None
            if d is not None and (best is None or d < best):
                best = d
    if behavior is not None and (plan.session_segs or st.get("seg") or labels is not None):
        if isinstance(behavior, BehaviorOperator):  # (a direct call in the compiled core)
            d = behavior.next_deadline_ms(person.get(BEHAVIOR))
        else:
            d = behavior.next_deadline_ms(person.get(BEHAVIOR))
        if d is not None and (best is None or d < best):
            best = d
    return best


class StageRun:
    """One settle of one person's rule stage (see the module docstring)."""

    def __init__(
        self,
        stage: RuleStage,
        person: dict[str, Any],
        st: dict[str, Any],
        person_id: str,
        operators: Sequence[Operator],
    ) -> None:
        self.stage = stage
        self.plan = stage.plan
        self.person = person
        self.st = st
        self.pid = person_id
        self.operators = operators
        self.behavior = behavior_of(operators)
        self.out: list[Output] = []
        #: ``(sessions record, profiles record or None)`` of each session the walk closed
        self.closes: list[tuple[dict[str, Any], dict[str, Any] | None]] = []
        self.flush = False

    def run(self, watermark: int, due: int | None = None) -> list[Output]:
        """Walk to ``watermark``; ``due``: :func:`next_due` of the state as it is, if known."""
        st = self.st
        self.flush = watermark >= FLUSH_MS
        known = due is not None and "seg_at" not in st
        st.pop("seg_at", None)  # (the fixed 6-hour re-check of older states)
        queue: list[list[Any]] = st.get("q") or []
        i = 0
        while True:
            t_ev = queue[i][0] if i < len(queue) and queue[i][0] < watermark else None
            if known:  # the first step, with the caller's agenda (nothing changed since)
                t_dl, known = due, False
            else:
                t_dl = self._next_due()
            if t_dl is not None and t_dl > watermark:
                t_dl = None
            if t_ev is None and t_dl is None:
                break
            if t_dl is not None and (t_ev is None or t_dl <= t_ev):
                self._at_time(t_dl)
                continue
            j = i + 1
            while j < len(queue) and queue[j][0] == t_ev:
                j += 1
            self._at_events(queue[i:j])
            i = j
        if i:
            del queue[:i]
        if not queue:
            st.pop("q", None)
        states = st.get("t")
        if states:
            for spec, rule, name in self.plan.absence_named:
                snap = states.get(name)
                if snap is not None:
                    snap, outs = rule.on_watermark(snap, self.pid, watermark)
                    self._put_rule(name, snap)
                    self._fire([(spec, o.record, None) for o in outs], watermark)
        store(self.person, st)
        return self.out

    # -- the agenda ----------------------------------------------------------------

    def _next_due(self) -> int | None:
        return next_due(self.plan, self.st, self.person, self.behavior)

    def _advance(self, t: int) -> tuple[bool, bool]:
        """Move the operators to ``t``; returns (a session closed, the person was evicted)."""
        closed = evicted = False
        snap: Any  # any operator's (declared: else the first branch's type is checked)
        for op in self.operators:
            if isinstance(op, BehaviorOperator):  # (a direct call in the compiled core)
                snap, outs = op.on_watermark(self.person.get(op.name), self.pid, t)
            else:
                snap, outs = op.on_watermark(self.person.get(op.name), self.pid, t)
            if snap is None:
                self.person.pop(op.name, None)
            else:
                self.person[op.name] = snap
            if outs:
                self.out.extend(outs)
                for o in outs:
                    closed = closed or o.topic == SESSIONS
                    evicted = evicted or o.topic == EVICTED
                if closed and self.plan.labels is not None:
                    self.closes.extend(closed_sessions(outs))
        return closed, evicted

    def _predict(self, t: int, evicted: bool, *, deadlines: bool = True) -> None:
        """Scoring points at the sessions closed up to ``t``, labels due at ``t``."""
        labels = self.plan.labels
        assert labels is not None
        if deadlines:
            self.out.extend(labels.on_deadline(self.st, t, self.pid, self.flush))
        if self.closes:
            self.out.extend(
                labels.on_closes(
                    self.person,
                    self.st,
                    self.closes,
                    self.pid,
                    self.stage.traits_of,
                    models=self.stage.models,
                )
            )
            self.closes.clear()
        if evicted:
            self.st.pop(ORDER_FACTS, None)  # forgotten with the traits

    def _at_time(self, t: int) -> None:
        st, plan = self.st, self.plan
        closed, evicted = self._advance(t)
        if plan.labels is not None:
            self._predict(t, evicted)
        fired: list[tuple[TriggerSpec, dict[str, Any], str | None]] = []
        states = st.get("t") or {}
        for spec, rule, name in plan.absence_named if states else ():
            snap = states.get(name)
            if snap is None:
                continue
            due = rule.due_ms(snap)
            if (due is not None and due <= t) or snap["buf"]:
                snap, outs = rule.on_watermark(snap, self.pid, t)
                self._put_rule(name, snap)
                fired.extend((spec, o.record, None) for o in outs)
        self._fire(fired, t)
        which: set[int] = set()
        sx = st.get("sx")
        if sx is not None and sx <= t:
            st.pop("sx", None)
            which |= plan.timed_segs
            for k in plan.timed_segs:
                st.get("sxs", {}).pop(self.stage.segments[k].name, None)
            if st.pop("sa", None):
                which |= set(range(len(self.stage.segments)))
        if closed:
            which |= plan.session_segs
        if evicted and st.get("seg"):
            which |= set(range(len(self.stage.segments)))
        if which:
            check_segments(self, which, t, t)

    def _at_events(self, group: list[list[Any]]) -> None:
        st, plan, stage = self.st, self.plan, self.stage
        t = group[0][0]
        _, evicted = self._advance(t)
        labels = plan.labels
        if labels is not None:
            if self.closes or evicted:  # (labels due by t: decided at t, before the events)
                self._predict(t, evicted, deadlines=False)
            for entry in group:
                if entry[6] & PRED:
                    self.out.extend(labels.on_outcome(st, t, labels.mask_of(entry[2]), self.pid))
                    if entry[2] == ORDER_EVENT:
                        st[ORDER_FACTS] = observe_order(st.get(ORDER_FACTS), t)
        for entry in group:
            if entry[6] & FATIGUE:
                st["caps"] = stage.caps.observe_at(st.get("caps"), entry[2], t)
                if not st["caps"]:
                    del st["caps"]
            if entry[7]:
                st["tz"] = entry[7]
        members = frozenset(st.get("seg") or ())
        fired: list[tuple[TriggerSpec, dict[str, Any], str | None]] = []
        touched: list[tuple[TriggerSpec, AbsenceRule]] = []
        touched_ids: set[int] = set()  # (by index: a spec's generated __eq__ is interpreted)
        built: dict[int, Event] = {}  # id(entry) -> its event, for the segment check
        states: dict[str, Any] = st.setdefault("t", {})
        for entry in group:
            if not entry[3]:
                continue
            event: Event | None = None
            for i in entry[3]:
                spec = stage.triggers[i]
                rule = spec.rule
                name = rule.name
                cancel = plan.is_cancel(i, entry[2])
                part = plan.where[i].state
                if not cancel and not part.empty:
                    if event is None:
                        event = event_of(entry)
                    if not part(self.person, t, members, event):
                        continue
                if event is None:
                    event = event_of(entry)
                snap = states.get(name)
                if isinstance(rule, AbsenceRule):
                    snap, _ = rule.on_event(snap, event, self.pid, t)
                    if i not in touched_ids:
                        touched_ids.add(i)
                        touched.append((spec, rule))
                    self._put_rule(name, snap)
                    continue
                snap, records = rule.on_event(snap, event, self.pid)
                self._put_rule(name, snap)
                fired.extend((spec, r, entry[7]) for r in records)
            if event is not None:
                built[id(entry)] = event
        for spec, absence in touched:
            snap, outs = absence.on_watermark(states.get(spec.name), self.pid, t + 1)
            self._put_rule(spec.name, snap)
            fired.extend((spec, o.record, None) for o in outs)
        self._fire(fired, t)
        flagged = [e for e in group if e[6] & (SEG | SEG_ALL)]
        if not flagged:
            return
        # each segment's cause: the last event at t that can change it (the first
        # check of all: the last event at t); which events were buffered for a
        # first check depends on arrival, so only the very first check uses them
        causes: dict[int, list[Any]] = {}
        if "ini" not in st:
            causes = dict.fromkeys(range(len(stage.segments)), flagged[-1])
        else:
            for entry in flagged:
                for k in (*plan.seg_by_name.get(entry[2], ()), *plan.seg_any):
                    causes[k] = entry
        if not causes:
            return
        st["ini"] = 1
        if self.behavior is not None:
            self.behavior_fold(t + 1)  # the events at t included
        check_segments(self, set(causes), t + 1, t, causes, events=built)

    def behavior_fold(self, until: int) -> None:
        if isinstance(self.behavior, BehaviorOperator):
            self.behavior.fold_until(self.person.get(BEHAVIOR), until)
            return
        fold = getattr(self.behavior, "fold_until", None)
        if fold is not None:
            fold(self.person.get(BEHAVIOR), until)

    # -- decisions -------------------------------------------------------------------

    def _put_rule(self, name: str, snap: Any) -> None:
        states = self.st.setdefault("t", {})
        if snap is None:
            states.pop(name, None)
        else:
            states[name] = snap

    def _zone(self) -> str | None:
        slice_ = self.person.get(BEHAVIOR)
        if slice_:
            known = slice_[TRAITS_KEY]["t"]["z"]
            if known is not None:
                return str(known[1])
        tz = self.st.get("tz")
        return None if tz is None else str(tz)

    def _fire(self, fired: list[tuple[TriggerSpec, dict[str, Any], str | None]], t: int) -> None:
        if not fired:
            return
        zone = self._zone()
        timing = None
        labels = self.plan.labels
        if labels is not None and any(spec.deliver_at is not None for spec, _, _ in fired):
            timing = timing_of(self.person, self.stage.models, labels.config.send_min_events)
        deliver(
            self.stage.caps,
            self.st,
            [(spec, record, tz or zone) for spec, record, tz in fired],
            self.out,
            timing,
            predicted=predicted_for(self.stage, self.person, t, fired),
        )


def store(person: dict[str, Any], st: dict[str, Any]) -> None:
    """Put the stage's slice back, or drop it when nothing in it matters."""
    if not st.get("t"):
        st.pop("t", None)
    if not st or (len(st) == 1 and "tz" in st):  # (set(st) <= {"tz"}, without the sets)
        person.pop("rules", None)
    else:
        person["rules"] = st
