"""The event envelope and its normalization from JSON.

Pulse accepts the Segment spec's field names (``messageId``, ``anonymousId``,
``userId``, ``type``, ``event``, ``timestamp`` as ISO-8601 or epoch ms,
``properties``, ``context``) as well as the schema's own snake_case names, and
normalizes both to :class:`Event`.

Event names match case- and separator-insensitively::

    >>> canonical_event_name("Checkout Started")
    'checkout_started'
    >>> canonical_event_name("checkout-started")
    'checkout_started'
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pipeline.errors import DecodeError

EVENT_TYPES = frozenset({"track", "identify", "page", "screen", "alias", "group"})

#: Event times outside [2000-01-01, 2100-01-01) are rejected as absurd: they are
#: almost always seconds sent as milliseconds or the reverse.
MIN_TIMESTAMP_MS = 946_684_800_000
MAX_TIMESTAMP_MS = 4_102_444_800_000

Scalar = None | bool | int | float | str
PropValue = Scalar | list[Any] | dict[str, Any]

_SEPARATORS = re.compile(r"[\s\-_.:/]+")
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")


def canonical_event_name(name: str) -> str:
    """Fold an event name to snake_case: case, spaces, dashes, dots and camelCase."""
    spaced = _CAMEL.sub("_", name.strip())
    return _SEPARATORS.sub("_", spaced).strip("_").lower()


_CONTEXT_FIELDS = (
    "channel", "timezone", "locale", "ip", "user_agent", "page_url", "page_path",
    "page_referrer", "page_title", "campaign_source", "campaign_medium", "campaign_name",
    "campaign_term", "campaign_content", "device_id", "device_type", "os_name",
    "app_name", "app_version",
)  # fmt: skip

# Segment's nested context paths -> our flat context fields.
_CONTEXT_PATHS: dict[str, str] = {
    "channel": "channel",
    "timezone": "timezone",
    "locale": "locale",
    "ip": "ip",
    "userAgent": "user_agent",
    "user_agent": "user_agent",
    "page.url": "page_url",
    "page.path": "page_path",
    "page.referrer": "page_referrer",
    "page.title": "page_title",
    "campaign.source": "campaign_source",
    "campaign.medium": "campaign_medium",
    "campaign.name": "campaign_name",
    "campaign.term": "campaign_term",
    "campaign.content": "campaign_content",
    "device.id": "device_id",
    "device.type": "device_type",
    "os.name": "os_name",
    "app.name": "app_name",
    "app.version": "app_version",
    **{name: name for name in _CONTEXT_FIELDS},
}


#: ``Event``'s default properties and context: a new empty dict each time (as
#: ``default_factory=dict``).
_NEW_DICT: Mapping[str, Any] = {}


@dataclass(frozen=True, slots=True, init=False)
class Event:
    """One behavioral event, as every part of Pulse sees it.

    ``event`` is the canonical snake_case name (None for identify/page/... without
    a name). ``person_id`` is the user id when known, else the anonymous id.
    """

    message_id: str
    type: str
    timestamp_ms: int
    event: str | None = None
    anonymous_id: str | None = None
    user_id: str | None = None
    sent_at_ms: int | None = None
    received_at_ms: int | None = None
    properties: Mapping[str, Any] = field(default_factory=dict)
    context: Mapping[str, Any] = field(default_factory=dict)
    #: alias: the id linked to ``user_id`` (Segment ``previousId``); schema v2
    previous_id: str | None = None
    #: group: the account the person belongs to (Segment ``groupId``); schema v2
    group_id: str | None = None

    def __init__(  # noqa: PLR0917 (the generated dataclass __init__'s signature)
        self,
        message_id: str,
        type: str,
        timestamp_ms: int,
        event: str | None = None,
        anonymous_id: str | None = None,
        user_id: str | None = None,
        sent_at_ms: int | None = None,
        received_at_ms: int | None = None,
        properties: Mapping[str, Any] = _NEW_DICT,
        context: Mapping[str, Any] = _NEW_DICT,
        previous_id: str | None = None,
        group_id: str | None = None,
    ) -> None:
        # written out so that mypyc compiles it (a generated dataclass __init__ runs as
        # interpreted Python, see pipeline.core.outputs.Output); frozen: object.__setattr__
        object.__setattr__(self, "message_id", message_id)
        object.__setattr__(self, "type", type)
        object.__setattr__(self, "timestamp_ms", timestamp_ms)
        object.__setattr__(self, "event", event)
        object.__setattr__(self, "anonymous_id", anonymous_id)
        object.__setattr__(self, "user_id", user_id)
        object.__setattr__(self, "sent_at_ms", sent_at_ms)
        object.__setattr__(self, "received_at_ms", received_at_ms)
        object.__setattr__(self, "properties", {} if properties is _NEW_DICT else properties)
        object.__setattr__(self, "context", {} if context is _NEW_DICT else context)
        object.__setattr__(self, "previous_id", previous_id)
        object.__setattr__(self, "group_id", group_id)

    @property
    def person_id(self) -> str:
        return self.user_id or self.anonymous_id or ""

    def to_record(self) -> dict[str, Any]:
        """The Avro record (schemas/event.avsc) for this event."""
        context = {name: self.context.get(name) for name in _CONTEXT_FIELDS}
        context["extra"] = dict(self.context.get("extra") or {})
        return {
            "message_id": self.message_id,
            "type": self.type,
            "event": self.event,
            "anonymous_id": self.anonymous_id,
            "user_id": self.user_id,
            "timestamp_ms": self.timestamp_ms,
            "sent_at_ms": self.sent_at_ms,
            "received_at_ms": self.received_at_ms,
            "properties": dict(self.properties),
            "context": context,
            "previous_id": self.previous_id,
            "group_id": self.group_id,
        }

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> Event:
        """Build from a decoded Avro record; trusts the schema's types."""
        raw_context = record.get("context") or {}
        context = {k: v for k, v in raw_context.items() if v is not None and v != {}}
        return cls(
            message_id=record["message_id"],
            type=record["type"],
            event=record.get("event"),
            anonymous_id=record.get("anonymous_id"),
            user_id=record.get("user_id"),
            timestamp_ms=record["timestamp_ms"],
            sent_at_ms=record.get("sent_at_ms"),
            received_at_ms=record.get("received_at_ms"),
            properties=record.get("properties") or {},
            context=context,
            previous_id=record.get("previous_id"),
            group_id=record.get("group_id"),
        )


