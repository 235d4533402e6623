"""What the core emits: an output names a logical topic, a key and a record."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

#: Logical output topics (the full name adds the prefix: ``pulse.triggers``).
TRIGGERS = "triggers"
LATE = "events.late"


@dataclass(frozen=True, slots=True, init=False)
class Output:
    """One output record: ``topic`` is logical (``"triggers"``), ``key`` the person id."""

    topic: str
    key: str
    record: dict[str, Any]

    def __init__(self, topic: str, key: str, record: dict[str, Any]) -> None:
        # written out so that mypyc compiles it (a generated dataclass __init__ runs as
        # interpreted Python); object.__setattr__ because the dataclass is frozen
        object.__setattr__(self, "topic", topic)
        object.__setattr__(self, "key", key)
        object.__setattr__(self, "record", record)
