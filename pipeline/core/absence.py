"""Absence rules: "A, then not B within T" (checkout abandonment and friends).

A rule is decided in event time, independent of arrival order within the
allowed lateness: events are buffered and only the *final* part of the
timeline (event time below the watermark) is evaluated, in time order. Within
T is half-open: a B at exactly ``A + T`` is too late. At equal timestamps an A
sorts before a B, so a purchase in the same millisecond as its checkout
converts it.

While a timer is pending, a repeated A does not re-arm it (a person cannot
re-enter the journey) unless ``restart_on_repeat`` is set, in which case the
newer A replaces the pending one and the deadline moves.

State is plain data (a JSON-able dict) so the adapters can persist it::

    {"buf": [[ts, kind, message_id, context], ...],   # kind 0 = A, 1 = B; not final yet
     "act": [start_ts, message_id, context] | None,   # the pending timer
     "w": watermark_ms,                               # the watermark it was decided at
     "hist": [[ts, kind, message_id, context], ...],  # final, within ``within_ms`` of w
     "h0": [start_ts, message_id, context] | None}    # what was pending at w - within_ms

**Merging two persons** (identity stitching, :meth:`AbsenceRule.merge`) must
give the triggers one person with both timelines would get. What is final
(below ``w``) has been consumed, so each state keeps the part of its history
that can still matter: every start and cancel less than ``within_ms`` behind
``w`` (``hist``; an older start has fired or been cancelled, an older cancel
can no longer convert anything pending) and the start that was pending at
that horizon (``h0``, which still blocks later starts under the no-rearm
policy). The merge replays both histories in time order from the earlier (or,
with ``restart_on_repeat``, the later) ``h0``: an earlier pending start wins,
a cancel of one person inside the other's window converts it. Starts that
already fired are never fired again: ``act`` then carries a fourth element,
``True`` (*resolved*: it blocks until its deadline but emits nothing).
``hist``, ``h0`` and ``w`` are optional (snapshots written before identity
stitching have none and load as empty). The history is pruned as the
watermark moves, so the state stays bounded and disappears ``within_ms``
after the person's last start or cancel (``2 * within_ms`` after a fired start).

What the merge cannot do is unsend: a trigger either person fired before the
merge stands, even if the other's events would have converted it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from pipeline.core.clock import POS_INF_MS
from pipeline.core.events import Event, canonical_event_name
from pipeline.core.outputs import Output

_START, _CANCEL = 0, 1

# Properties of the start event that a message about it needs.
_CONTEXT_KEYS = (
    "checkout_id", "cart_id", "order_id", "value", "revenue", "total", "currency",
    "coupon", "products", "product_id", "name", "category", "price", "url",
)  # fmt: skip


def trigger_id(rule: str, person_id: str, message_id: str) -> str:
    """Deterministic id of a trigger: the same rule, person and cause give the same id."""
    digest = hashlib.blake2b(f"{rule}\x1f{person_id}\x1f{message_id}".encode(), digest_size=16)
    return digest.hexdigest()


@dataclass(frozen=True, slots=True)
class AbsenceRule:
    """``start`` then no ``cancel`` within ``within_ms``: emit a trigger named ``name``."""

    name: str
    start: str
    cancel: str
    within_ms: int
    restart_on_repeat: bool = False

    def __post_init__(self) -> None:
        if self.within_ms <= 0:
            raise ValueError(f"rule {self.name!r}: within_ms must be positive")
        object.__setattr__(self, "start", canonical_event_name(self.start))
        object.__setattr__(self, "cancel", canonical_event_name(self.cancel))
        if self.start == self.cancel:
            raise ValueError(f"rule {self.name!r}: start and cancel are the same event")

    # -- the operator protocol (see pipeline.core.engine) ----------------------

    def wants(self, event: Event) -> bool:
        return event.event in (self.start, self.cancel)

    def on_event(
        self, state: dict[str, Any] | None, event: Event, person_id: str, watermark_ms: int
    ) -> tuple[dict[str, Any] | None, list[Output]]:
        outputs: list[Output] = []
        if state is not None and self._due(state, watermark_ms):
            state, outputs = self.on_watermark(state, person_id, watermark_ms)
        if not self.wants(event):
            return state, outputs
        state = {"buf": [], "act": None} if state is None else state
        if event.event == self.start:
            item = [event.timestamp_ms, _START, event.message_id, _start_context(event)]
        else:
            item = [event.timestamp_ms, _CANCEL, event.message_id, None]
        state["buf"].append(item)
        if event.timestamp_ms < watermark_ms:  # already final (a caller ahead of the engine)
            state, more = self.on_watermark(state, person_id, watermark_ms)
            outputs.extend(more)
        return state, outputs

    def on_watermark(
        self, state: dict[str, Any] | None, person_id: str, watermark_ms: int
    ) -> tuple[dict[str, Any] | None, list[Output]]:
        if state is None:
            return None, []
        if not self._due(state, watermark_ms) and not self._prunable(state, watermark_ms):
            # decided up to here (merges cut their history at it)
            state["w"] = max(watermark_ms, state.get("w", watermark_ms))
            return state, []
        buf: list[list[Any]] = sorted(state["buf"], key=_order)
        active: list[Any] | None = state["act"]
        hist: list[list[Any]] = list(state.get("hist") or ())
        outputs: list[Output] = []
        consumed = 0
        for item in buf:
            if item[0] >= watermark_ms:
                break  # not final yet: an earlier event may still arrive
            consumed += 1
            hist.append(item)
            active, due = self._step(active, item)
            if due is not None and (out := self._fire(due, person_id)) is not None:
                outputs.append(out)
        if active is not None and watermark_ms >= active[0] + self.within_ms:
            if (out := self._fire(active, person_id)) is not None:
                outputs.append(out)
            active = None
        h0, hist = self._prune(state.get("h0"), hist, watermark_ms - self.within_ms)
        rest = buf[consumed:]
        if not rest and active is None and not hist and h0 is None:
            return None, outputs
        snapshot: dict[str, Any] = {"buf": rest, "act": active, "w": watermark_ms}
        if hist:
            snapshot["hist"] = hist
        if h0 is not None:
            snapshot["h0"] = h0
        return snapshot, outputs

    def next_deadline_ms(self, state: dict[str, Any] | None) -> int | None:
        """The watermark at which this state needs :meth:`on_watermark` again.

        The pending timer's deadline, else the first buffered start's. With
        nothing pending, the time the history kept for merges (and any
        buffered cancel) is all gone: one timer that deletes the state. The
        history is pruned whenever the state is settled anyway, never by a
        timer of its own.
        """
        if state is None:
            return None
        due = self.due_ms(state)
        if due is not None:
            return due
        starts = [it[0] for it in state["buf"] if it[1] == _START]
        if starts:
            return int(min(starts)) + self.within_ms
        ends = [int(it[0]) + self.within_ms + 1 for it in state["buf"]]
        if hist := state.get("hist"):
            ends.append(int(hist[-1][0]) + self.within_ms)
        if h0 := state.get("h0"):
            ends.append(int(h0[0]) + 2 * self.within_ms)
        return max(ends) if ends else None

    def due_ms(self, state: dict[str, Any] | None) -> int | None:
        """The pending timer's deadline (None if no start is pending)."""
        if state is None or state["act"] is None:
            return None
        return int(state["act"][0]) + self.within_ms

    def _prunable(self, state: dict[str, Any], watermark_ms: int) -> bool:
        horizon = watermark_ms - self.within_ms
        hist, h0 = state.get("hist"), state.get("h0")
        return bool(hist and hist[0][0] <= horizon) or bool(
            h0 and horizon >= h0[0] + self.within_ms
        )

    def _due(self, state: dict[str, Any], watermark_ms: int) -> bool:
        act = state["act"]
        if act is not None and act[0] + self.within_ms <= watermark_ms:
            return True
        buf = state["buf"]
        return bool(buf) and any(it[0] < watermark_ms for it in buf)

    # -- identity stitching ----------------------------------------------------

    def merge(self, a: dict[str, Any] | None, b: dict[str, Any] | None) -> dict[str, Any] | None:
        """One state holding both persons' timelines (inputs untouched).

        Evaluate the result at the current watermark (:meth:`on_watermark`):
        a timer that is due fires then, once. See the module docstring.
        """
        if a is None or b is None:
            return b if a is None else a
        # Below the lower of the two watermarks both histories are final; above
        # it one person may still have unconsumed events that sort earlier, so
        # that part of the history goes back to the buffer and is replayed in
        # order (never a fired start: those left the history already).
        cut = min(_decided_at(a), _decided_at(b))
        unique = {(it[0], it[1], it[2]): it for it in [*_history(a), *_history(b)]}
        hist = sorted(unique.values(), key=_order)
        replay = [it for it in hist if it[0] >= cut]
        hist = hist[: len(hist) - len(replay)]
        h0 = self._earlier(a.get("h0"), b.get("h0"))
        active = None if h0 is None else [*h0[:3], True]
        for item in hist:
            active, _ = self._step(active, item)  # a start in hist cannot be due before cut
        merged: dict[str, Any] = {
            "buf": sorted([*a["buf"], *b["buf"], *replay], key=_order),
            "act": active,
            "w": cut,
        }
        if hist:
            merged["hist"] = hist
        if h0 is not None:
            merged["h0"] = h0
        return merged

    # -- internals -------------------------------------------------------------

    def _step(
        self, active: list[Any] | None, item: list[Any]
    ) -> tuple[list[Any] | None, list[Any] | None]:
        """Apply one final start/cancel: ``(active after, start that fell due before it)``."""
        ts, kind, message_id, context = item
        due = None
        if active is not None and ts >= active[0] + self.within_ms:
            due, active = active, None
        if kind == _CANCEL:
            active = None  # converted in time (or nothing was pending)
        elif active is None or self.restart_on_repeat:
            active = [ts, message_id, context]
        return active, due

    def _prune(
        self, h0: list[Any] | None, hist: list[list[Any]], horizon_ms: int
    ) -> tuple[list[Any] | None, list[list[Any]]]:
        """Fold history at or before ``horizon_ms`` into ``h0`` (pending at the horizon)."""
        drop = 0
        while drop < len(hist) and hist[drop][0] <= horizon_ms:
            h0, _ = self._step(h0, hist[drop])
            drop += 1
        if h0 is not None and horizon_ms >= h0[0] + self.within_ms:
            h0 = None  # it fell due before the horizon: it blocks nothing that is kept
        return (None if h0 is None else h0[:3]), hist[drop:]

    def _earlier(self, a: list[Any] | None, b: list[Any] | None) -> list[Any] | None:
        """The start pending first wins; with ``restart_on_repeat`` the later one does."""
        if a is None or b is None:
            return b if a is None else a
        first, last = sorted((a, b), key=lambda s: (s[0], s[1]))
        return last if self.restart_on_repeat else first

    def _fire(self, active: list[Any], person_id: str) -> Output | None:
        if len(active) > 3:
            return None  # resolved: it fired (or was converted) before a merge
        start_ts, message_id, context = active
        record = {
            "trigger_id": trigger_id(self.name, person_id, message_id),
            "rule": self.name,
            "person_id": person_id,
            "event_ids": [message_id],
            "event_time_ms": start_ts + self.within_ms,
            "context": dict(context or {}),
        }
        return Output("triggers", person_id, record)


def _order(item: list[Any]) -> tuple[int, int, str]:
    return item[0], item[1], item[2]


def _history(state: dict[str, Any]) -> list[list[Any]]:
    hist: list[list[Any]] = state.get("hist") or []
    if "w" not in state and state["act"] is not None and len(state["act"]) == 3:
        # a snapshot from before identity stitching: its pending start is all we know
        start_ts, message_id, context = state["act"]
        return [*hist, [start_ts, _START, message_id, context]]
    return hist


def _decided_at(state: dict[str, Any]) -> int:
    """The watermark ``state`` was decided at (a lower bound for old snapshots)."""
    if "w" in state:
        return int(state["w"])
    bounds = [it[0] for it in state["buf"]]
    if state["act"] is not None:
        bounds.append(state["act"][0])
    return min(bounds, default=POS_INF_MS)


def _start_context(event: Event) -> dict[str, Any]:
    context = {k: event.properties[k] for k in _CONTEXT_KEYS if k in event.properties}
    context["started_at_ms"] = event.timestamp_ms
    if channel := event.context.get("channel"):
        context["channel"] = channel
    return context
