"""Segment membership re-checked for one person during the rule stage's walk.

:func:`check_segments` evaluates the segments a step of
:class:`~pipeline.core.stagerun.StageRun` may have changed (and every segment
another one's condition refers to), records ``entered``/``exited`` changes at
the step's time with the buffered event that caused them, and keeps the next
time each time-dependent segment can change (``sxs``, earliest in ``sx``) so
the walk re-checks it exactly then.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pipeline.core.delivery import predicted_for, segment_change
from pipeline.core.events import Event

if TYPE_CHECKING:
    from pipeline.core.stagerun import StageRun


def event_of(entry: list[Any]) -> Event:
    """The event a buffered entry stands for (complete when the plan kept it)."""
    if entry[8] is not None:
        return Event.from_record(entry[8])
    channel = entry[5]
    return Event(
        message_id=entry[1],
        type="track",
        event=entry[2],
        timestamp_ms=entry[0],
        properties=entry[4] or {},
        context={"channel": channel} if channel else {},
    )


def check_segments(
    run: StageRun,
    which: set[int],
    as_of: int,
    at_ms: int,
    causes: dict[int, list[Any]] | None = None,
    *,
    events: dict[int, Event] | None = None,
) -> None:
    """Re-check ``run``'s person's segments ``which`` as of ``as_of``; changes are at ``at_ms``.

    ``causes``: per segment, the buffered event that made the check (none
    for a check at a point in time: a close, an expiry, a merge). ``events``:
    the :class:`Event` of buffered entries already built, by ``id(entry)``
    (the step's triggers built them; an event is immutable, so it is shared).
    """
    stage, plan, st = run.stage, run.plan, run.st
    causes = causes or {}
    if plan.referencing:
        which = which | plan.referencing
    before = frozenset(st.get("seg") or ())
    now = set(before)
    probe: Event | None = None  # the event a check at a point in time sees (built once)
    made: dict[int, Event] = {} if events is None else events
    cause_of: dict[str, str | None] = {}
    sxs: dict[str, int] = st.get("sxs") or {}
    for k in sorted(which):
        seg = stage.segments[k]
        part = plan.seg_where[k].state
        entry = causes.get(k)
        cause_of[seg.name] = None if entry is None else entry[1]
        event: Event | None = None  # only custom code and event conditions read it
        if entry is not None and part.event_conditions:
            event = made.get(id(entry))  # (causes often share an entry)
            if event is None:
                event = made[id(entry)] = event_of(entry)
        elif part.custom or part.event_conditions:
            if probe is None:
                probe = Event(message_id="", type="track", timestamp_ms=at_ms, user_id=run.pid)
            event = probe
        if part(run.person, as_of, before, event):
            now.add(seg.name)
        else:
            now.discard(seg.name)
        if k in plan.timed_segs:
            nxt = part.next_change_ms(run.person, as_of, stage.segment_recheck_ms)
            if nxt is None:
                sxs.pop(seg.name, None)
            else:
                sxs[seg.name] = nxt
    predicted: dict[str, Any] | None = None  # scores and recs for the activations, once
    for seg in stage.segments:
        entered = seg.name in now and seg.name not in before
        if not entered and not (seg.name in before and seg.name not in now):
            continue
        if predicted is None and seg.destinations:
            predicted = predicted_for(stage, run.person, as_of) or {}
        segment_change(
            seg, run.pid, "entered" if entered else "exited", at_ms,
            cause=cause_of.get(seg.name), out=run.out, predicted=predicted,
        )  # fmt: skip
    if now:
        st["seg"] = sorted(now)
    else:
        st.pop("seg", None)
    if sxs:
        st["sxs"] = sxs
    else:
        st.pop("sxs", None)
    if not st.get("sa"):  # (a merge's re-check of every segment stays pending)
        if sxs:
            st["sx"] = min(sxs.values())
        else:
            st.pop("sx", None)
