"""Identity merges in event time: the reserved keys of a person's state.

A link between an anonymous id and a user has an event time ``T`` (the event
that carried both ids). The processor decides both persons apart up to ``T``
and as one after it, whatever the order in which the merge, the user's own
events and the watermark reach the user's partition:

* the merged-in state waits in ``"_pre"`` (``[[T, anonymous id, state], ...]``,
  sorted by ``T``) and is settled alone, its outputs keyed by the anonymous id,
  while the watermark is below ``T``;
* an event for the user that belongs to the anonymous person before ``T``
  (only the anonymous id, earlier than ``T``) goes to that part;
* an earlier event carrying both ids moves ``T`` back to its time: the link is
  the earliest event that names both, whichever arrived first;
* at ``T`` (the watermark reaching it) both parts are settled to ``T`` and
  merged; from then on they are one person.

``"_await"`` (``{anonymous id: T}``) is the barrier of a merge announced by the
link event (``Processor.process(..., awaits=...)``) that has not arrived: the
person is decided no further than ``T`` until it does (or is refused).
"""

from __future__ import annotations

from bisect import insort
from typing import Any

from pipeline.core.clock import NEG_INF_MS
from pipeline.core.events import Event
from pipeline.core.store import PersonState

NEXT = "_next"
#: The anonymous ids merged into a person (identity stitching), bounded by the rules.
IDS = "_ids"
#: Anonymous ids whose merge into this person is on its way, with the link's time.
AWAIT = "_await"
#: Per source partition, the offset of the last source record applied to this person.
SRC = "_src"
#: Merged-in persons not joined yet: ``[[T, anonymous id, state], ...]``.
PRE = "_pre"
RESERVED = frozenset({NEXT, IDS, AWAIT, SRC, PRE})


def applied(state: PersonState, source: tuple[int, int]) -> bool:
    """Whether the record at ``source`` (or a later one of its partition) was applied."""
    last = (state.get(SRC) or {}).get(str(source[0]))
    return last is not None and source[1] <= last


def mark(state: PersonState, source: tuple[int, int]) -> None:
    sources = state.get(SRC)
    if sources is None:
        sources = state[SRC] = {}
    sources[str(source[0])] = source[1]


def merged_sources(a: dict[str, int] | None, b: dict[str, int] | None) -> dict[str, int]:
    """Both persons' last applied offsets: the larger per source partition."""
    merged = dict(a or {})
    for partition, offset in (b or {}).items():
        merged[partition] = max(offset, merged.get(partition, offset))
    return merged


def _awaited(state: PersonState) -> dict[str, int]:
    raw = state.get(AWAIT)
    if not raw:
        return {}
    if isinstance(raw, list):  # a state from before link times: hold everything
        return dict.fromkeys(raw, NEG_INF_MS)
    return dict(raw)


def hold(state: PersonState, anonymous_id: str, at_ms: int) -> None:
    """Decide ``state`` no further than ``at_ms`` until ``anonymous_id`` merges in.

    A waiting part (``[T, id, None, [event record, ...]]``) collects the merged
    person's events from before ``T`` that arrive meanwhile, applied to its
    state when the merge brings it.
    """
    waiting = _awaited(state)
    waiting[anonymous_id] = min(at_ms, waiting.get(anonymous_id, at_ms))
    state[AWAIT] = waiting
    for entry in state.get(PRE) or ():
        if entry[1] == anonymous_id:
            return
    add_pre(state, at_ms, anonymous_id, None)


def pending_part(state: PersonState, anonymous_id: str) -> list[Any] | None:
    """The waiting part of ``anonymous_id`` (removed from ``state``), if any."""
    pres = state.get(PRE) or []
    for i, entry in enumerate(pres):
        if entry[1] == anonymous_id and entry[2] is None:
            del pres[i]
            if not pres:
                state.pop(PRE, None)
            return list(entry)
    return None


def release(state: PersonState, anonymous_id: str) -> bool:
    """Lift the barrier of ``anonymous_id``; True if there was one."""
    waiting = _awaited(state)
    if anonymous_id not in waiting:
        return False
    del waiting[anonymous_id]
    if waiting:
        state[AWAIT] = waiting
    else:
        state.pop(AWAIT, None)
    return True


def held_until(state: PersonState) -> int | None:
    """The time the person is held at by awaited merges (None: not held)."""
    waiting = state.get(AWAIT)
    if not waiting:
        return None
    held = min(_awaited(state).values())
    for entry in state.get(PRE) or ():
        if entry[2] is None and entry[0] < held:
            held = entry[0]  # an earlier event named both ids: the link moved back
    return held


def add_pre(state: PersonState, at_ms: int, anonymous_id: str, part: PersonState | None) -> None:
    """Keep ``part`` apart until the watermark reaches the link time ``at_ms``.

    ``part`` None: the merge is announced, not arrived (see :func:`hold`).
    """
    pres: list[list[Any]] = state.setdefault(PRE, [])
    insort(pres, [at_ms, anonymous_id, part, None if part else []], key=lambda p: (p[0], p[1]))


def route(state: PersonState, event: Event, person: str) -> tuple[PersonState, str, int | None]:
    """The state (and person id) an event for ``person`` applies to.

    An event of a merged-in person from before the link (only its anonymous id,
    earlier than ``T``) belongs to that part; an earlier event naming both ids
    moves ``T`` back to it. Everything else is the person's own. The third
    item is the time the target is decided up to at most (a part's link time,
    a barrier), if any.
    """
    pres = state.get(PRE)
    if not pres or event.anonymous_id is None:
        return state, person, held_until(state)
    for entry in pres:
        if entry[1] != event.anonymous_id or event.timestamp_ms >= entry[0]:
            continue
        if event.user_id is None or event.user_id == event.anonymous_id:
            if entry[2] is None:  # the merge is not here yet: keep the event for it
                entry[3].append(event.to_record())
                return {}, "", None
            return entry[2], entry[1], entry[0]
        entry[0] = event.timestamp_ms  # the link is the earliest event naming both
        pres.sort(key=lambda p: (p[0], p[1]))
        break
    return state, person, held_until(state)


def keeps(state: PersonState) -> bool:
    """Whether anything is left to keep (merged ids alone are not)."""
    for k in state:
        if k not in RESERVED:
            return True
    return bool(state.get(AWAIT) or state.get(PRE))
