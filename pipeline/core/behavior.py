"""The behavior operator: sessions, traits and the idle-person TTL in one state slice.

One operator so that a person's behavioral state is read and written once per
event, and so traits can count *sessions* (night and weekend shares) exactly
when a session closes. Its slice of person state::

    {"o": [open session, ...],     # sessions.py; merged on arrival
     "q": [fact, ...],             # events not yet below the watermark, by (ts, id)
     "t": traits state}            # traits.py; folds of every final event

**Event time, in order.** Sessions take an event as soon as it arrives (they
are order-independent sets). Trait folds take it once the watermark has
passed it, in ``(timestamp, message id)`` order; no event below the watermark
can still arrive, so the fold order (and every float sum) is the same whatever
the arrival order within the allowed lateness.

**What a watermark ``W`` does**, in event-time order up to ``W``: each
session with ``last + gap <= W`` closes at ``closed_at = last + gap``; before
it closes, every buffered event with ``ts < closed_at`` is folded; then the
session is folded into the session traits and two records go out:

* ``sessions``: the session summary (``sessions.summary``);
* ``profiles``: the traits as of ``closed_at`` (``schemas/profile.avsc``).

Then buffered events with ``ts < W`` are folded. So a profile is a pure
function of the events, not of when the watermark moved.

**Idle TTL.** A person with no event in ``[last_seen, last_seen + idle_ttl_ms)``
is evicted at ``last_seen + idle_ttl_ms`` once the watermark reaches it: the
traits restart from zero and ``persons.evicted`` gets a record, so downstream
knows. The eviction is in event time like the rest: events at or after it
that arrived early (the watermark lags behind another source partition) are
buffered in sessions and the queue, and belong to the person *after* the
eviction; only when nothing is left is the slice deleted. Replay ends with
the watermark at +inf, so it closes every session and evicts every person.
"""

from __future__ import annotations

import hashlib
from bisect import insort
from dataclasses import dataclass, field
from typing import Any

from pipeline.core.events import Event
from pipeline.core.facts import Fact, fact_of
from pipeline.core.folds import DAY_MS
from pipeline.core.opensession import Session, open_sessions
from pipeline.core.outputs import Output
from pipeline.core.sessions import (
    SESSIONS,
    SessionWindows,
    assign,
    close_due,
    merge_open,
    next_close_ms,
    summary,
)
from pipeline.core.traits import BEHAVIOR, DEFAULT_TRAITS, TRAITS_KEY, Traits

PROFILES = "profiles"
EVICTED = "persons.evicted"

Slice = dict[str, Any]


def _digest(*parts: str) -> str:
    return hashlib.blake2b("\x1f".join(parts).encode(), digest_size=16).hexdigest()


def _by_time(item: list[Any]) -> tuple[int, str]:
    return item[0], item[1]


