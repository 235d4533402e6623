"""What the delivery book keeps: entries, lanes, records read, writes asked for, offsets."""

from __future__ import annotations

import bisect
import heapq
from dataclasses import dataclass, field
from typing import Any, Literal

Headers = list[tuple[str, bytes]]
Kind = Literal["main", "retry"]


@dataclass(eq=False, slots=True)
class Entry:
    partition: int
    origin: int
    key: bytes | None
    value: bytes
    headers: Headers
    activation: dict[str, Any] | None
    emitted_ms: int = 0
    attempts: int = 0
    first_ms: int = 0
    due_ms: int = 0
    gen: int = 0  # generation of the latest retry record written for it (0: none)
    retry_offset: int | None = None  # the retry record read back that holds it
    retry_gen: int = 0
    main_open: bool = False  # its input offset waits for it
    state: Literal["idle", "flight", "dlq", "done"] = "idle"
    last_status: int | None = None
    last_error: str = ""
    lane: Lane | None = None

    @property
    def activation_id(self) -> str:
        return str((self.activation or {}).get("activation_id", ""))


@dataclass(eq=False, slots=True)
class Lane:
    partition: int
    key: Any
    entries: list[Entry] = field(default_factory=list)

    def insert(self, entry: Entry) -> None:
        if not self.entries or self.entries[-1].origin < entry.origin:
            self.entries.append(entry)
        else:
            bisect.insort(self.entries, entry, key=lambda e: e.origin)
        entry.lane = self


@dataclass(frozen=True, slots=True)
class Read:
    """A record as read from an input or retry partition (``activation`` None: undecodable)."""

    partition: int
    offset: int
    key: bytes | None
    value: bytes
    headers: Headers
    activation: dict[str, Any] | None
    emitted_ms: int = 0

    def entry(self, origin: int) -> Entry:
        return Entry(self.partition, origin, self.key, self.value, self.headers,
                     self.activation, self.emitted_ms)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Write:
    """A record the worker must produce: a retry (or parked) entry, a marker, or a dead letter."""

    kind: Literal["retry", "marker", "dlq"]
    entry: Entry
    gen: int = 0
    reason: str = ""


class Offsets:
    """Offsets of one partition: read, still needed, and the position to commit."""

    def __init__(self) -> None:
        self.open: set[int] = set()
        self.heap: list[int] = []
        self.next: int | None = None

    def read(self, offset: int, needed: bool = True) -> None:
        self.next = offset + 1 if self.next is None else max(self.next, offset + 1)
        if needed:
            self.open.add(offset)
            heapq.heappush(self.heap, offset)

    def done(self, offset: int) -> None:
        self.open.discard(offset)

    def position(self) -> int | None:
        while self.heap and self.heap[0] not in self.open:
            heapq.heappop(self.heap)
        return self.heap[0] if self.heap else self.next