def _first(obj: Mapping[str, Any], *names: str) -> Any:
    for name in names:
        if name in obj and obj[name] is not None:
            return obj[name]
    return None


def parse_timestamp_ms(value: Any, field_name: str = "timestamp") -> int:
    """Epoch milliseconds from an int/float (ms) or an ISO-8601 string with a zone.

    Raises :class:`DecodeError` (reason ``bad_timestamp``) for anything else, for
    naive ISO strings (their zone is unknowable) and for absurd values.
    """
    if isinstance(value, bool):
        raise DecodeError(
            "bad_timestamp", f"{field_name} is a boolean, expected epoch ms or ISO-8601"
        )
    if isinstance(value, float) and not math.isfinite(value):
        raise DecodeError("absurd_timestamp", f"{field_name}={value!r} is not a finite number")
    if isinstance(value, int | float):
        ms = int(value)
    elif isinstance(value, str):
        text = value.strip()
        if text.lstrip("-").isdigit() and text.isascii() and len(text) < 20:
            ms = int(text)
        else:
            try:
                parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
                naive = parsed.tzinfo is None
                ms = 0 if naive else int(parsed.timestamp() * 1000)
            except (ValueError, OverflowError):
                raise DecodeError(
                    "bad_timestamp", f"{field_name}={value!r} is neither epoch ms nor ISO-8601"
                ) from None
            if naive:
                raise DecodeError(
                    "bad_timestamp", f"{field_name}={value!r} has no time zone (add Z or +hh:mm)"
                )
    else:
        kind = type(value).__name__
        raise DecodeError("bad_timestamp", f"{field_name} is {kind}, expected epoch ms or ISO-8601")
    if not MIN_TIMESTAMP_MS <= ms < MAX_TIMESTAMP_MS:
        raise DecodeError(
            "absurd_timestamp",
            f"{field_name}={value!r} is outside 2000-2100 (seconds instead of milliseconds?)",
        )
    return ms


def _check_value(path: str, value: Any, depth: int) -> Any:
    if value is None or isinstance(value, bool | int | float | str):
        if isinstance(value, int) and not isinstance(value, bool) and not -(2**63) <= value < 2**63:
            raise DecodeError("wrong_type", f"{path}={value} does not fit in a 64-bit integer")
        return value
    if isinstance(value, Mapping) and depth < 2:
        return {str(k): _check_value(f"{path}.{k}", v, 2) for k, v in value.items()}
    if isinstance(value, list) and depth < 1:
        return [_check_value(f"{path}[{i}]", v, 1) for i, v in enumerate(value)]
    raise DecodeError(
        "wrong_type",
        f"{path} is nested too deeply: properties hold scalars, flat objects and lists of those",
    )


