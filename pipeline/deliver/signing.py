"""Standard Webhooks signatures: sign what Pulse sends, verify what a receiver gets.

Every request carries three headers (https://www.standardwebhooks.com)::

    webhook-id          the activation_id (deterministic: deduplicate on it)
    webhook-timestamp   seconds since the epoch when the request was signed
    webhook-signature   v1,<base64 HMAC-SHA256 over "<id>.<timestamp>.<body>"> ...

The HMAC key is the base64 text after ``whsec_`` in the secret, decoded. During
a key rotation a destination holds several secrets and the header lists one
signature per secret, separated by spaces; a receiver accepts the request when
any of them matches one of its own secrets.

A receiver in Python::

    from pipeline.deliver.signing import verify
    verify(request_body_bytes, request.headers, "whsec_...")   # raises on a bad request
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import time
from collections.abc import Iterable, Mapping

from pipeline.errors import PulseError

SECRET_PREFIX = "whsec_"  # noqa: S105 - the format, not a secret
DEFAULT_TOLERANCE_S = 300


class WebhookVerificationError(PulseError):
    """A webhook request whose headers or signature do not check out."""


def parse_secret(secret: str | bytes) -> bytes:
    """The HMAC key of a ``whsec_<base64>`` secret (the prefix is optional).

    Raw bytes are taken as the key itself.
    """
    if isinstance(secret, bytes):
        return secret
    text = secret.strip()
    if text.startswith(SECRET_PREFIX):
        text = text[len(SECRET_PREFIX) :]
    try:
        key = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise PulseError("a secret is whsec_ followed by base64") from None
    if not key:
        raise PulseError("the secret is empty")
    return key


def signature(key: bytes, msg_id: str, timestamp_s: int, body: bytes) -> str:
    """One ``v1,<base64>`` signature of ``body`` with ``key``."""
    signed = b"%s.%d.%s" % (msg_id.encode(), timestamp_s, body)
    digest = hmac.new(key, signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def sign(msg_id: str, timestamp_s: int, body: bytes, secrets: Iterable[str | bytes]) -> str:
    """The ``webhook-signature`` header value: one signature per secret, space-separated."""
    return " ".join(signature(parse_secret(s), msg_id, timestamp_s, body) for s in secrets)


def signed_headers(
    msg_id: str, timestamp_s: int, body: bytes, keys: Iterable[bytes]
) -> dict[str, str]:
    """The three Standard Webhooks headers (no signature header without a key)."""
    headers = {"webhook-id": msg_id, "webhook-timestamp": str(timestamp_s)}
    sigs = [signature(k, msg_id, timestamp_s, body) for k in keys]
    if sigs:
        headers["webhook-signature"] = " ".join(sigs)
    return headers


def _header(headers: Mapping[str, str], name: str) -> str:
    for key, value in headers.items():
        if key.lower() == name:
            return value
    raise WebhookVerificationError(f"missing header {name}")


def verify(
    body: bytes | str,
    headers: Mapping[str, str],
    secrets: str | bytes | Iterable[str | bytes],
    *,
    tolerance_s: int = DEFAULT_TOLERANCE_S,
    now_s: float | None = None,
) -> None:
    """Check a received webhook; raises :class:`WebhookVerificationError` unless it is genuine.

    ``headers`` is any mapping (looked up without regard to case); ``secrets``
    one ``whsec_`` secret or several (a rotation). The timestamp must be within
    ``tolerance_s`` of ``now_s`` (default: the clock), which bounds replays.
    """
    if isinstance(body, str):
        body = body.encode()
    keys = [parse_secret(secrets)] if isinstance(secrets, str | bytes) else [
        parse_secret(s) for s in secrets
    ]  # fmt: skip
    msg_id = _header(headers, "webhook-id")
    raw_ts = _header(headers, "webhook-timestamp")
    offered = _header(headers, "webhook-signature")
    try:
        timestamp = int(raw_ts)
    except ValueError:
        raise WebhookVerificationError(f"webhook-timestamp {raw_ts!r} is not a number") from None
    now = time.time() if now_s is None else now_s
    if timestamp < now - tolerance_s:
        raise WebhookVerificationError("webhook-timestamp is too old")
    if timestamp > now + tolerance_s:
        raise WebhookVerificationError("webhook-timestamp is too new")
    expected = [signature(k, msg_id, timestamp, body) for k in keys]
    for item in offered.split():
        version, _, _ = item.partition(",")
        if version != "v1":
            continue
        if any(hmac.compare_digest(item.encode(), e.encode()) for e in expected):
            return
    raise WebhookVerificationError("no matching signature")
