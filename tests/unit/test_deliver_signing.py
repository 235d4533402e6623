"""Standard Webhooks signing and verification, against the spec's published test vectors.

The vectors (secret, message id, timestamp, payload and the expected signature)
are the ones the standard-webhooks repository's own libraries test with.
"""

from __future__ import annotations

import time

import pytest

from pipeline.deliver import WebhookVerificationError, sign, verify
from pipeline.deliver.signing import parse_secret, signed_headers

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
MSG_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
PAYLOAD = b'{"test": 2432232314}'
TIMESTAMP = 1614265330
EXPECTED = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
WRONG = "v1,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc="


def headers(ts: int = TIMESTAMP, sig: str = EXPECTED, msg_id: str = MSG_ID) -> dict[str, str]:
    return {"webhook-id": msg_id, "webhook-timestamp": str(ts), "webhook-signature": sig}


def test_sign_matches_the_spec_vector():
    assert sign(MSG_ID, TIMESTAMP, PAYLOAD, [SECRET]) == EXPECTED
    # the whsec_ prefix is optional
    assert sign(MSG_ID, TIMESTAMP, PAYLOAD, [SECRET.removeprefix("whsec_")]) == EXPECTED


def test_verify_accepts_the_spec_vector_at_its_time():
    verify(PAYLOAD, headers(), SECRET, now_s=TIMESTAMP + 10)
    verify(PAYLOAD.decode(), headers(), SECRET.removeprefix("whsec_"), now_s=TIMESTAMP)


def test_header_names_are_case_insensitive():
    upper = {k.upper(): v for k, v in headers().items()}
    verify(PAYLOAD, upper, SECRET, now_s=TIMESTAMP)


@pytest.mark.parametrize("missing", ["webhook-id", "webhook-timestamp", "webhook-signature"])
def test_a_missing_header_fails(missing):
    h = headers()
    del h[missing]
    with pytest.raises(WebhookVerificationError, match=missing):
        verify(PAYLOAD, h, SECRET, now_s=TIMESTAMP)


@pytest.mark.parametrize(
    ("case", "h", "body"),
    [
        ("wrong signature", headers(sig=WRONG), PAYLOAD),
        ("one bit off", headers(sig=EXPECTED[:-2] + "A="), PAYLOAD),
        ("other body", headers(), b'{"test": 2432232315}'),
        ("other id", headers(msg_id="msg_other"), PAYLOAD),
        ("not a number", headers(ts="hello"), PAYLOAD),  # type: ignore[arg-type]
        ("v2 only", headers(sig="v2," + EXPECTED[3:]), PAYLOAD),
    ],
)
def test_tampering_fails(case, h, body):
    with pytest.raises(WebhookVerificationError):
        verify(body, h, SECRET, now_s=TIMESTAMP)


def test_timestamps_outside_the_tolerance_fail():
    with pytest.raises(WebhookVerificationError, match="too old"):
        verify(PAYLOAD, headers(), SECRET, now_s=TIMESTAMP + 301)
    with pytest.raises(WebhookVerificationError, match="too new"):
        verify(PAYLOAD, headers(), SECRET, now_s=TIMESTAMP - 301)
    verify(PAYLOAD, headers(), SECRET, now_s=TIMESTAMP + 3600, tolerance_s=3600)


def test_several_signatures_one_valid_passes():
    sig = " ".join([WRONG, "v2," + WRONG[3:], EXPECTED, WRONG])
    verify(PAYLOAD, headers(sig=sig), SECRET, now_s=TIMESTAMP)


def test_key_rotation_signs_with_every_secret_and_either_verifies():
    new = "whsec_" + "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo="
    now = int(time.time())
    h = signed_headers(MSG_ID, now, PAYLOAD, [parse_secret(new), parse_secret(SECRET)])
    assert len(h["webhook-signature"].split()) == 2
    verify(PAYLOAD, h, SECRET)  # a receiver still on the old secret
    verify(PAYLOAD, h, new)  # one already on the new
    verify(PAYLOAD, h, [new, SECRET])
    with pytest.raises(WebhookVerificationError):
        verify(PAYLOAD, h, "whsec_" + "WllZWVlZWVlZWVlZWVlZWVlZWVlZWVk=")


def test_secrets_must_be_base64():
    from pipeline.errors import PulseError

    with pytest.raises(PulseError, match="base64"):
        parse_secret("whsec_not base64!")
    with pytest.raises(PulseError, match="empty"):
        parse_secret("whsec_")
