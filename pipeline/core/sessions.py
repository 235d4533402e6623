"""Event-time sessions per person: merge on arrival, close on the watermark.

A *session* is a maximal run of a person's events in which consecutive events
(in event time) are less than ``inactivity_gap_ms`` apart. Each event opens the
half-open window ``[ts, ts + gap)``; sessions whose windows overlap merge. So
an event at ``ts`` joins a session ``[start, last]`` exactly when::

    start - gap < ts < last + gap

and one event can bridge two sessions into one. Membership depends only on the
*set* of events, never on arrival order.

**Closing rule.** A session closes when the watermark reaches
``last + inactivity_gap_ms`` (``closed_at_ms``). That is the earliest moment
it is final: every later event has ``ts >= watermark >= last + gap`` and so
starts a new session. In stream-time terms the session closes at
``stream_time >= last + gap + grace`` because the watermark trails stream time
by the processor's allowed lateness.

**Grace is the processor's allowed lateness.** The engine routes an event
below the watermark to ``events.late`` before any operator sees it; every
event an operator sees is at or above the watermark, so a late event *within*
grace always reaches an open session and extends or merges it. A separate
per-session grace could only delay emission, never accept more events, so
``SessionWindows.grace_ms`` is either ``None`` (use the processor's) or an
assertion checked by :meth:`SessionWindows.check_lateness`.

Example: gap 30 min, allowed lateness 5 min, events at 10:00 and 10:20 give one
session ``[10:00, 10:20]`` that closes when the watermark reaches 10:50, i.e.
when an event at 10:55 or later is seen (or replay ends).

The summary record (topic ``sessions``, ``schemas/session.avsc``) is a pure
function of the session's events: its id is derived from the person and the
first event's message id, maps are key-sorted, pages and products are the
``max_items`` lexicographically smallest (bounded, order-independent).
"""

from __future__ import annotations

import hashlib
from bisect import insort
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pipeline.core.events import Event
from pipeline.core.facts import ORDER_EVENT, Fact, fact_of
from pipeline.core.opensession import Session, open_sessions, session_of
from pipeline.core.outputs import Output

SESSIONS = "sessions"
MINUTE_MS = 60_000


@dataclass(frozen=True, slots=True)
class SessionWindows:
    """Session window config: gap in ms (30 min default), grace, item cap.

    >>> SessionWindows(inactivity_gap_ms=10 * 60_000).inactivity_gap_ms
    600000
    """

    inactivity_gap_ms: int = 30 * MINUTE_MS
    grace_ms: int | None = None
    max_items: int = 50
    conversion_event: str = ORDER_EVENT

    def __post_init__(self) -> None:
        if self.inactivity_gap_ms <= 0:
            raise ValueError(f"inactivity_gap_ms must be positive, got {self.inactivity_gap_ms}")
        if self.grace_ms is not None and self.grace_ms < 0:
            raise ValueError(f"grace_ms must be >= 0, got {self.grace_ms}")
        if self.max_items <= 0:
            raise ValueError(f"max_items must be positive, got {self.max_items}")

    def check_lateness(self, allowed_lateness_ms: int) -> int:
        """The effective grace for a processor with this allowed lateness.

        Raises :class:`ValueError` when an explicit ``grace_ms`` disagrees: the
        grace *is* the allowed lateness (see the module docstring).
        """
        if self.grace_ms is not None and self.grace_ms != allowed_lateness_ms:
            raise ValueError(
                f"session grace_ms={self.grace_ms} but the processor's allowed lateness is "
                f"{allowed_lateness_ms}: they are the same setting (PULSE_ALLOWED_LATENESS_MS)"
            )
        return allowed_lateness_ms


def session_id(person_id: str, first_message_id: str) -> str:
    """Deterministic session id: the same person and first event give the same id."""
    raw = f"session\x1f{person_id}\x1f{first_message_id}".encode()
    return hashlib.blake2b(raw, digest_size=16).hexdigest()


# -- one session as a fold: new / add / merge / summary ---------------------------


def _earliest(current: list[Any] | None, candidate: list[Any]) -> list[Any]:
    """Keep whichever of two ``[ts, message_id, ...]`` entries comes first."""
    if current is None or (candidate[0], candidate[1]) < (current[0], current[1]):
        return candidate
    return current


