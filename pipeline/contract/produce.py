"""``pulse produce``: events onto ``pulse.events``, Avro-encoded.

Input is JSON lines (a file or stdin), CSV with a column mapping, or the
synthetic generator (:mod:`pipeline.tools.synthetic`). Each record is validated
first (Segment or schema field names); input with bad records is refused as a
whole, naming every bad one, unless ``allow_invalid`` is set, in which case
bad records are sent as they are so that they land in the dead-letter topic
with their reason (nothing is dropped either way).

``rate`` caps the send rate (events/s); a progress line is drawn on stderr.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import sys
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from pipeline.config import Settings
from pipeline.contract.wire import encode_event
from pipeline.core.events import Event, event_from_json
from pipeline.core.partitioning import partition_key as partition_key  # noqa: PLC0414 (re-exported)
from pipeline.errors import BrokerUnavailable, DecodeError, PulseError


@dataclass(frozen=True)
class BadLine:
    line_no: int
    reason: str
    message: str
    raw: bytes


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


CSV_FIELDS = frozenset({
    "messageId", "type", "event", "userId", "anonymousId", "timestamp", "sentAt", "receivedAt",
})  # fmt: skip


def parse_mapping(spec: str) -> dict[str, str]:
    """``"event=Event,userId=uid,properties.revenue=amount"`` -> field -> column.

    Targets are the JSON names of :data:`CSV_FIELDS`, ``properties.NAME`` or
    ``context.NAME``. Columns not mapped become properties under their own name.
    """
    mapping: dict[str, str] = {}
    for part in filter(None, (p.strip() for p in spec.split(","))):
        target, sep, column = part.partition("=")
        target, column = target.strip(), column.strip()
        if not sep or not target or not column:
            raise PulseError(f"bad column mapping {part!r}: expected FIELD=COLUMN")
        if target not in CSV_FIELDS and not target.startswith(("properties.", "context.")):
            raise PulseError(
                f"bad column mapping {part!r}: {target!r} is not one of "
                f"{', '.join(sorted(CSV_FIELDS))}, properties.NAME or context.NAME"
            )
        mapping[target] = column
    return mapping


def _cell(value: str) -> Any:
    """CSV cells are text: numbers and booleans are given their JSON type."""
    text = value.strip()
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        return value


def read_csv(handle: IO[str], mapping: Mapping[str, str]) -> Iterator[Event | BadLine]:
    """CSV rows with a header into events; ``mapping`` is from :func:`parse_mapping`.

    A row without a mapped message id gets a digest of its content, so
    producing the same file twice gives the same ids (the ingest dedupes them).
    """
    reader = csv.DictReader(handle)
    header = reader.fieldnames or []
    missing = [c for c in mapping.values() if c not in header]
    if missing:
        raise PulseError(f"CSV has no column(s) {', '.join(missing)} (header: {', '.join(header)})")
    mapped = set(mapping.values())
    for line_no, row in enumerate(reader, start=2):
        obj: dict[str, Any] = {}
        props: dict[str, Any] = {}
        context: dict[str, Any] = {}
        for target, column in mapping.items():
            value = row.get(column)
            if value is None or value == "":
                continue
            if target.startswith("properties."):
                props[target[len("properties.") :]] = _cell(value)
            elif target.startswith("context."):
                context[target[len("context.") :]] = value
            elif target == "timestamp":
                obj[target] = _cell(value)
            else:
                obj[target] = value
        for column, value in row.items():
            if column is not None and column not in mapped and value not in (None, ""):
                props[column] = _cell(value)
        obj["properties"] = props
        if context:
            obj["context"] = context
        raw = json.dumps(row, sort_keys=True).encode()
        digest = hashlib.blake2b(raw, digest_size=12).hexdigest()
        try:
            yield event_from_json(obj, default_message_id=f"csv-{digest}")
        except DecodeError as exc:
            yield BadLine(line_no, exc.reason, str(exc), raw)


class Progress:
    """A one-line progress bar on a stream (stderr): count, total, rate."""

    def __init__(self, total: int | None, stream: IO[str] | None, every_s: float = 0.25) -> None:
        self.total = total
        self.stream = stream
        self.every_s = every_s if stream is not None and stream.isatty() else 2.0
        self.started = self.last = time.monotonic()
        self.count = 0

    def update(self, count: int, *, final: bool = False) -> None:
        self.count = count
        now = time.monotonic()
        if self.stream is None or (not final and now - self.last < self.every_s):
            return
        self.last = now
        rate = count / max(now - self.started, 1e-9)
        if self.total:
            done = int(30 * count / self.total)
            bar = f"[{'#' * done}{'.' * (30 - done)}] {count}/{self.total}"
        else:
            bar = f"{count}"
        end = "\n" if final or not self.stream.isatty() else ""
        self.stream.write(f"\r{bar} events  {rate:,.0f} ev/s{end}")
        self.stream.flush()


def check_items(items: Sequence[Event | BadLine], source: str, *, allow_invalid: bool) -> None:
    """Refuse input with bad records, naming them, unless ``allow_invalid``."""
    bad = [item for item in items if isinstance(item, BadLine)]
    if bad and not allow_invalid:
        details = "\n".join(f"{source}:{b.line_no}: {b.reason}: {b.message}" for b in bad[:20])
        more = f"\n... and {len(bad) - 20} more" if len(bad) > 20 else ""
        raise PulseError(
            f"{len(bad)} invalid record(s), nothing produced (use --allow-invalid to send them "
            f"to the dead-letter topic instead):\n{details}{more}"
        )


def produce_events(
    settings: Settings,
    items: Iterable[Event | BadLine],
    *,
    topic: str | None = None,
    rate: float | None = None,
    total: int | None = None,
    progress: IO[str] | None = None,
) -> tuple[int, int]:
    """Produce events (Avro single-object) and bad records (raw bytes, for the DLQ).

    ``rate`` caps events per second; returns (events sent, bad records sent raw).
    """
    from confluent_kafka import KafkaException, Producer

    if rate is not None and rate <= 0:
        raise PulseError("--rate must be positive")
    target = topic or settings.topic("events")
    errors: list[str] = []

    def on_delivery(err: Any, _msg: Any) -> None:
        if err is not None:
            errors.append(str(err))

    producer = Producer(kafka_producer_config(settings))
    bar = Progress(total, progress)
    sent = raw_sent = 0
    started = time.monotonic()
    try:
        for item in items:
            if rate is not None:
                ahead = started + (sent + raw_sent) / rate - time.monotonic()
                if ahead > 0:
                    producer.poll(0)
                    time.sleep(ahead)
            if isinstance(item, BadLine):
                producer.produce(target, value=item.raw, on_delivery=on_delivery)
                raw_sent += 1
            else:
                value = encode_event(item)
                while True:
                    try:
                        producer.produce(
                            target, key=partition_key(item), value=value, on_delivery=on_delivery
                        )
                        break
                    except BufferError:  # the local queue is full: let it drain
                        producer.poll(0.05)
                sent += 1
            producer.poll(0)
            bar.update(sent + raw_sent)
        remaining = producer.flush(60)
    except KafkaException as exc:
        raise BrokerUnavailable(f"producing to {settings.bootstrap_servers} failed: {exc}") from exc
    bar.update(sent + raw_sent, final=True)
    if remaining or errors:
        raise BrokerUnavailable(
            f"{remaining} event(s) not delivered to {settings.bootstrap_servers}"
            + (f": {errors[0]}" if errors else "")
        )
    return sent, raw_sent


def open_lines(path: str) -> Iterator[bytes]:
    """Lines of ``path``, or of stdin for ``-``."""
    if path == "-":
        yield from sys.stdin.buffer
        return
    with Path(path).open("rb") as handle:
        yield from handle


def produce_file(
    settings: Settings,
    path: Path,
    *,
    allow_invalid: bool = False,
    topic: str | None = None,
    rate: float | None = None,
    progress: IO[str] | None = None,
) -> tuple[int, int]:
    """Produce every event in a JSON-lines file (``-`` = stdin); returns (sent, bad sent raw)."""
    items = list(read_json_lines(open_lines(str(path))))
    check_items(items, str(path), allow_invalid=allow_invalid)
    return produce_events(
        settings, items, topic=topic, rate=rate, total=len(items), progress=progress
    )


def produce_csv(
    settings: Settings,
    path: str,
    mapping: Mapping[str, str],
    *,
    allow_invalid: bool = False,
    topic: str | None = None,
    rate: float | None = None,
    progress: IO[str] | None = None,
) -> tuple[int, int]:
    """Produce every row of a CSV file (``-`` = stdin) through a column mapping."""
    if path == "-":
        items = list(read_csv(io.TextIOWrapper(sys.stdin.buffer, encoding="utf-8"), mapping))
    else:
        with Path(path).open(encoding="utf-8", newline="") as handle:
            items = list(read_csv(handle, mapping))
    check_items(items, path, allow_invalid=allow_invalid)
    return produce_events(
        settings, items, topic=topic, rate=rate, total=len(items), progress=progress
    )
