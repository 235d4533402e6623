"""The one place that reads the core's per-person state for the profile API.

The core (``pipeline/core``) keeps a person as a compact dict whose layout is
its own business and may change (see ``pipeline/core/store.py``). Everything
the API shows is taken from it here, through the core's public functions
where there are some (``person_traits``, ``sessions.summary``,
``AbsenceRule.due_ms``) and by reading its documented slices where there are
none. Anything unexpected raises :class:`LayoutChanged`, so a layout change
fails ``tests/unit/test_profiles_view.py`` (and a lookup, with a 500 naming
it) instead of showing a wrong profile.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pipeline.core.absence import AbsenceRule
from pipeline.core.behavior import BehaviorOperator
from pipeline.core.clock import NEG_INF_MS
from pipeline.core.linking import AWAIT, IDS, NEXT, PRE
from pipeline.core.rules import RuleStage
from pipeline.core.sessions import summary
from pipeline.core.traits import TRAITS_KEY
from pipeline.topology.operators import person_traits

HOUR_MS = 3_600_000
#: Traits shown as scores (decayed interest per category / product).
SCORES = ("category_interest", "product_interest")


class LayoutChanged(Exception):
    """The core's person state no longer looks as this adapter expects."""


def _need(ok: bool, what: str) -> None:
    if not ok:
        raise LayoutChanged(
            f"person state layout changed: {what} (update pipeline/profiles/view.py)"
        )


