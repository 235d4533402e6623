"""Each person's recent triggers and suppressions, and when they entered their segments.

A key family of the runtime's partition store (``h<person id>``, see
``pipeline/worker/store.py``), written from the outputs the partition task
emits, so it goes to the changelog in the same transaction as the outputs
themselves and is restored with the rest of the partition: an aborted batch
leaves no history behind, a restarted worker keeps it. It is not part of the
core's person state (the core decides nothing on it).

Value (JSON)::

    {"t": [[kind, record], ...],   # newest last, at most ``size``; kind "trigger" | "suppressed"
     "s": {segment: entered_ms}}   # segments the person is in, with their entry time

An eviction (``persons.evicted``) deletes it with the person.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol

import orjson

from pipeline.core.outputs import Output

HISTORY = b"h"
TRIGGERS, SUPPRESSED, SEGMENTS, EVICTED = (
    "triggers",
    "triggers.suppressed",
    "segments",
    "persons.evicted",
)
KINDS = {TRIGGERS: "trigger", SUPPRESSED: "suppressed"}
WATCHED = frozenset({TRIGGERS, SUPPRESSED, SEGMENTS, EVICTED})


class KeyValue(Protocol):
    def get(self, key: bytes) -> bytes | None: ...
    def put(self, key: bytes, value: bytes | None) -> None: ...


def history_key(person_id: str) -> bytes:
    return HISTORY + person_id.encode()


def read(store: KeyValue, person_id: str) -> dict[str, Any]:
    return parse(store.get(history_key(person_id)))


def parse(raw: bytes | None) -> dict[str, Any]:
    """A stored history (None: empty)."""
    if raw is None:
        return {"t": [], "s": {}}
    value: dict[str, Any] = orjson.loads(raw)
    return value


class History:
    """Records a partition's outputs into its store (called from ``PartitionTask.emit``)."""

    def __init__(self, store: KeyValue, size: int) -> None:
        self.store = store
        self.size = size

    def __call__(self, outputs: Iterable[Output]) -> None:
        for out in outputs:
            if out.topic in WATCHED:
                self.record(out)

    def record(self, out: Output) -> None:
        key = history_key(out.key)
        if out.topic == EVICTED:
            self.store.put(key, None)
            return
        value = read(self.store, out.key)
        if out.topic == SEGMENTS:
            segment, change = out.record["segment"], out.record["change"]
            if change == "entered":
                value["s"][segment] = out.record["event_time_ms"]
            else:
                value["s"].pop(segment, None)
        else:
            value["t"].append([KINDS[out.topic], out.record])
            if len(value["t"]) > self.size:
                del value["t"][: len(value["t"]) - self.size]
        self._write(key, value)

    def _write(self, key: bytes, value: dict[str, Any]) -> None:
        if not value["t"] and not value["s"]:
            self.store.put(key, None)
        else:
            self.store.put(key, orjson.dumps(value))

    def take(self, person_id: str) -> list[Any]:
        """An anonymous person's triggers, removed with them on a merge (their segments end)."""
        key = history_key(person_id)
        value = read(self.store, person_id)
        if value["t"] or value["s"]:
            self.store.put(key, None)
        return list(value["t"])

    def absorb(self, person_id: str, entries: list[Any]) -> None:
        """A merged-in (or given back) person's triggers join ``person_id``'s, in event time."""
        if not entries:
            return
        key = history_key(person_id)
        value = read(self.store, person_id)
        merged = sorted([*entries, *value["t"]], key=_event_time)  # stable: ties keep order
        value["t"] = merged[-self.size :]
        self._write(key, value)


def _event_time(entry: list[Any]) -> int:
    """An entry's (``[kind, record]``) event time, for merging two histories."""
    return int(entry[1].get("event_time_ms") or 0)


def entries(value: dict[str, Any]) -> list[dict[str, Any]]:
    """The history's triggers and suppressions, newest first, as the API shows them."""
    out = []
    for kind, record in reversed(value["t"]):
        item = {"kind": kind, **record}
        out.append(item)
    return out
