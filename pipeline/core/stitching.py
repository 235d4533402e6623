"""The identity graph in the stream: route each event to its person, decide links.

:class:`Stitcher` keeps the anonymous id -> user id links and, for each event,
says which person it belongs to and what the caller must do about identity::

    stitcher = Stitcher(IdentityRules())
    person, actions = stitcher.route(event)
    for action in actions:
        emit("identities", action.user_id, action.record)
        if action.kind == "link":           # move the anonymous person's state
            state = proc.extract(action.anonymous_id) or {}
            proc.merge_in(action.user_id, state, action.anonymous_id)
            # (refused: an identities conflict; then proc.restore(anonymous_id, state))
    proc.process(event, person)

``pulse replay`` does exactly that on one processor (``pipeline/tools/replay.py``);
the worker does it across partitions (ingest routes, the by-person partitions
extract and merge in).

Routing, with the default priority (user id first):

* an event with a user id belongs to the user;
* an event with only an anonymous id belongs to the user that anonymous id is
  linked to, else to the anonymous id itself;
* an event with both ids links them the first time (any event, not only
  ``identify``: whichever arrives first). An anonymous id already linked to
  another user is a conflict (a shared device): recorded once per pair, never
  merged. A user already at ``max_anonymous_per_user`` refuses the link
  (conflict ``too_many_anonymous_ids``), and the anonymous id stays its own
  person.

Blocked placeholder ids are treated as absent. With ``priority=("anonymous_id",
"user_id")`` nothing links: persons are devices.

The links live in any ``MutableMapping`` (a dict in replay, a table in a
worker); the per-user count of linked anonymous ids is derived from it when
the stitcher is built and kept in memory, as are the conflict pairs already
reported. In a worker the mapping holds only the links of its own ingest
partitions (they are keyed by anonymous id), so there the authoritative
``max_anonymous_per_user`` check is ``Processor.merge_in``'s, on the user's
partition.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from dataclasses import dataclass
from typing import Any, Literal

from pipeline.core.events import Event
from pipeline.core.identity import (
    IdentityRules,
    accept_merge,
    clean_id,
    decide_link,
    identity_record,
    person_key,
)


@dataclass(frozen=True, slots=True)
class StitchAction:
    """One identity decision for the caller: emit ``record``; for a ``link``, merge.

    ``record`` goes to the ``identities`` topic keyed by ``user_id``.
    """

    kind: Literal["link", "conflict"]
    anonymous_id: str
    user_id: str
    record: dict[str, Any]


class Stitcher:
    """Anonymous id -> user id links, and the routing of events (see the module docstring)."""

    def __init__(
        self, rules: IdentityRules | None = None, links: MutableMapping[str, str] | None = None
    ) -> None:
        self.rules = IdentityRules() if rules is None else rules
        self.links: MutableMapping[str, str] = {} if links is None else links
        self._anonymous_ids: dict[str, list[str]] = {}
        for anonymous_id, user_id in self.links.items():
            self._anonymous_ids.setdefault(user_id, []).append(anonymous_id)
        self._reported: set[tuple[str, str]] = set()

    def link_of(self, anonymous_id: str) -> str | None:
        """The user ``anonymous_id`` is linked to, if any."""
        return self.links.get(anonymous_id)

    def anonymous_ids(self, user_id: str) -> list[str]:
        """The anonymous ids linked to ``user_id``, in link order."""
        return list(self._anonymous_ids.get(user_id, ()))

    def route(self, event: Event) -> tuple[str, list[StitchAction]]:
        """``(person id, actions)`` for one event; records any new link first."""
        rules = self.rules
        if not rules.stitches:
            return person_key(event, rules), []
        anonymous_id = clean_id(event.anonymous_id, rules)
        user_id = clean_id(event.user_id, rules)
        if user_id is None:
            if anonymous_id is None:
                return "", []
            return self.links.get(anonymous_id, anonymous_id), []
        if anonymous_id is None or anonymous_id == user_id:
            return user_id, []
        decision = decide_link(self.links.get(anonymous_id), anonymous_id, user_id, rules)
        reason = decision.reason
        if decision.kind == "link":
            accepted, refusal = accept_merge(self.anonymous_ids(user_id), anonymous_id, rules)
            if accepted:
                self.links[anonymous_id] = user_id
                self._anonymous_ids.setdefault(user_id, []).append(anonymous_id)
                record = identity_record(
                    "link", anonymous_id, user_id, reason, event.timestamp_ms, event.message_id
                )
                return user_id, [StitchAction("link", anonymous_id, user_id, record)]
            reason = refusal or "refused"
        elif decision.kind != "conflict":
            return user_id, []
        if (anonymous_id, user_id) in self._reported:
            return user_id, []  # a conflict is recorded once per pair, not per event
        self._reported.add((anonymous_id, user_id))
        record = identity_record(
            "conflict", anonymous_id, user_id, reason, event.timestamp_ms, event.message_id
        )
        return user_id, [StitchAction("conflict", anonymous_id, user_id, record)]