def new_session(ts: int, mid: str) -> Session:
    """An empty session anchored at one event time (add the event next)."""
    return Session(ts, ts, [ts, mid], 0, {}, [], [], None, False, None, None, None)


def _before(current: list[Any] | None, ts: int, mid: str) -> bool:
    """Whether an event ``(ts, mid)`` comes before the ``[ts, message_id, ...]`` entry."""
    if current is None:
        return True
    first: int = current[0]
    return ts < first or (ts == first and mid < current[1])


def add_event(sess: Session, fact: Fact, event: Event, cfg: SessionWindows) -> Session:
    """Fold one event into ``sess`` (updated in place and returned)."""
    ts, mid = fact.ts, fact.mid
    sess.s = min(sess.s, ts)
    sess.l = max(sess.l, ts)
    if _before(sess.k, ts, mid):
        sess.k = [ts, mid]
    sess.c += 1
    names = sess.n
    names[fact.name] = names.get(fact.name, 0) + 1
    if fact.page is not None:
        _add_capped(sess.pg, fact.page, cfg.max_items)
    for product, _category in fact.items:
        if product is not None:
            _add_capped(sess.pr, product, cfg.max_items)
    if fact.cart is not None and (sess.cv is None or fact.cart > sess.cv):
        sess.cv = fact.cart
    if fact.name == cfg.conversion_event:
        sess.x = True
    ctx = event.context
    if (channel := ctx.get("channel")) and _before(sess.ch, ts, mid):
        sess.ch = [ts, mid, channel]
    campaign = (ctx.get("campaign_source"), ctx.get("campaign_medium"), ctx.get("campaign_name"))
    if campaign != (None, None, None) and _before(sess.cp, ts, mid):
        sess.cp = [ts, mid, *campaign]
    if fact.tz and _before(sess.z, ts, mid):
        sess.z = [ts, mid, fact.tz]
    return sess


def _add_capped(items: list[str], item: str, cap: int) -> None:
    if item in items:
        return
    insort(items, item)
    if len(items) > cap:
        items.pop()


def merge_sessions(a: Session, b: Session, cfg: SessionWindows) -> Session:
    """One session holding the events of both (a new session; inputs untouched)."""
    names = dict(a.n)
    for name, count in b.n.items():
        names[name] = names.get(name, 0) + count
    cart = [v for v in (a.cv, b.cv) if v is not None]
    return Session(
        min(a.s, b.s),
        max(a.l, b.l),
        _earliest(a.k, b.k),
        a.c + b.c,
        names,
        sorted(set(a.pg) | set(b.pg))[: cfg.max_items],
        sorted(set(a.pr) | set(b.pr))[: cfg.max_items],
        max(cart) if cart else None,
        a.x or b.x,
        _first_of(a.ch, b.ch),
        _first_of(a.cp, b.cp),
        _first_of(a.z, b.z),
    )


def _first_of(a: list[Any] | None, b: list[Any] | None) -> list[Any] | None:
    return b if a is None else _earliest(a, b) if b else a


def summary(
    sess: Session | Mapping[str, Any], person_id: str, cfg: SessionWindows
) -> dict[str, Any]:
    """The ``sessions`` record (``schemas/session.avsc``) of a closed session.

    ``start_ms``/``end_ms`` are the times of its first and last event (both
    inclusive; ``duration_ms`` is 0 for a one-event session); ``closed_at_ms``
    is ``end_ms + inactivity_gap_ms``, the watermark at which it became final.
    """
    sess = session_of(sess)
    campaign = sess.cp or [None, None, None, None, None]
    return {
        "session_id": session_id(person_id, sess.k[1]),
        "person_id": person_id,
        "start_ms": sess.s,
        "end_ms": sess.l,
        "duration_ms": sess.l - sess.s,
        "closed_at_ms": sess.l + cfg.inactivity_gap_ms,
        "first_event_id": sess.k[1],
        "event_count": sess.c,
        "event_counts": dict(sorted(sess.n.items())),
        "pages": list(sess.pg),
        "products": list(sess.pr),
        "max_cart_value": sess.cv,
        "converted": sess.x,
        "channel": sess.ch[2] if sess.ch else None,
        "campaign_source": campaign[2],
        "campaign_medium": campaign[3],
        "campaign_name": campaign[4],
        "timezone": sess.z[2] if sess.z else None,
    }


# -- a person's open sessions ------------------------------------------------------


