"""The ``predictions:`` section of a topology file (docs/predictions.md).

::

    predictions:
      tasks:
        purchase_7d: {outcome: order_completed, horizon: 7d}
        churn_30d:   {outcome: any_event, horizon: 30d, label_if: absent}
      score_at: session_close
      recs: {k: 10}
      send_time: {channels: [email, push], min_events: 5}

Read into a :class:`~pipeline.core.predictions.PredictionsConfig`; errors name
the file, the line and the field, as the rest of the file's do.
"""

from __future__ import annotations

from collections.abc import Callable

import yaml

from pipeline.core.predictions import ANY_EVENT, PredictionsConfig, PredictionTask
from pipeline.topology.nodes import NodeReader


def read_predictions(
    ld: NodeReader, node: yaml.Node, event: Callable[[yaml.Node, str], str]
) -> PredictionsConfig:
    """The section at ``node``; ``event`` reads (and records, for the typo check) an event name."""
    where = "predictions"
    fields = ld.mapping(node, where)
    ld.check_keys(fields, where, {"tasks", "score_at", "recs", "send_time"})
    tasks: list[PredictionTask] = []
    for name, tnode in ld.mapping(fields.get("tasks"), f"{where}.tasks").items():
        here = f"{where}.tasks.{name}"
        spec = ld.mapping(tnode, here)
        ld.check_keys(spec, here, {"outcome", "horizon", "label_if", "description"})
        outcome_node = ld._need(spec, "outcome", tnode, here)
        outcome = ld.string(outcome_node, f"{here}.outcome")
        if outcome != ANY_EVENT:
            outcome = event(outcome_node, f"{here}.outcome")
        horizon = ld.duration(ld._need(spec, "horizon", tnode, here), f"{here}.horizon")
        label_if = "present"
        if "label_if" in spec:
            label_if = ld.string(spec["label_if"], f"{here}.label_if")
            if label_if not in ("present", "absent"):
                raise ld.fail(spec["label_if"], f"{here}.label_if", "present or absent")
        try:
            tasks.append(PredictionTask(name, outcome, horizon, label_if))
        except ValueError as exc:
            raise ld.fail(tnode, here, f"a valid task ({exc})") from exc
    score_at = "session_close"
    if "score_at" in fields:
        score_at = ld.string(fields["score_at"], f"{where}.score_at")
        if score_at != "session_close":
            raise ld.fail(fields["score_at"], f"{where}.score_at", "session_close", score_at)
    recs_k = 0
    if "recs" in fields:
        recs = ld.mapping(fields["recs"], f"{where}.recs")
        ld.check_keys(recs, f"{where}.recs", {"k"})
        recs_k = ld.integer(recs["k"], f"{where}.recs.k", 1) if "k" in recs else 10
    channels: tuple[str, ...] = ()
    min_events = 5
    if "send_time" in fields:
        send = ld.mapping(fields["send_time"], f"{where}.send_time")
        ld.check_keys(send, f"{where}.send_time", {"channels", "min_events"})
        channels = ld.strings(
            ld._need(send, "channels", fields["send_time"], f"{where}.send_time"),
            f"{where}.send_time.channels",
        )
        if "min_events" in send:
            min_events = ld.integer(send["min_events"], f"{where}.send_time.min_events")
    return PredictionsConfig(tuple(tasks), score_at, recs_k, channels, min_events)
