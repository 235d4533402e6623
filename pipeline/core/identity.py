"""Identity rules: which id names a person, and when an anonymous id joins a user.

Pure functions over a frozen :class:`IdentityRules` (a topology's ``identity:``
section). The identity graph Pulse keeps is deliberately simple, as identity
graphs in customer-data platforms are:

* **Blocked values.** Placeholder ids sent by buggy clients (``""``, ``"null"``,
  ``"undefined"``, ``"0"``, ``"anonymous"``, the all-zero UUID, ...) are not ids:
  :func:`clean_id` turns them into ``None``, compared case-insensitively after
  stripping spaces, so they never link or merge anybody.
* **One user per anonymous id.** The first user id seen with an anonymous id
  owns it. A second user logging in on the same (shared) device starts a new
  person: nothing merges, and the conflict is recorded (:func:`decide_link`).
* **At most N anonymous ids per user** (``max_anonymous_per_user``): a merge
  beyond that is refused and recorded (:func:`accept_merge`), so a leaked
  anonymous id cannot glue thousands of visitors into one profile.
* **Priority** names the person when an event carries both ids: the user id by
  default. With ``priority=("anonymous_id", "user_id")`` persons are devices and
  nothing is stitched.

Every decision that is not silent becomes a record on ``pulse.identities``
(:func:`identity_record`, ``schemas/identity.avsc``)::

    >>> rules = IdentityRules()
    >>> clean_id(" NULL "), clean_id("a-42")
    (None, 'a-42')
    >>> decide_link(None, "a-42", "u-7", rules).kind
    'link'
    >>> decide_link("u-9", "a-42", "u-7", rules)
    LinkDecision(kind='conflict', reason='anonymous_id_linked_to_another_user')
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from pipeline.core.events import Event

#: Logical output topic of identity decisions (``pulse.identities``).
IDENTITIES = "identities"

#: Values that are never ids (case-insensitive, after strip).
DEFAULT_BLOCKED = frozenset({
    "", "null", "undefined", "none", "nil", "0", "-1", "anonymous", "guest", "unknown",
    "nan", "n/a", "00000000-0000-0000-0000-000000000000",
})  # fmt: skip

ID_TYPES = ("user_id", "anonymous_id")

LinkKind = Literal["link", "same", "conflict", "ignored"]


def _norm(value: str) -> str:
    return value.strip().casefold()


@dataclass(frozen=True, slots=True)
class IdentityRules:
    """The identity graph's rules (see the module docstring); validates itself.

    ``blocked`` is the full set of placeholder values (the topology DSL adds its
    list to :data:`DEFAULT_BLOCKED`); they are stored normalized (stripped,
    case-folded).

    >>> IdentityRules(max_anonymous_per_user=0)
    Traceback (most recent call last):
    ...
    ValueError: max_anonymous_per_user must be >= 1, got 0
    """

    max_anonymous_per_user: int = 10
    blocked: frozenset[str] = field(default=DEFAULT_BLOCKED)
    priority: tuple[str, ...] = ID_TYPES

    def __post_init__(self) -> None:
        if isinstance(self.max_anonymous_per_user, bool) or self.max_anonymous_per_user < 1:
            raise ValueError(
                f"max_anonymous_per_user must be >= 1, got {self.max_anonymous_per_user}"
            )
        if sorted(self.priority) != sorted(ID_TYPES):
            raise ValueError(
                f"priority must name user_id and anonymous_id once each, got {list(self.priority)}"
            )
        object.__setattr__(self, "priority", tuple(self.priority))
        object.__setattr__(self, "blocked", frozenset(_norm(v) for v in self.blocked))

    @classmethod
    def with_blocked(cls, extra: Iterable[str], **kwargs: Any) -> IdentityRules:
        """Rules blocking :data:`DEFAULT_BLOCKED` plus ``extra``."""
        return cls(blocked=DEFAULT_BLOCKED | frozenset(extra), **kwargs)

    @property
    def stitches(self) -> bool:
        """Whether anonymous ids merge into users (the user id has priority)."""
        return self.priority[0] == "user_id"


_DEFAULT_RULES = IdentityRules()


def clean_id(value: str | None, rules: IdentityRules = _DEFAULT_RULES) -> str | None:
    """``value`` unchanged, or ``None`` when it is missing or a blocked placeholder."""
    if value is None or _norm(value) in rules.blocked:
        return None
    return value


def person_key(event: Event, rules: IdentityRules = _DEFAULT_RULES) -> str:
    """The id that names the event's person: the first clean id in ``rules.priority``.

    ``""`` when the event carries no usable id (like :attr:`Event.person_id`).
    """
    for id_type in rules.priority:
        value = clean_id(event.user_id if id_type == "user_id" else event.anonymous_id, rules)
        if value is not None:
            return value
    return ""


@dataclass(frozen=True, slots=True)
class LinkDecision:
    """What an event carrying ``anonymous_id`` and ``user_id`` does to the graph.

    ``kind``: ``link`` (first time: the anonymous person merges into the user),
    ``same`` (already linked to this user: nothing to do), ``conflict`` (the
    anonymous id belongs to another user: record it, merge nothing), ``ignored``
    (one of the ids is a blocked placeholder). ``reason`` says why.
    """

    kind: LinkKind
    reason: str


def decide_link(
    linked_user: str | None, anonymous_id: str, user_id: str, rules: IdentityRules
) -> LinkDecision:
    """Decide a link from the anonymous id's current owner (``linked_user``, or None)."""
    if clean_id(anonymous_id, rules) is None:
        return LinkDecision("ignored", "blocked_anonymous_id")
    if clean_id(user_id, rules) is None:
        return LinkDecision("ignored", "blocked_user_id")
    if anonymous_id == user_id:
        return LinkDecision("same", "same_id")
    if linked_user is None:
        return LinkDecision("link", "new_link")
    if linked_user == user_id:
        return LinkDecision("same", "already_linked")
    return LinkDecision("conflict", "anonymous_id_linked_to_another_user")