def assign(open_: list[Session], fact: Fact, event: Event, cfg: SessionWindows) -> list[Session]:
    """Add one event to a person's open sessions (sorted by start), merging as needed.

    Returns the new list; the sessions the event touched are replaced by one.
    """
    gap, ts = cfg.inactivity_gap_ms, fact.ts
    open_ = open_sessions(open_)
    touching = [i for i, s in enumerate(open_) if s.s - gap < ts < s.l + gap]
    if len(touching) == 1:  # the common case: extend in place, order is kept
        add_event(open_[touching[0]], fact, event, cfg)
        return open_
    target = add_event(new_session(ts, fact.mid), fact, event, cfg)
    for i in touching:  # the event bridges these: they become one session
        target = merge_sessions(target, open_[i], cfg)
    rest = [s for i, s in enumerate(open_) if i not in touching]
    insort(rest, target, key=_start)
    return rest


def merge_open(a: list[Session], b: list[Session], cfg: SessionWindows) -> list[Session]:
    """Union of two persons' open sessions, overlapping ones merged (identity stitching)."""
    merged: list[Session] = []
    for sess in sorted(open_sessions(list(a)) + open_sessions(list(b)), key=_start_key):
        if merged and sess.s < merged[-1].l + cfg.inactivity_gap_ms:
            merged[-1] = merge_sessions(merged[-1], sess, cfg)
        else:
            merged.append(sess)
    return merged


def close_due(
    open_: list[Session], watermark_ms: int, cfg: SessionWindows
) -> tuple[list[Session], list[Session]]:
    """Split into (still open, closed); closed ones ordered by closing time."""
    gap = cfg.inactivity_gap_ms
    open_ = open_sessions(open_)
    closed = [s for s in open_ if s.l + gap <= watermark_ms]
    if not closed:
        return open_, []
    closed.sort(key=_last_key)
    return [s for s in open_ if s.l + gap > watermark_ms], closed


def next_close_ms(open_: list[Session], cfg: SessionWindows) -> int | None:
    """The watermark at which the first open session closes (None if none is open)."""
    if not open_:
        return None
    open_ = open_sessions(open_)
    first = open_[0].l
    for s in open_:  # (a loop, not min() over a generator: this runs per settle)
        first = min(first, s.l)
    return first + cfg.inactivity_gap_ms


def _start(sess: Session) -> int:
    return sess.s


def _start_key(sess: Session) -> tuple[int, list[Any]]:
    return sess.s, sess.k


def _last_key(sess: Session) -> tuple[int, list[Any]]:
    return sess.l, sess.k


@dataclass(frozen=True, slots=True)
class SessionsOperator:
    """Sessions alone, as an engine operator: emits a summary on ``sessions`` per close.

    State: ``{"open": [session, ...]}`` sorted by start; ``None`` when no session
    is open. (:class:`~pipeline.core.behavior.BehaviorOperator` runs the same
    sessions *and* the traits in one state slice; use one or the other.)
    """

    windows: SessionWindows = SessionWindows()
    name: str = "sessions"

    def on_event(
        self, state: dict[str, Any] | None, event: Event, person_id: str, watermark_ms: int
    ) -> tuple[dict[str, Any] | None, list[Output]]:
        state, outputs = self.on_watermark(state, person_id, watermark_ms)
        open_ = state["open"] if state else []
        open_ = assign(open_, fact_of(event), event, self.windows)
        return {"open": open_}, outputs

    def on_watermark(
        self, state: dict[str, Any] | None, person_id: str, watermark_ms: int
    ) -> tuple[dict[str, Any] | None, list[Output]]:
        if state is None:
            return None, []
        open_, closed = close_due(state["open"], watermark_ms, self.windows)
        outputs = [Output(SESSIONS, person_id, summary(s, person_id, self.windows)) for s in closed]
        return ({"open": open_} if open_ else None), outputs

    def next_deadline_ms(self, state: dict[str, Any] | None) -> int | None:
        return None if state is None else next_close_ms(state["open"], self.windows)

    def merge(self, a: dict[str, Any] | None, b: dict[str, Any] | None) -> dict[str, Any] | None:
        """Both persons' open sessions, overlapping ones merged (identity stitching)."""
        if a is None or b is None:
            return b if a is None else a
        return {"open": merge_open(a["open"], b["open"], self.windows)}
