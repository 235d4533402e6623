"""Frequency caps, quiet hours and message fatigue, shared across rules.

A cap limits how many triggers a person may receive: per channel and/or per
rule (or globally), over a rolling window or per calendar day in the person's
time zone. Quiet hours hold back every trigger whose event time falls inside
them (local time). Fatigue ("N dismissed or ignored messages within T") lowers
every cap by a factor while it lasts. Time is always the trigger's event time,
so decisions are deterministic and replay gives the same answer.

A suppressed trigger is not lost: it goes to ``pulse.triggers.suppressed`` with
the reason (``cap:<name>``, ``quiet_hours``).

State (plain data): ``{"sent": [[ts, rule, channel, local_day], ...],
"neg": [ts, ...]}``, pruned to the longest window; a delivery scheduled for
later (``deliver_at``) is ``[send_at, rule, channel, local_day, 1]``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pipeline.core.events import Event, canonical_event_name
from pipeline.core.localtime import local_day_hour

DAY_MS = 86_400_000


@dataclass(frozen=True, slots=True)
class Cap:
    """At most ``max`` triggers in ``window_ms`` (or per local calendar day)."""

    name: str
    max: int
    window_ms: int = DAY_MS
    calendar_day: bool = False
    channel: str | None = None
    rule: str | None = None

    def __post_init__(self) -> None:
        if self.max < 0:
            raise ValueError(f"cap {self.name!r}: max must be >= 0")
        if self.window_ms <= 0:
            raise ValueError(f"cap {self.name!r}: window must be positive")

    def applies(self, rule: str, channel: str | None) -> bool:
        return (self.rule is None or self.rule == rule) and (
            self.channel is None or self.channel == channel
        )


@dataclass(frozen=True, slots=True)
class Fatigue:
    """``at_least`` of ``events`` within ``within_ms`` multiplies every cap by ``factor``."""

    events: frozenset[str]
    at_least: int
    within_ms: int
    factor: float = 0.5

    @classmethod
    def of(cls, events: list[str], at_least: int, within_ms: int, factor: float) -> Fatigue:
        return cls(frozenset(canonical_event_name(e) for e in events), at_least, within_ms, factor)


@dataclass(frozen=True, slots=True)
class CapPolicy:
    """All caps, quiet hours and fatigue of a topology."""

    caps: tuple[Cap, ...] = ()
    quiet_start_hour: int | None = None
    quiet_end_hour: int | None = None
    fatigue: Fatigue | None = None

    @property
    def horizon_ms(self) -> int:
        windows = [DAY_MS * 2] + [c.window_ms for c in self.caps]
        if self.fatigue is not None:
            windows.append(self.fatigue.within_ms)
        return max(windows)

    def observe(self, state: Any, event: Event) -> Any:
        """Count negative engagement (dismissed/ignored messages)."""
        if event.event is None:
            return state
        return self.observe_at(state, event.event, event.timestamp_ms)

    def fatigues(self, name: str | None) -> bool:
        """Whether an event of this name counts as negative engagement."""
        return self.fatigue is not None and name in self.fatigue.events

    def observe_at(self, state: Any, name: str, at_ms: int) -> Any:
        """Count one ``name`` event at ``at_ms`` if it is negative engagement."""
        if not self.fatigues(name):
            return state
        state = dict(state or {})
        state["neg"] = [*state.get("neg", []), at_ms]
        return state

    @staticmethod
    def merge(a: Any, b: Any) -> Any:
        """Both persons' deliveries and negative engagement count (identity stitching)."""
        if not a or not b:
            return b or a or None
        merged: dict[str, Any] = {}
        sent = sorted([*a.get("sent", []), *b.get("sent", [])], key=lambda s: (s[0], s[1]))
        if sent:
            merged["sent"] = sent
        negatives = sorted([*a.get("neg", []), *b.get("neg", [])])
        if negatives:
            merged["neg"] = negatives
        return merged or None

    def _quiet(self, hour: int) -> bool:
        start, end = self.quiet_start_hour, self.quiet_end_hour
        if start is None or end is None:
            return False
        return start <= hour < end if start < end else hour >= start or hour < end

    def admit(
        self, state: Any, rule: str, channel: str | None, at_ms: int, timezone: str | None,
        *, decided_ms: int | None = None,
    ) -> tuple[Any, str | None]:  # fmt: skip
        """Record a delivery at ``at_ms``, or return the reason it is suppressed.

        ``decided_ms``: when the delivery is decided, for a delivery scheduled
        later (``deliver_at``: ``at_ms`` is its ``send_at``). Quiet hours and
        calendar days are those of ``at_ms``; a scheduled delivery is recorded
        with a mark, and a rolling cap counts marked deliveries on both sides
        of ``at_ms`` (a later decision may fall before an earlier one's send
        time), unmarked ones before it, as without scheduling.
        """
        state = dict(state or {})
        horizon = (at_ms if decided_ms is None else min(at_ms, decided_ms)) - self.horizon_ms
        sent = [s for s in state.get("sent", []) if s[0] > horizon]
        negatives = [t for t in state.get("neg", []) if t > horizon]
        day, hour = local_day_hour(at_ms, timezone)
        reason: str | None = None
        if self._quiet(hour):
            reason = "quiet_hours"
        factor = 1.0
        if self.fatigue is not None:
            recent = [t for t in negatives if at_ms - self.fatigue.within_ms < t <= at_ms]
            if len(recent) >= self.fatigue.at_least:
                factor = self.fatigue.factor
        for cap in self.caps:
            if reason is not None:
                break
            if not cap.applies(rule, channel):
                continue
            if cap.calendar_day:
                used = [s for s in sent if s[3] == day and cap.applies(s[1], s[2])]
            else:
                used = [
                    s
                    for s in sent
                    if (at_ms - cap.window_ms < s[0] <= at_ms
                        or (len(s) > 4 and at_ms < s[0] < at_ms + cap.window_ms))
                    and cap.applies(s[1], s[2])
                ]  # fmt: skip
            if len(used) >= int(cap.max * factor):
                reason = f"cap:{cap.name}" + (" (fatigue)" if factor < 1 else "")
        if reason is None:
            if decided_ms is not None and at_ms > decided_ms:
                sent.append([at_ms, rule, channel, day, 1])  # scheduled: see above
            else:
                sent.append([at_ms, rule, channel, day])
        if sent:
            state["sent"] = sent
        else:
            state.pop("sent", None)
        if negatives:
            state["neg"] = negatives
        else:
            state.pop("neg", None)
        return state, reason
