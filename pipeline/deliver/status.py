"""``pulse deliver status``: each destination's state and backlog, asked of the broker.

For every destination: enabled or disabled (with the reason and when, from
``pulse.deliver.state``), and per topic the records the delivery group has not
committed yet: on the input topic, activations not yet delivered, dead-lettered
or moved to the retry topic; on the retry topic, records still waiting (an
upper bound: it counts done-markers too).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pipeline.config import Settings
from pipeline.deliver.config import Destinations
from pipeline.deliver.records import input_topic, retry_topic
from pipeline.deliver.state import read_states


def _backlog(consumer: Any, topic: str) -> int | None:
    from confluent_kafka import TopicPartition

    metadata = consumer.list_topics(topic, timeout=10).topics.get(topic)
    if metadata is None or metadata.error is not None:
        return None
    tps = [TopicPartition(topic, p) for p in sorted(metadata.partitions)]
    total = 0
    for tp in consumer.committed(tps, timeout=10):
        low, high = consumer.get_watermark_offsets(tp, timeout=10)
        start = tp.offset if tp.offset >= 0 else low
        total += max(0, high - max(start, low))
    return total


def status(
    settings: Settings, destinations: Destinations, *, group_id: str | None = None
) -> dict[str, Any]:
    """Destination name -> ``{url, format, disabled, reason, since, backlog, retry_backlog}``."""
    from confluent_kafka import Consumer

    states = read_states(settings)
    group = group_id or f"{settings.app_id}-deliver"
    consumer = Consumer({"bootstrap.servers": settings.bootstrap_servers, "group.id": group,
                         "enable.auto.commit": False})  # fmt: skip
    report: dict[str, Any] = {}
    try:
        for dest in destinations:
            state = states.get(dest.name, {})
            since = state.get("at_ms")
            report[dest.name] = {
                "url": dest.url,
                "format": dest.format,
                "disabled": bool(state.get("disabled")),
                "reason": state.get("reason") if state.get("disabled") else None,
                "since": datetime.fromtimestamp(since / 1000, tz=UTC).isoformat()
                if since and state.get("disabled")
                else None,
                "backlog": _backlog(consumer, input_topic(settings, dest.name)),
                "retry_backlog": _backlog(consumer, retry_topic(settings, dest.name)),
            }
    finally:
        consumer.close()
    return report


def render_status(report: dict[str, Any]) -> str:
    lines = []
    for name, row in report.items():
        state = "DISABLED" if row["disabled"] else "enabled"
        lines.append(f"{name}: {state}  {row['format']} to {row['url']}")
        if row["disabled"]:
            lines.append(f"    since {row['since']}: {row['reason']}")
            lines.append(f"    resume with: pulse deliver enable {name}")
        if row["backlog"] is None:
            lines.append("    no topics yet (no `pulse deliver` has run for it)")
        else:
            lines.append(f"    not yet delivered: {row['backlog']}  waiting for a retry: "
                         f"{row['retry_backlog']}")  # fmt: skip
    return "\n".join(lines)
