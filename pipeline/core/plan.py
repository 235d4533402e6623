"""The rule stage's compiled plan: which rules and segments each event concerns.

:func:`plan_of` compiles a :class:`~pipeline.core.rules.RuleStage` once: which
rules each event name concerns, each ``where`` split in its event part and its
state part (:mod:`pipeline.core.lookup`), what can change each segment.
:class:`~pipeline.core.stagerun.StageRun` walks a person's timeline with it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from pipeline.core.absence import _CONTEXT_KEYS as _ABSENCE_KEYS
from pipeline.core.absence import AbsenceRule
from pipeline.core.labels import Labels
from pipeline.core.lookup import Compiled, compile_predicate
from pipeline.core.reads import ANY
from pipeline.core.triggers import _CONTEXT_KEYS as _TRIGGER_KEYS
from pipeline.core.triggers import RepetitionRule

if TYPE_CHECKING:
    from pipeline.core.rules import RuleStage, TriggerSpec


@dataclass(frozen=True)
class Plan:
    """A rule stage, compiled (see the module docstring)."""

    by_event: dict[str, tuple[int, ...]]
    where: tuple[Compiled, ...]
    cancels: frozenset[tuple[int, str]]
    absence: tuple[tuple[TriggerSpec, AbsenceRule], ...]
    absence_named: tuple[tuple[TriggerSpec, AbsenceRule, str], ...]  # (spec, rule, rule name)
    absence_by_name: dict[str, AbsenceRule]
    keys: tuple[str, ...]
    keep_events: bool
    segment_names: frozenset[str] | None  # None: no segments; ``every``: all events
    every: frozenset[str]
    seg_where: tuple[Compiled, ...]
    seg_by_name: dict[str, tuple[int, ...]]
    seg_any: tuple[int, ...]
    session_segs: frozenset[int]
    timed_segs: frozenset[int]
    referencing: frozenset[int]
    #: the ``predictions:`` section's labels (None: predictions off)
    labels: Labels | None = None

    def is_cancel(self, rule: int, name: str) -> bool:
        return (rule, name) in self.cancels


def plan_of(stage: RuleStage) -> Plan:
    from pipeline.core.extensions import TRAITS  # registered before the topology is loaded

    custom = frozenset(TRAITS)
    by_event: dict[str, list[int]] = {}
    cancels: set[tuple[int, str]] = set()
    keys = dict.fromkeys([*_ABSENCE_KEYS, *_TRIGGER_KEYS])
    where = []
    for i, spec in enumerate(stage.triggers):
        rule = spec.rule
        names: list[str | None]
        if isinstance(rule, AbsenceRule):
            names = [rule.start, rule.cancel]
            cancels.add((i, rule.cancel))
        elif isinstance(rule, RepetitionRule):
            names = [rule.event, rule.unless]
            if rule.same is not None:
                keys[rule.same] = None
        else:
            names = [rule.event]
        for name in names:
            if name is not None:
                by_event.setdefault(name, []).append(i)
        where.append(
            compile_predicate(
                spec.where,
                stage.traits_of,
                custom,
                segment=False,
                models=stage.models,
                predictions=stage.predictions,
            )
        )
    seg_where = tuple(
        compile_predicate(
            s.where,
            stage.traits_of,
            custom,
            segment=True,
            models=stage.models,
            predictions=stage.predictions,
        )
        for s in stage.segments
    )
    seg_by_name: dict[str, list[int]] = {}
    seg_any: list[int] = []
    for k, comp in enumerate(seg_where):
        events = comp.state.events
        if events is ANY:
            seg_any.append(k)
        for name in events - ANY:
            seg_by_name.setdefault(name, []).append(k)
    names_all: frozenset[str] | None = None
    if stage.segments:
        names_all = ANY if seg_any else frozenset(seg_by_name)
    return Plan(
        by_event={k: tuple(v) for k, v in by_event.items()},
        where=tuple(where),
        cancels=frozenset(cancels),
        absence=tuple((s, s.rule) for s in stage.triggers if isinstance(s.rule, AbsenceRule)),
        absence_named=tuple(
            (s, s.rule, s.rule.name) for s in stage.triggers if isinstance(s.rule, AbsenceRule)
        ),
        absence_by_name={
            s.rule.name: s.rule for s in stage.triggers if isinstance(s.rule, AbsenceRule)
        },
        keys=tuple(keys),
        keep_events=any(w.state.custom for w in where)
        or any(w.state.custom or w.state.event_conditions for w in seg_where),
        segment_names=names_all,
        every=ANY,
        seg_where=seg_where,
        seg_by_name={k: tuple(v) for k, v in seg_by_name.items()},
        seg_any=tuple(seg_any),
        session_segs=frozenset(k for k, c in enumerate(seg_where) if c.state.session),
        timed_segs=frozenset(k for k, c in enumerate(seg_where) if c.state.timed),
        referencing=frozenset(k for k, c in enumerate(seg_where) if c.state.segments),
        labels=None if stage.predictions is None else Labels(stage.predictions),
    )
