"""Where person state lives: the :class:`PersonStore` protocol and an in-memory store.

A person's state is a plain JSON-able dict (``pipeline.worker.records`` encodes it for
the worker's RocksDB store)::

    {operator_name: snapshot,          # each operator's slice (behavior, rules, ...)
     "rules": {...},                   # the rule stage's slice (triggers, segments, caps)
     "_next": deadline_ms,             # the person's next timer (the index is derived)
     "_ids": [anonymous id, ...],      # anonymous ids merged into this person
     "_src": {"<partition>": offset},  # last applied source offset (redelivery)
     "_await": {anonymous id: ms},     # merges announced but not arrived (a barrier)
     "_pre": [[link_ms, anonymous id, state], ...]}  # merged persons not yet joined
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any, Protocol

from mypy_extensions import mypyc_attr

PersonState = dict[str, Any]


class PersonStore(Protocol):
    """Where person state lives: RocksDB in the worker, a dict in replay."""

    def load(self, person_id: str) -> PersonState | None: ...

    def save(self, person_id: str, state: PersonState | None) -> None:
        """Persist ``state``; ``None`` deletes the person's entry."""

    def items(self) -> Iterable[tuple[str, PersonState]]: ...


@mypyc_attr(allow_interpreted_subclasses=True)  # tests subclass it
class MemoryStore:
    """A :class:`PersonStore` in a dict (replay and tests)."""

    def __init__(self) -> None:
        self.data: dict[str, PersonState] = {}

    def load(self, person_id: str) -> PersonState | None:
        return self.data.get(person_id)

    def save(self, person_id: str, state: PersonState | None) -> None:
        if state is None:
            self.data.pop(person_id, None)
        else:
            self.data[person_id] = state

    def items(self) -> Iterator[tuple[str, PersonState]]:
        return iter(list(self.data.items()))
