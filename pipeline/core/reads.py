"""What a compiled predicate path is: a reader, and what can change its value.

Shared by :mod:`pipeline.core.lookup` (traits) and :mod:`pipeline.core.modelreads`
(scores, recommendations, best hours).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

#: Any event may change the value.
ANY: frozenset[str] = frozenset({"*"})

#: ``(person state, as_of_ms, per-evaluation cache) -> value or MISSING``
Reader = Callable[[Mapping[str, Any], int, dict[str, Any]], Any]
TraitsOf = Callable[[Mapping[str, Any], int], Mapping[str, Any]]


@dataclass(frozen=True, slots=True)
class TraitRead:
    """One ``trait.<path>`` condition's reader and what can change its value."""

    path: str
    read: Reader
    events: frozenset[str]  # ANY, names, or empty (sessions only)
    session: bool
    window: tuple[str, str | None] | None  # (counts trait, event name or None)
    drifts: bool