def accept_merge(
    merged_anonymous_ids: Sequence[str], anonymous_id: str, rules: IdentityRules
) -> tuple[bool, str | None]:
    """Whether ``anonymous_id`` may merge into a user who merged ``merged_anonymous_ids``.

    ``(True, None)``, or ``(False, "too_many_anonymous_ids")`` when the user is at
    ``rules.max_anonymous_per_user``. An id merged before is accepted again.
    """
    if anonymous_id in merged_anonymous_ids:
        return True, None
    if len(merged_anonymous_ids) >= rules.max_anonymous_per_user:
        return False, "too_many_anonymous_ids"
    return True, None


def identity_id(kind: str, anonymous_id: str, user_id: str, message_id: str | None) -> str:
    """Deterministic id of an identity record: same decision and cause, same id."""
    raw = "\x1f".join(("identity", kind, anonymous_id, user_id, message_id or ""))
    return hashlib.blake2b(raw.encode(), digest_size=16).hexdigest()


def identity_record(  # noqa: PLR0917 - the record's fields, in the schema's order
    kind: str,
    anonymous_id: str,
    user_id: str,
    reason: str | None,
    event_time_ms: int,
    message_id: str | None,
) -> dict[str, Any]:
    """The ``identities`` record (``schemas/identity.avsc``); keyed by ``user_id``.

    ``kind``: ``link`` (new edge in the graph), ``merge`` (the anonymous
    person's state moved into the user's) or ``conflict`` (refused, see
    ``reason``). ``event_time_ms`` is the causing event's time (or the
    watermark for a merge); ``message_id`` the causing event, when there is one.
    """
    return {
        "identity_id": identity_id(kind, anonymous_id, user_id, message_id),
        "kind": kind,
        "anonymous_id": anonymous_id,
        "user_id": user_id,
        "reason": reason,
        "event_time_ms": event_time_ms,
        "message_id": message_id,
    }
