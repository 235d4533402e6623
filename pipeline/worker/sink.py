"""What a partition task reads, and where what it writes goes.

A :class:`Record` is a consumed record as a task needs it; a :class:`Sink` is
where its records go: the worker's producer (``commit.py``), or a list in
tests, so a task runs without a broker.
"""

from __future__ import annotations

from typing import Any, NamedTuple, Protocol

Headers = list[tuple[str, bytes]]


class ProcessingFailed(Exception):
    """A record failed half-way: the caller goes back to the last commit (see ``loop.py``)."""


class Sink(Protocol):
    """Where a task's records go (the transactional producer, or a list in tests)."""

    def send(
        self,
        topic: str,
        key: bytes,
        value: bytes | None,
        headers: Headers,
        partition: int | None,
        *,
        clock: tuple[int, int] | None = None,
    ) -> None:
        """``topic`` is logical (``"triggers"``); ``partition`` None: by key.

        ``clock``: on a record for a person partition, the sending task's
        partition and source stream time (``forwards.py``).
        """


class Record(NamedTuple):
    """A consumed record, as the task needs it (built from a confluent-kafka Message)."""

    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: Headers

    @classmethod
    def of(cls, msg: Any) -> Record:
        raw = msg.headers()
        headers = [(k, v if v is not None else b"") for k, v in raw] if raw else []
        return cls(msg.partition(), msg.offset(), msg.key(), msg.value(), headers)
