"""``pulse produce``: JSON-lines events onto ``pulse.events``, Avro-encoded.

Each line is validated first (Segment or schema field names); a file with bad
lines is refused as a whole, naming every bad line, unless ``allow_invalid``
is set, in which case bad lines are sent as they are so that they land in the
dead-letter topic with their reason (nothing is dropped either way).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.config import Settings
from pipeline.core.events import Event, event_from_json
from pipeline.errors import BrokerUnavailable, DecodeError, PulseError
from pipeline.wire import encode_event


@dataclass(frozen=True)
class BadLine:
    line_no: int
    reason: str
    message: str
    raw: bytes


def partition_key(event: Event) -> bytes:
    """Key of a raw event: the device's anonymous id when there is one.

    Keying by anonymous id keeps everything a device does, including the
    identify that links it to a user, in order on one partition; events with
    only a user id are keyed by it.
    """
    return (event.anonymous_id or event.user_id or "").encode()


def read_json_lines(lines: Iterable[bytes]) -> Iterator[Event | BadLine]:
    """Parse JSON lines into events, yielding a :class:`BadLine` for each bad one."""
    for line_no, raw in enumerate(lines, start=1):
        text = raw.strip()
        if not text:
            continue
        try:
            obj: Any = json.loads(text)
            yield event_from_json(obj)
        except json.JSONDecodeError as exc:
            yield BadLine(line_no, "invalid_json", f"invalid JSON: {exc.msg}", text)
        except UnicodeDecodeError as exc:
            yield BadLine(line_no, "invalid_utf8", f"not UTF-8: {exc.reason}", text)
        except DecodeError as exc:
            yield BadLine(line_no, exc.reason, str(exc), text)


def kafka_producer_config(settings: Settings) -> dict[str, Any]:
    """Producer settings shared by the CLI and the SDK.

    ``murmur2_random`` is the Java client's (and aiokafka's) partitioner, so a
    key lands on the same partition whichever client wrote it; idempotence
    keeps retries from duplicating or reordering a person's events.
    """
    return {
        "bootstrap.servers": settings.bootstrap_servers,
        "enable.idempotence": True,
        "acks": "all",
        "partitioner": "murmur2_random",
        "linger.ms": 5,
        "compression.type": "lz4",
    }


def produce_file(
    settings: Settings, path: Path, *, allow_invalid: bool = False, topic: str | None = None
) -> tuple[int, int]:
    """Produce every event in ``path``; returns (events sent, bad lines sent raw)."""
    from confluent_kafka import KafkaException, Producer

    with path.open("rb") as handle:
        items = list(read_json_lines(handle))
    bad = [item for item in items if isinstance(item, BadLine)]
    if bad and not allow_invalid:
        details = "\n".join(f"{path}:{b.line_no}: {b.reason}: {b.message}" for b in bad[:20])
        more = f"\n... and {len(bad) - 20} more" if len(bad) > 20 else ""
        raise PulseError(
            f"{len(bad)} invalid line(s), nothing produced (use --allow-invalid to send them "
            f"to the dead-letter topic instead):\n{details}{more}"
        )
    target = topic or settings.topic("events")
    errors: list[str] = []

    def on_delivery(err: Any, _msg: Any) -> None:
        if err is not None:
            errors.append(str(err))

    producer = Producer(kafka_producer_config(settings))
    sent = raw_sent = 0
    try:
        for item in items:
            if isinstance(item, BadLine):
                producer.produce(target, value=item.raw, on_delivery=on_delivery)
                raw_sent += 1
            else:
                producer.produce(
                    target, key=partition_key(item), value=encode_event(item), on_delivery=on_delivery
                )
                sent += 1
            producer.poll(0)
        remaining = producer.flush(60)
    except KafkaException as exc:
        raise BrokerUnavailable(f"producing to {settings.bootstrap_servers} failed: {exc}") from exc
    if remaining or errors:
        raise BrokerUnavailable(
            f"{remaining} event(s) not delivered to {settings.bootstrap_servers}"
            + (f": {errors[0]}" if errors else "")
        )
    return sent, raw_sent