class ProfileView:
    """Turns one person's core state into the API's JSON.

    The dict may share values with the live state: encode it (``orjson``) before
    the state changes, on the worker loop's thread (``lookups.py`` does).
    """

    def __init__(self, operators: Sequence[Any], stage: RuleStage | None) -> None:
        self.absence = [op for op in operators if isinstance(op, AbsenceRule)]
        self.behavior = next((op for op in operators if isinstance(op, BehaviorOperator)), None)
        self.stage = stage

    def profile(
        self, person_id: str, state: Mapping[str, Any], watermark_ms: int
    ) -> dict[str, Any]:
        """The person as of ``watermark_ms`` (the partition's; what decisions are made at)."""
        _need(isinstance(state, Mapping), "a person is not a dict")
        as_of = None if watermark_ms <= NEG_INF_MS else watermark_ms
        traits = dict(person_traits(state, as_of))
        scores = {k: traits.pop(k) for k in SCORES if k in traits}
        return {
            "person_id": person_id,
            "as_of_ms": as_of,
            "identities": self.identities(person_id, state),
            "traits": traits,
            "scores": scores,
            "predictions": self.predictions(traits, scores, as_of),
            "segments": self.segments(state),
            "open_session": self.open_session(person_id, state),
            "pending_timers": self.timers(state),
            "awaiting_watermark": self.buffered(state),
            "next_timer_ms": state.get(NEXT),
            "activity_heatmap": self.heatmap(state, traits.get("timezone")),
        }

    # -- parts -------------------------------------------------------------------------

    def predictions(
        self, traits: Mapping[str, Any], scores: Mapping[str, Any], as_of: int | None
    ) -> dict[str, Any]:
        """``{task: {probability, percentile, version}}`` with the models the worker uses now.

        What ``score.<task>`` reads as of the watermark; ``{}`` without a model
        (``pulse.models``) or before the person's first event is final.
        """
        models = getattr(self.stage, "models", None)
        if models is None or as_of is None or not traits or not models.scoring_tasks():
            return {}
        result: dict[str, Any] = models.scores({**traits, **scores}, as_of)
        return result

    def identities(self, person_id: str, state: Mapping[str, Any]) -> dict[str, Any]:
        ids = state.get(IDS) or []
        _need(isinstance(ids, list), f"{IDS} is not a list")
        pre = state.get(PRE) or []
        _need(all(isinstance(p, list) and len(p) >= 3 for p in pre), f"{PRE} entries")
        awaiting = state.get(AWAIT) or {}
        _need(isinstance(awaiting, Mapping), f"{AWAIT} is not a dict")
        return {
            "person_id": person_id,
            "anonymous_ids": sorted(str(i) for i in ids),
            # merged in, joined at the link's time once the watermark reaches it
            "joining": [{"anonymous_id": p[1], "link_ms": p[0]} for p in pre],
            "awaiting_merge": [{"anonymous_id": k, "link_ms": v} for k, v in awaiting.items()],
        }

    def _rules(self, state: Mapping[str, Any]) -> Mapping[str, Any]:
        st = state.get("rules") or {}
        _need(isinstance(st, Mapping), "rules slice is not a dict")
        return st

    def segments(self, state: Mapping[str, Any]) -> list[str]:
        seg = self._rules(state).get("seg") or []
        _need(isinstance(seg, list), "rules.seg is not a list")
        return [str(s) for s in seg]

    def open_session(self, person_id: str, state: Mapping[str, Any]) -> dict[str, Any] | None:
        if self.behavior is None:
            return None
        slice_ = state.get(self.behavior.name) or {}
        open_ = slice_.get("o") or []
        _need(isinstance(open_, list), "behavior.o (open sessions) is not a list")
        if not open_:
            return None
        try:
            record = summary(open_[-1], person_id, self.behavior.windows)
        except (KeyError, IndexError, TypeError) as exc:
            raise LayoutChanged(f"person state layout changed: open session ({exc!r})") from exc
        record["closes_at_ms"] = record.pop("closed_at_ms")
        return record

    def timers(self, state: Mapping[str, Any]) -> list[dict[str, Any]]:
        """Absence rules waiting for their deadline: rule, deadline, causing event."""
        found: list[tuple[str, AbsenceRule, Any]] = [
            (op.name, op, state.get(op.name)) for op in self.absence
        ]
        if self.stage is not None:
            snaps = self._rules(state).get("t") or {}
            found += [
                (spec.name, rule, snaps.get(spec.name)) for spec, rule in self.stage.plan.absence
            ]
        timers = []
        for name, rule, snap in found:
            if snap is None:
                continue
            _need(isinstance(snap, Mapping) and "act" in snap, f"absence state of {name}")
            act = snap["act"]
            if act is None:
                # a start not final yet (an operator decides at its deadline): the earliest
                starts = [b for b in snap.get("buf") or () if b[1] == 0]
                act = min(starts, key=lambda b: (b[0], b[2]), default=None)
                act = None if act is None else [act[0], act[2], act[3]]
            if act is None or (len(act) > 3 and act[3]):
                continue  # nothing pending, or fired already (kept only to block a restart)
            _need(len(act) >= 3 and isinstance(act[2], Mapping), f"{name}.act")
            timers.append(
                {
                    "rule": name,
                    "kind": "absence",
                    "deadline_ms": int(act[0]) + rule.within_ms,
                    "cancelled_by": rule.cancel,
                    "caused_by": {"message_id": act[1], "event_time_ms": act[0]},
                    "context": dict(act[2]),
                }
            )
        if self.behavior is not None:
            session = self.open_session("", state)
            if session is not None:
                cause = {"message_id": None, "event_time_ms": session["end_ms"]}
                timers.append(
                    {
                        "rule": "session_close",
                        "kind": "session",
                        "deadline_ms": session["closes_at_ms"],
                        "caused_by": cause,
                    }
                )
        return sorted(timers, key=lambda t: (t["deadline_ms"], t["rule"]))

    def buffered(self, state: Mapping[str, Any]) -> list[dict[str, Any]]:
        """Events received but not below the watermark yet: nothing is decided on them."""
        queue = self._rules(state).get("q") or []
        _need(isinstance(queue, list), "rules.q is not a list")
        out = []
        for entry in queue:
            _need(isinstance(entry, list) and len(entry) >= 3, "rules.q entry")
            out.append({"event_time_ms": entry[0], "message_id": entry[1], "event": entry[2]})
        for op in self.absence:
            for entry in (state.get(op.name) or {}).get("buf") or []:
                _need(isinstance(entry, list) and len(entry) >= 3, f"{op.name}.buf entry")
                event = op.start if entry[1] == 0 else op.cancel
                out.append({"event_time_ms": entry[0], "message_id": entry[2], "event": event})
        unique = {(e["event_time_ms"], e["message_id"]): e for e in out}
        return [unique[k] for k in sorted(unique)]

    def heatmap(self, state: Mapping[str, Any], zone: Any) -> dict[str, Any]:
        """Events of the last 7 days by hour of the week, in the person's zone (Monday first).

        From the hourly count buckets behind ``counts_7d``; ``cells[d][h]``.
        """
        cells = [[0] * 24 for _ in range(7)]
        empty = {"timezone": zone, "cells": cells, "total": 0}
        if self.behavior is None:
            return empty
        slice_ = state.get(self.behavior.name) or {}
        traits = slice_.get(TRAITS_KEY)
        if not traits:
            return empty
        _need(isinstance(traits, Mapping) and isinstance(traits.get("w"), Mapping),
              "behavior traits have no count windows ('w')")  # fmt: skip
        hours = traits["w"].get("h") or []
        try:
            tz = ZoneInfo(zone) if isinstance(zone, str) and zone else dt.UTC
        except (ZoneInfoNotFoundError, ValueError):
            tz = dt.UTC
        total = 0
        for bucket in hours:
            _need(isinstance(bucket, list) and len(bucket) == 2, "hour bucket")
            index, counts = bucket
            when = dt.datetime.fromtimestamp(index * HOUR_MS / 1000, tz)
            n = sum(int(c) for c in counts.values())
            cells[when.weekday()][when.hour] += n
            total += n
        return {"timezone": zone, "cells": cells, "total": total}
