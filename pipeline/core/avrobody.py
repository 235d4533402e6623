"""The Avro binary body of the current event schema, read without fastavro.

Every event Pulse ingests is decoded once on its source partition, so this
read is on the hot path of every worker. fastavro reads any schema; this
reader knows one, ``schemas/event.avsc`` at :data:`FINGERPRINT`, field by
field, and builds the same dict fastavro builds (the same keys, values and
types). Compiled with the rest of the core (mypyc) it takes ~4 us an event
against fastavro's ~19 us; as pure Python about what fastavro takes.

The caller (``pipeline/contract/wire.py``) uses it only while the current schema's
fingerprint is :data:`FINGERPRINT` (any other version is read by fastavro), so
a change to the schema can never be misread: a test fails until this reader
and its fingerprint follow the schema. Corrupt input raises
:class:`BodyError` (``truncated`` when the bytes end early) or
``UnicodeDecodeError``; the caller turns both into a ``DecodeError``.
"""

from __future__ import annotations

import struct
from typing import Any

#: The Rabin fingerprint of the schema this reader reads (``schemas/event.avsc``).
FINGERPRINT = 0x2521E40A6FCFFED9

_DOUBLE = struct.Struct("<d")

#: The ``Context`` record's optional string fields, in schema order (``extra`` follows).
CONTEXT_FIELDS = (
    "channel",
    "timezone",
    "locale",
    "ip",
    "user_agent",
    "page_url",
    "page_path",
    "page_referrer",
    "page_title",
    "campaign_source",
    "campaign_medium",
    "campaign_name",
    "campaign_term",
    "campaign_content",
    "device_id",
    "device_type",
    "os_name",
    "app_name",
    "app_version",
)


class BodyError(ValueError):
    """The bytes are not a body of this schema; ``truncated``: they end early."""

    def __init__(self, message: str, *, truncated: bool = False) -> None:
        super().__init__(message)
        self.truncated = truncated


def _ended() -> BodyError:
    return BodyError("the body ends early", truncated=True)


class _Reader:
    """A position in ``data``; each method reads one Avro value there."""

    def __init__(self, data: bytes, pos: int) -> None:
        self.data = data
        self.pos = pos
        self.end = len(data)

    def long(self) -> int:
        data = self.data
        pos = self.pos
        if pos >= self.end:
            raise _ended()
        b = data[pos]
        pos += 1
        n = b & 0x7F
        shift = 7
        while b & 0x80:
            if pos >= self.end:
                raise _ended()
            b = data[pos]
            pos += 1
            if shift == 63 and b > 1:  # the 10th byte holds bit 63 only: more is no long
                raise BodyError("a varint beyond 64 bits")
            n |= (b & 0x7F) << shift
            shift += 7
        self.pos = pos
        return (n >> 1) ^ -(n & 1)

    def string(self) -> str:
        n = self.long()
        if n < 0:
            raise BodyError(f"a string of negative length {n}")
        start = self.pos
        stop = start + n
        if stop > self.end:
            raise _ended()
        self.pos = stop
        return self.data[start:stop].decode("utf-8")

    def branch(self, count: int) -> int:
        i = self.long()
        if not 0 <= i < count:
            raise BodyError(f"union branch {i} of {count}")
        return i

    def opt_string(self) -> str | None:
        return None if self.branch(2) == 0 else self.string()

    def opt_long(self) -> int | None:
        return None if self.branch(2) == 0 else self.long()

    def double(self) -> float:
        start = self.pos
        if start + 8 > self.end:
            raise _ended()
        self.pos = start + 8
        value: float = _DOUBLE.unpack_from(self.data, start)[0]
        return value

    def boolean(self) -> bool:
        start = self.pos
        if start >= self.end:
            raise _ended()
        self.pos = start + 1
        return self.data[start] != 0

    def block(self) -> int:
        """Items in the next block of a map or array (0: the end)."""
        n = self.long()
        if n < 0:  # a negative count is followed by the block's size in bytes
            self.long()
            n = -n
        return n

    def scalar(self, branch: int) -> Any:
        """``["null", "boolean", "long", "double", "string"]`` at ``branch``."""
        if branch == 0:
            return None
        if branch == 1:
            return self.boolean()
        if branch == 2:
            return self.long()
        if branch == 3:
            return self.double()
        return self.string()

    def flat_map(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        n = self.block()
        while n:
            for _ in range(n):
                key = self.string()
                out[key] = self.scalar(self.branch(5))
            n = self.block()
        return out

    def property_value(self) -> Any:
        branch = self.branch(7)
        if branch < 5:
            return self.scalar(branch)
        if branch == 6:
            return self.flat_map()
        items: list[Any] = []
        n = self.block()
        while n:
            for _ in range(n):
                item = self.branch(6)
                items.append(self.flat_map() if item == 5 else self.scalar(item))
            n = self.block()
        return items

    def properties(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        n = self.block()
        while n:
            for _ in range(n):
                key = self.string()
                out[key] = self.property_value()
            n = self.block()
        return out

    def string_map(self) -> dict[str, str]:
        out: dict[str, str] = {}
        n = self.block()
        while n:
            for _ in range(n):
                key = self.string()
                out[key] = self.string()
            n = self.block()
        return out


def read_event_body(data: bytes, offset: int) -> dict[str, Any]:
    """The event at ``data[offset:]`` (the whole rest), as fastavro would give it."""
    r = _Reader(data, offset)
    record: dict[str, Any] = {
        "message_id": r.string(),
        "type": r.string(),
        "event": r.opt_string(),
        "anonymous_id": r.opt_string(),
        "user_id": r.opt_string(),
        "timestamp_ms": r.long(),
        "sent_at_ms": r.opt_long(),
        "received_at_ms": r.opt_long(),
        "properties": r.properties(),
    }
    context: dict[str, Any] = {}
    for name in CONTEXT_FIELDS:
        context[name] = r.opt_string()
    context["extra"] = r.string_map()
    record["context"] = context
    record["previous_id"] = r.opt_string()
    record["group_id"] = r.opt_string()
    if r.pos != r.end:
        raise BodyError(f"{r.end - r.pos} bytes left over after the record")
    return record
