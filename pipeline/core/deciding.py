"""Deciding a person: operators and the rule stage brought up to a watermark.

What the :class:`~pipeline.core.engine.Processor` asks of a person's state
once it knows the person and the watermark: :meth:`Decider.settle` decides
everything below the watermark (joining merged-in persons at their link's
time), :meth:`Decider.join` merges two persons' states, and
:meth:`Decider.deadline` says when the person next needs deciding. It knows
the topology's operators and stage, never the store, the clock or the timers.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pipeline.core import linking
from pipeline.core.behavior import BehaviorOperator
from pipeline.core.clock import NEG_INF_MS
from pipeline.core.linking import PRE
from pipeline.core.operator import Operator, Stage
from pipeline.core.outputs import Output
from pipeline.core.rules import RuleStage
from pipeline.core.store import PersonState


class Decider:
    """A topology's operators and stage, applied to one person's state at a time."""

    def __init__(self, operators: Sequence[Operator], stage: Stage | None) -> None:
        self.operators = tuple(operators)
        self.stage = stage

    def settle(self, person: str, state: PersonState, watermark: int, out: list[Output]) -> None:
        """Decide everything of ``person`` below ``watermark`` (joins merged persons at T)."""
        held = linking.held_until(state)
        if held is not None and held < watermark:
            watermark = held
        pres = state.get(PRE)
        while pres and pres[0][0] <= watermark and pres[0][2] is not None:
            at, other_id, part, _ = pres.pop(0)
            self.settle_one(person, state, at, out)
            self.settle_one(other_id, part, at, out)
            self.join(state, part, at)
        if pres:
            for at, other_id, part, _ in pres:
                if part is not None:
                    self.settle_one(other_id, part, min(at, watermark), out)
        else:
            state.pop(PRE, None)
        self.settle_one(person, state, watermark, out)

    def settle_one(
        self, person: str, state: PersonState, watermark: int, out: list[Output]
    ) -> None:
        if watermark <= NEG_INF_MS:
            return
        stage = self.stage
        if isinstance(stage, RuleStage):  # noqa: SIM114 (a direct call when compiled)
            outs = stage.settle(state, person, watermark, self.operators)
            if outs:
                out.extend(outs)
        elif stage is not None:
            outs = stage.settle(state, person, watermark, self.operators)
            if outs:
                out.extend(outs)
        snapshot: Any  # any operator's (declared: else the first branch's type is checked)
        for op in self.operators:
            if isinstance(op, BehaviorOperator):
                snapshot, outs = op.on_watermark(state.get(op.name), person, watermark)
            else:
                snapshot, outs = op.on_watermark(state.get(op.name), person, watermark)
            put(state, op.name, snapshot)
            if outs:
                out.extend(outs)

    def join(self, state: PersonState, part: PersonState, at_ms: int) -> None:
        """Merge ``part`` into ``state`` (both settled up to ``at_ms``), in place."""
        for op in self.operators:
            put(state, op.name, op.merge(state.get(op.name), part.get(op.name)))
        if self.stage is not None:
            joined = self.stage.merge(state, part, at_ms=at_ms)
            state.pop("rules", None)
            state.update(joined)

    def deadline(self, state: PersonState) -> int | None:
        best: int | None = None
        for op in self.operators:
            if isinstance(op, BehaviorOperator):
                d = op.next_deadline_ms(state.get(op.name))
            else:
                d = op.next_deadline_ms(state.get(op.name))
            if d is not None and (best is None or d < best):
                best = d
        stage = self.stage
        if isinstance(stage, RuleStage):  # noqa: SIM114 (a direct call when compiled)
            d = stage.next_deadline_ms(state)
            if d is not None and (best is None or d < best):
                best = d
        elif stage is not None:
            d = stage.next_deadline_ms(state)
            if d is not None and (best is None or d < best):
                best = d
        return best


def put(state: PersonState, key: str, snapshot: Any) -> None:
    """Set ``state[key]`` to an operator's snapshot, or drop the key for None."""
    if snapshot is None:
        state.pop(key, None)
    else:
        state[key] = snapshot
