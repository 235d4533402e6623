"""Encoding of person state for the state table: compact, versioned bytes.

State is plain JSON-able data; it is stored as compact JSON (no spaces) behind a
one-byte version tag so the encoding can change without a migration.
"""

from __future__ import annotations

import json
from typing import Any

_V1 = b"\x01"


def encode_state(state: dict[str, Any]) -> bytes:
    return _V1 + json.dumps(state, separators=(",", ":")).encode()


def decode_state(data: bytes) -> dict[str, Any]:
    if data[:1] != _V1:
        raise ValueError(f"unknown person-state encoding version {data[:1]!r}")
    result: dict[str, Any] = json.loads(data[1:])
    return result