@dataclass(frozen=True)
class BehaviorOperator:
    """Sessions + traits + idle TTL for every person (see the module docstring).

    ``idle_ttl_ms`` (30 days by default) must be at least the session gap, so a
    person is never evicted with a session open.
    """

    windows: SessionWindows = field(default_factory=SessionWindows)
    traits: Traits = field(default=DEFAULT_TRAITS, compare=False)
    idle_ttl_ms: int = 30 * DAY_MS
    emit_profiles: bool = True
    name: str = BEHAVIOR

    def __post_init__(self) -> None:
        if self.idle_ttl_ms < self.windows.inactivity_gap_ms:
            raise ValueError(
                f"idle_ttl_ms={self.idle_ttl_ms} is shorter than the session gap "
                f"({self.windows.inactivity_gap_ms}): a person would be evicted mid-session"
            )

    # -- the operator protocol (see pipeline.core.engine) ----------------------

    def on_event(
        self, state: Slice | None, event: Event, person_id: str, watermark_ms: int
    ) -> tuple[Slice | None, list[Output]]:
        outputs: list[Output] = []
        if state is not None and self._due(state, watermark_ms):
            state, outputs = self.on_watermark(state, person_id, watermark_ms)
        if state is None:
            state = {"o": [], "q": [], TRAITS_KEY: self.traits.initialize()}
        fact = fact_of(event)
        state["o"] = assign(state["o"], fact, event, self.windows)
        queue: list[list[Any]] = state["q"]
        last = queue[-1] if queue else None
        if last is None or (last[0], last[1]) <= (fact.ts, fact.mid):  # in order: the usual case
            queue.append(fact.to_list())
        else:
            insort(queue, fact.to_list(), key=_by_time)
        return state, outputs

    def on_watermark(
        self, state: Slice | None, person_id: str, watermark_ms: int
    ) -> tuple[Slice | None, list[Output]]:
        if state is None or not self._due(state, watermark_ms):
            return state, []
        queue: list[list[Any]] = state["q"]
        traits = state[TRAITS_KEY]
        outputs: list[Output] = []
        done = 0
        # in event time: fold, close sessions and evict, whichever comes first; a
        # session closing at t and the eviction at t come before an event at t
        while True:
            close = next_close_ms(state["o"], self.windows)
            last = self.traits.last_seen_ms(traits)
            evict = None if last is None else last + self.idle_ttl_ms
            until = watermark_ms
            if close is not None and close < until:
                until = close
            if evict is not None and evict < until:
                until = evict
            done = self._fold_until(traits, queue, done, until)
            if self.traits.last_seen_ms(traits) != last:
                continue  # an event before the eviction: it moved
            if close is not None and close <= watermark_ms and (evict is None or close <= evict):
                open_, closed = close_due(state["o"], close, self.windows)
                state["o"] = open_
                for sess in closed:
                    outputs.extend(self._close(traits, sess, person_id))
                continue
            if evict is not None and evict <= watermark_ms:
                # every session with an event before ``evict`` is closed (ttl >= gap);
                # events at or after it (buffered early) start the person afresh
                outputs.append(Output(EVICTED, person_id, self._evicted(traits, person_id)))
                traits = state[TRAITS_KEY] = self.traits.initialize()
                continue
            break
        if done:
            del queue[:done]
        if not state["o"] and not queue and self.traits.last_seen_ms(traits) is None:
            return None, outputs
        return state, outputs

    def next_deadline_ms(self, state: Slice | None) -> int | None:
        """First session close or TTL eviction, whichever comes first.

        The eviction is ``idle_ttl_ms`` after the last event before it: buffered
        events (not folded yet) before that time move it.
        """
        if state is None:
            return None
        ttl = self.idle_ttl_ms
        last = self.traits.last_seen_ms(state[TRAITS_KEY])
        queue: list[list[Any]] = state["q"]
        ts: int  # (typed: the compiled core compares native ints)
        for item in queue:  # sorted by time
            ts = item[0]
            if last is None or ts > last:
                if last is not None and ts >= last + ttl:
                    break
                last = ts
        close = next_close_ms(state["o"], self.windows)
        if close is None:
            return None if last is None else last + ttl
        return close if last is None or close <= last + ttl else last + ttl

    # -- identity stitching ----------------------------------------------------

    def merge(self, a: Slice | None, b: Slice | None) -> Slice | None:
        """The slice of one person holding both persons' events (inputs untouched)."""
        if a is None or b is None:
            return b if a is None else a
        return {
            "o": merge_open(a["o"], b["o"], self.windows),
            "q": sorted([*a["q"], *b["q"]], key=_by_time),
            TRAITS_KEY: self.traits.merge(a[TRAITS_KEY], b[TRAITS_KEY]),
        }

    def fold_until(self, state: Slice | None, until_ms: int) -> None:
        """Fold buffered events before ``until_ms`` without closing sessions (in place).

        For the rule stage, which reads traits right after an event: call it
        only once every session closing at or before ``until_ms - 1`` is closed
        (``on_watermark`` up to there), so profiles stay "as of" their close.
        """
        if state is None:
            return
        queue: list[list[Any]] = state["q"]
        done = self._fold_until(state[TRAITS_KEY], queue, 0, until_ms)
        if done:
            del queue[:done]

    # -- internals -------------------------------------------------------------

    def _due(self, state: Slice, watermark_ms: int) -> bool:
        """Whether :meth:`on_watermark` at ``watermark_ms`` has anything to do."""
        queue: list[list[Any]] = state["q"]
        first: int
        if queue:
            first = queue[0][0]
            if first < watermark_ms:
                return True
        # :meth:`next_deadline_ms` <= watermark, without walking the buffer: every
        # buffered event is at or after the watermark, so none moves an eviction
        # that is due to after it, and none can make one due
        last = self.traits.last_seen_ms(state[TRAITS_KEY])
        if last is not None and last + self.idle_ttl_ms <= watermark_ms:
            return True
        close_by = watermark_ms - self.windows.inactivity_gap_ms
        return any(sess.l <= close_by for sess in open_sessions(state["o"]))

    def _fold_until(self, traits: Any, queue: list[list[Any]], start: int, until_ms: int) -> int:
        i = start
        while i < len(queue) and queue[i][0] < until_ms:
            self.traits.aggregate(traits, Fact.from_list(queue[i]))
            i += 1
        return i

    def _close(self, traits: Any, sess: Session, person_id: str) -> list[Output]:
        record = summary(sess, person_id, self.windows)
        self.traits.aggregate_session(traits, sess.s, record["timezone"])
        outputs = [Output(SESSIONS, person_id, record)]
        if self.emit_profiles:
            as_of = record["closed_at_ms"]
            profile = {
                "profile_id": _digest("profile", person_id, record["session_id"]),
                "person_id": person_id,
                "session_id": record["session_id"],
                "as_of_ms": as_of,
                "traits": self.traits.result(traits, as_of),
            }
            outputs.append(Output(PROFILES, person_id, profile))
        return outputs

    def _evicted(self, traits: Any, person_id: str) -> dict[str, Any]:
        last = self.traits.last_seen_ms(traits)
        assert last is not None
        events_total, sessions_total = self.traits.totals(traits)
        return {
            "eviction_id": _digest("evicted", person_id, str(last)),
            "person_id": person_id,
            "reason": "idle_ttl",
            "idle_ttl_ms": self.idle_ttl_ms,
            "evicted_at_ms": last + self.idle_ttl_ms,
            "first_seen_ms": self.traits.first_seen_ms(traits),
            "last_seen_ms": last,
            "events_total": events_total,
            "sessions_total": sessions_total,
        }
