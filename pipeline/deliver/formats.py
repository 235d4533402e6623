"""Request bodies: an activation (``schemas/activation.avsc``) as JSON in one of three shapes.

``pulse``
    the activation record as is. With ``batch.max`` above 1, a JSON array of them.
``segment``
    a Segment-spec ``track`` call (``userId``, ``event``, ``properties``,
    ``timestamp``, ``messageId`` = activation_id), so any Segment-compatible
    HTTP API takes it; batched as ``{"batch": [...]}`` like Segment's ``/v1/batch``.
``slack``
    an incoming-webhook message (``{"text": ...}``), one line per activation.

Bodies are deterministic for a given list of activations (keys sorted, no
wall-clock time), so a request sent again carries the same bytes.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

Activation = dict[str, Any]


def _dumps(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).isoformat(timespec="milliseconds")[:-6] + "Z"


def _title(name: str) -> str:
    return " ".join(part.capitalize() for part in name.replace("-", "_").split("_") if part)


def segment_track(activation: Activation) -> dict[str, Any]:
    """A Segment ``track`` call for one activation."""
    kind = activation["kind"]
    if kind == "trigger":
        event = _title(activation["name"])
        extra: dict[str, Any] = {}
    else:  # segment_entered / segment_exited
        event = _title(kind)
        extra = {"segment": activation["name"]}
    properties = {
        **activation.get("payload", {}),
        **extra,
        "activation_id": activation["activation_id"],
        "pulse_kind": kind,
        "pulse_name": activation["name"],
        "source_id": activation["source_id"],
        "destination": activation["destination"],
    }
    if activation.get("channel"):
        properties["channel"] = activation["channel"]
    return {
        "type": "track",
        "userId": activation["person_id"],
        "event": event,
        "properties": properties,
        "timestamp": _iso(activation["event_time_ms"]),
        "messageId": activation["activation_id"],
        "context": {"library": {"name": "pulse", "version": "0.1.0"}},
    }


def _slack_line(activation: Activation) -> str:
    what = activation["name"]
    if activation["kind"] != "trigger":
        what = f"{activation['kind'].replace('_', ' ')} {what}"
    details = ", ".join(
        f"{k}: {v}" for k, v in sorted(activation.get("payload", {}).items())
        if not isinstance(v, list | dict)
    )  # fmt: skip
    when = _iso(activation["event_time_ms"])
    line = f"*{what}* for `{activation['person_id']}` at {when}"
    return f"{line} ({details})" if details else line


def pulse_body(activations: Sequence[Activation], batched: bool) -> bytes:
    return _dumps(list(activations) if batched else activations[0])


def segment_body(activations: Sequence[Activation], batched: bool) -> bytes:
    calls = [segment_track(a) for a in activations]
    return _dumps({"batch": calls} if batched else calls[0])


def slack_body(activations: Sequence[Activation], batched: bool) -> bytes:
    del batched  # one message either way
    return _dumps({"text": "\n".join(_slack_line(a) for a in activations)})


BODIES: dict[str, Callable[[Sequence[Activation], bool], bytes]] = {
    "pulse": pulse_body,
    "segment": segment_body,
    "slack": slack_body,
}


def render(fmt: str, activations: Sequence[Activation], *, batched: bool) -> bytes:
    """The request body for ``activations`` in format ``fmt``."""
    return BODIES[fmt](activations, batched)


def message_id(activation_ids: Sequence[str]) -> str:
    """The ``webhook-id`` of a request: the activation_id, or for a batch a digest of them all.

    A batch sent again after a crash may group activations differently, so
    receivers of batches deduplicate on each activation's own id in the body.
    """
    if len(activation_ids) == 1:
        return activation_ids[0]
    digest = hashlib.sha256("\n".join(activation_ids).encode()).hexdigest()[:32]
    return f"batch_{digest}"
