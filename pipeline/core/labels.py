"""Labels from the stream: scoring points, label timers, training examples.

At each scoring point (a session closing at
``t``) the stage snapshots the features and keeps, in the person's rule state,
``[t, values, pending tasks]``. For a task with outcome ``O`` and horizon
``h`` the label's window is ``(t, t + h]``:

* the first ``O`` (in event time) inside it decides the label then (1, or 0
  when ``label_if: absent``), with ``outcome_at_ms`` = its time;
* else the deadline decides it: at ``t + h + 1`` (every event up to
  ``t + h`` is final once the watermark is there), label 0 (1 for
  ``absent``), ``outcome_at_ms`` null.

Each decision is one record on the logical topic ``training.<task>`` (keyed by
person), the training-example JSON of docs/predictions.md. Deadlines are on
the stage's agenda like absence timers, so the examples are a function of the
events and their times, whatever the arrival order within the lateness.

**End of input.** Replay ends by moving the watermark to (nearly) +inf. That
is not event time: a label whose deadline is after the last real watermark is
not decided by it (a churn label would otherwise read "no event for 30 days"
where the data simply ends). Such a label is *censored*: one record on
``training.censored`` says which, no example is written. An outcome event in
the input still decides a label in that flush (it happened).

**Idle eviction.** Pending labels live in the rule stage's slice, not in the
traits, so they survive the person's eviction (their deadlines keep the slice
alive) and are decided as usual; the features were fixed when scored. The
few order facts the traits do not keep (``ORDER_FACTS``) are forgotten
with the traits at the eviction.

State: the snapshots waiting for labels are a plain list in the rule stage's
slice (``st["lab"]``, see :class:`Labels`); they are merged with the person
at an identity merge (:func:`merge_labels`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from pipeline.core import recommend, sendtime
from pipeline.core.clock import POS_INF_MS
from pipeline.core.outputs import Output
from pipeline.core.predictions import (
    ABSENT,
    ANY_EVENT,
    FEATURES_VERSION,
    PRESENT,
    TRAINING,
    PredictionsConfig,
    PredictionTask,
    snapshot_values,
    to_features,
)
from pipeline.core.sessions import SESSIONS
from pipeline.core.traits import BEHAVIOR, TRAITS_KEY

#: Censored labels (the end of input passed their deadline) are named here.
CENSORED = "training.censored"
#: A watermark at or past this is an end-of-input flush, not event time.
FLUSH_MS = POS_INF_MS // 2
#: At most this many scoring points wait for labels per person (the oldest win).
MAX_PENDING = 64
#: Where the rule stage keeps the label snapshots in its slice.
LABELS_KEY = "lab"
#: The behavior operator's profile records (the traits as of a session's close).
PROFILES = "profiles"
#: The session records of next best product and best send time.
RECS_TOPIC = TRAINING + "recs"
SEND_TIME_TOPIC = TRAINING + "send_time"

__all__ = [
    "ABSENT", "ANY_EVENT", "CENSORED", "FLUSH_MS", "LABELS_KEY", "MAX_PENDING", "PRESENT",
    "RECS_TOPIC", "SEND_TIME_TOPIC", "Labels", "censored", "example", "merge_labels",
]  # fmt: skip


def example(
    task: PredictionTask,
    person_id: str,
    scored_at_ms: int,
    *,
    values: Sequence[float | None],
    label: int,
    outcome_at_ms: int | None,
) -> Output:
    """One training example (docs/predictions.md) on ``training.<task>``."""
    record = {
        "task": task.name,
        "person": person_id,
        "scored_at_ms": scored_at_ms,
        "horizon_ms": task.horizon_ms,
        "outcome_at_ms": outcome_at_ms,
        "label": label,
        "features": to_features(values),
        "features_version": FEATURES_VERSION,
    }
    return Output(task.topic, person_id, record)


def censored(task: PredictionTask, person_id: str, scored_at_ms: int) -> Output:
    """The record of a label the end of input left undecided (see the module doc)."""
    record = {
        "task": task.name,
        "person": person_id,
        "scored_at_ms": scored_at_ms,
        "horizon_ms": task.horizon_ms,
        "deadline_ms": scored_at_ms + task.horizon_ms + 1,
    }
    return Output(CENSORED, person_id, record)


class Labels:
    """The label snapshots of one person: ``[[scored_at, values, pending mask], ...]``.

    A plain list in the rule stage's slice (``st["lab"]``), sorted by
    ``scored_at``; bit ``k`` of the mask: task ``k`` still waits for its label.
    """

    def __init__(self, config: PredictionsConfig) -> None:
        self.config = config
        self.tasks = config.tasks
        self.all_mask = (1 << len(config.tasks)) - 1
        self.any_mask = 0
        by_name: dict[str, int] = {}
        for k, task in enumerate(config.tasks):
            if task.outcome == ANY_EVENT:
                self.any_mask |= 1 << k
            else:
                by_name[task.outcome] = by_name.get(task.outcome, 0) | (1 << k)
        self.by_outcome = by_name

    def score(self, st: dict[str, Any], t: int, values: list[float | None]) -> None:
        """Snapshot ``values`` at ``t``: every task waits for its label."""
        if not self.all_mask:
            return
        snaps: list[list[Any]] | None = st.get(LABELS_KEY)
        if snaps is None:
            st[LABELS_KEY] = [[t, values, self.all_mask]]
            return
        if snaps and snaps[-1][0] == t:
            return  # two sessions closing at once: one scoring point
        if len(snaps) >= MAX_PENDING:
            return
        snaps.append([t, values, self.all_mask])
        if len(snaps) > 1 and snaps[-2][0] > t:
            snaps.sort(key=_scored_at)

    def mask_of(self, name: str) -> int:
        """The tasks an event named ``name`` is the outcome of."""
        return self.any_mask | self.by_outcome.get(name, 0)

    def on_outcome(self, st: dict[str, Any], t: int, mask: int, pid: str) -> list[Output]:
        """An outcome at ``t`` of the tasks in ``mask``: decide every label waiting before ``t``."""
        snaps: list[list[Any]] | None = st.get(LABELS_KEY)
        if not snaps or not mask:
            return []
        out: list[Output] = []
        for snap in snaps:
            s: int = snap[0]
            if s >= t:
                break
            hit = snap[2] & mask
            if not hit:
                continue
            for k, task in enumerate(self.tasks):
                if hit & (1 << k) and t <= s + task.horizon_ms:
                    label = 1 if task.label_if == PRESENT else 0
                    out.append(example(task, pid, s, values=snap[1], label=label, outcome_at_ms=t))
                    snap[2] &= ~(1 << k)
        self._prune(st, snaps)
        return out

    def next_due(self, st: Mapping[str, Any]) -> int | None:
        """The earliest deadline (``scored_at + horizon + 1``) of a waiting label."""
        snaps: list[list[Any]] | None = st.get(LABELS_KEY)
        if not snaps:
            return None
        best: int | None = None
        remaining = self.all_mask
        for snap in snaps:  # by scored_at: each task's first waiting snapshot is its earliest
            hit = snap[2] & remaining
            if not hit:
                continue
            for k, task in enumerate(self.tasks):
                if hit & (1 << k):
                    d = snap[0] + task.horizon_ms + 1
                    if best is None or d < best:
                        best = d
            remaining &= ~hit
            if not remaining:
                break
        return best

    def on_deadline(self, st: dict[str, Any], t: int, pid: str, flush: bool) -> list[Output]:
        """Decide (or, in an end-of-input ``flush``, censor) every label due at or before ``t``."""
        snaps: list[list[Any]] | None = st.get(LABELS_KEY)
        if not snaps:
            return []
        out: list[Output] = []
        for snap in snaps:
            s: int = snap[0]
            for k, task in enumerate(self.tasks):
                if snap[2] & (1 << k) and s + task.horizon_ms + 1 <= t:
                    if flush:
                        out.append(censored(task, pid, s))
                    else:
                        label = 0 if task.label_if == PRESENT else 1
                        out.append(
                            example(task, pid, s, values=snap[1], label=label, outcome_at_ms=None)
                        )
                    snap[2] &= ~(1 << k)
        self._prune(st, snaps)
        return out

    def on_closes(
        self,
        person: dict[str, Any],
        st: dict[str, Any],
        closes: list[tuple[dict[str, Any], dict[str, Any] | None]],
        pid: str,
        traits_of: Callable[[Mapping[str, Any], int], Mapping[str, Any]],
        *,
        models: Any = None,
    ) -> list[Output]:
        """Scoring points at ``closes`` (:func:`closed_sessions`), and their session records.

        ``models`` (the stage's ModelSet): the profile record of the close gets
        the person's ``scores`` from the same features as the label's snapshot.
        """
        out: list[Output] = []
        for session, profile in closes:
            at: int = session["closed_at_ms"]
            traits = profile["traits"] if profile is not None else None
            values = snapshot_values(person, at, traits, traits_of)
            if values is not None:
                self.score(st, at, values)
                if profile is not None and models is not None and models.scoring_tasks():
                    profile["scores"] = models.scores_of_features(to_features(values))
            if self.config.recs_k > 0 or self.config.send_channels:
                slice_ = person.get(BEHAVIOR)
                recent = slice_[TRAITS_KEY].get("rp") if slice_ else None
                out.extend(self.session_outputs(session, pid, recent))
        return out

    def session_outputs(
        self, session: dict[str, Any], person_id: str, recent: Mapping[str, Any] | None
    ) -> list[Output]:
        """The session records a closed session gives (``sessions`` record in).

        Next best product (``recs.k > 0``): :func:`pipeline.core.recommend.session_example`
        on ``training.recs`` (``recent``: the person's recent-products fold state);
        best send time (``send_time.channels``):
        :func:`pipeline.core.sendtime.session_example` on ``training.send_time``.
        """
        out: list[Output] = []
        if self.config.recs_k > 0:
            record = recommend.session_example(session, person_id, recent)
            if record is not None:
                out.append(Output(RECS_TOPIC, person_id, record))
        if self.config.send_channels:
            out.append(
                Output(SEND_TIME_TOPIC, person_id, sendtime.session_example(session, person_id))
            )
        return out

    def _prune(self, st: dict[str, Any], snaps: list[list[Any]]) -> None:
        kept = [s for s in snaps if s[2]]
        if not kept:
            st.pop(LABELS_KEY, None)
        elif len(kept) != len(snaps):
            st[LABELS_KEY] = kept


def closed_sessions(outs: list[Output]) -> list[tuple[dict[str, Any], dict[str, Any] | None]]:
    """``(sessions record, the profiles record after it or None)`` of each session in ``outs``."""
    found: list[tuple[dict[str, Any], dict[str, Any] | None]] = []
    for k, o in enumerate(outs):
        if o.topic == SESSIONS:
            nxt = outs[k + 1] if k + 1 < len(outs) else None
            found.append(
                (o.record, nxt.record if nxt is not None and nxt.topic == PROFILES else None)
            )
    return found


def merge_labels(a: list[list[Any]] | None, b: list[list[Any]] | None) -> list[list[Any]] | None:
    """Two persons' waiting labels as one person's (by scoring time; ``a``'s first on a tie)."""
    if not a or not b:
        return [list(s) for s in (a or b or ())] or None
    by_time: dict[int, list[Any]] = {}
    for snap in [*b, *a]:  # a's snapshot wins a shared time
        by_time[snap[0]] = list(snap)
    return [by_time[t] for t in sorted(by_time)][:MAX_PENDING]


def _scored_at(snap: list[Any]) -> int:
    t: int = snap[0]
    return t
