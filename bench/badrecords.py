"""Bad input of every kind ingest must dead-letter, each with the reason it must carry."""

from __future__ import annotations

import json

from pipeline.contract.wire import MAX_EVENT_BYTES

#: Event time of the JSON bad records (inside the data set's months; they never count).
_TS = 1_767_225_600_000


def _json(**fields: object) -> bytes:
    return json.dumps(fields).encode()


def bad_records(good: bytes) -> list[tuple[str, bytes | None, bytes | None]]:
    """(expected ``pulse-dlq-reason``, key or None, value) for one record of each kind.

    ``good`` is a valid single-object event: several kinds are damaged copies of it.
    """
    track = {"type": "track", "event": "Page Viewed"}
    return [
        ("empty", b"bad-empty", None),
        ("empty", b"bad-empty", b""),
        ("bad_framing", None, b"\x07\x00garbage that is no event"),
        ("unknown_fingerprint", None, b"\xc3\x01" + b"\xee" * 8 + good[10:]),
        ("truncated_avro", None, good[: len(good) // 2]),
        ("invalid_json", None, b'{"messageId": "x", "type": '),
        ("missing_id", None, _json(messageId="bad-noid", timestamp=_TS, **track)),
        (
            "absurd_timestamp",
            None,
            _json(messageId="bad-ts", anonymousId="bad-ts", timestamp=42, **track),
        ),
        ("missing_message_id", None, _json(anonymousId="bad-mid", timestamp=_TS, **track)),
        (
            "bad_type",
            None,
            _json(messageId="bad-type", anonymousId="bad-t", timestamp=_TS, type="shout"),
        ),
        ("oversized", None, b"{" + b" " * (MAX_EVENT_BYTES + 10) + b"}"),
    ]