def _flatten(prefix: str, obj: Mapping[str, Any], out: dict[str, Any]) -> None:
    for key, value in obj.items():
        path = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, Mapping):
            _flatten(path, value, out)
        else:
            out[path] = value


def _normalize_context(raw: Any) -> dict[str, Any]:
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise DecodeError("wrong_type", f"context is {type(raw).__name__}, expected an object")
    flat: dict[str, Any] = {}
    _flatten("", raw, flat)
    context: dict[str, Any] = {}
    extra: dict[str, str] = {}
    for path, value in flat.items():
        if value is None:
            continue
        target = _CONTEXT_PATHS.get(path)
        if target is not None and isinstance(value, str):
            context[target] = value
        elif path == "extra":
            continue
        else:
            key = path[len("extra.") :] if path.startswith("extra.") else path
            extra[key] = value if isinstance(value, str) else repr(value)
    if extra:
        context["extra"] = extra
    return context


def _optional_id(obj: Mapping[str, Any], *names: str) -> str | None:
    value = _first(obj, *names)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise DecodeError("wrong_type", f"{names[0]} is {type(value).__name__}, expected a string")
    text = str(value)
    return text or None


def event_from_json(obj: Any, *, default_message_id: str | None = None) -> Event:
    """Validate one JSON object (Segment or schema field names) into an :class:`Event`.

    ``default_message_id`` is used when the object carries none (e.g. a digest
    of the line); without it a missing message id is an error.
    """
    if not isinstance(obj, Mapping):
        raise DecodeError("wrong_type", f"an event must be a JSON object, got {type(obj).__name__}")
    etype = _first(obj, "type")
    etype = "track" if etype is None else etype
    if not isinstance(etype, str) or etype.lower() not in EVENT_TYPES:
        raise DecodeError(
            "bad_type", f"type={etype!r} is not one of {', '.join(sorted(EVENT_TYPES))}"
        )
    etype = etype.lower()
    message_id = _optional_id(obj, "messageId", "message_id") or default_message_id
    if not message_id:
        raise DecodeError("missing_message_id", "messageId (or message_id) is missing")
    anonymous_id = _optional_id(obj, "anonymousId", "anonymous_id")
    user_id = _optional_id(obj, "userId", "user_id")
    if anonymous_id is None and user_id is None:
        raise DecodeError("missing_id", "neither userId nor anonymousId is present")
    name = _first(obj, "event")
    if name is not None and not isinstance(name, str):
        raise DecodeError("wrong_type", f"event is {type(name).__name__}, expected a string")
    if etype == "track" and not name:
        raise DecodeError("missing_event_name", "a track event needs an event name")
    if name is None and etype == "page":
        name = "page_viewed"
    if name is None and etype == "screen":
        name = "screen_viewed"
    raw_ts = _first(obj, "timestamp_ms", "timestamp", "originalTimestamp")
    if raw_ts is None:
        raise DecodeError("missing_timestamp", "timestamp (or timestamp_ms) is missing")
    props = _first(obj, "properties", "traits")
    if props is None:
        props = {}
    if not isinstance(props, Mapping):
        raise DecodeError("wrong_type", f"properties is {type(props).__name__}, expected an object")
    sent = _first(obj, "sentAt", "sent_at_ms")
    received = _first(obj, "receivedAt", "received_at_ms")
    return Event(
        message_id=message_id,
        type=etype,
        event=canonical_event_name(name) if name else None,
        anonymous_id=anonymous_id,
        user_id=user_id,
        timestamp_ms=parse_timestamp_ms(raw_ts),
        sent_at_ms=None if sent is None else parse_timestamp_ms(sent, "sentAt"),
        received_at_ms=None if received is None else parse_timestamp_ms(received, "receivedAt"),
        properties={str(k): _check_value(f"properties.{k}", v, 0) for k, v in props.items()},
        context=_normalize_context(_first(obj, "context")),
        previous_id=_optional_id(obj, "previousId", "previous_id"),
        group_id=_optional_id(obj, "groupId", "group_id"),
    )
