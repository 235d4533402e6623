"""What the core emits: an output names a logical topic, a key and a record."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

#: Logical output topics (the full name adds the prefix: ``pulse.triggers``).
TRIGGERS = "triggers"
LATE = "events.late"


@dataclass(frozen=True, slots=True)
class Output:
    """One output record: ``topic`` is logical (``"triggers"``), ``key`` the person id."""

    topic: str
    key: str
    record: dict[str, Any]
