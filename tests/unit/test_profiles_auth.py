"""The profile API's tokens, rate limits and settings (``pipeline/profiles``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.errors import ConfigError
from pipeline.profiles.auth import RateLimiter, Tokens
from pipeline.profiles.settings import ApiSettings

TOKEN = "s3cret-token-0123456789"


def test_tokens_accept_only_a_configured_bearer_token() -> None:
    tokens = Tokens([TOKEN, "another-token-abcdefgh"])
    assert tokens.required
    assert tokens.allows(f"Bearer {TOKEN}")
    assert tokens.allows(f"bearer {TOKEN}")
    assert tokens.allows("Bearer another-token-abcdefgh")
    for bad in (None, "", TOKEN, f"Basic {TOKEN}", "Bearer ", f"Bearer {TOKEN}x", "Bearer s3cret"):
        assert not tokens.allows(bad), bad
    assert TOKEN not in repr(tokens)
    assert tokens.header() == f"Bearer {TOKEN}"


def test_no_tokens_means_open_and_bound_to_localhost() -> None:
    assert Tokens([]).allows(None)
    assert not Tokens([]).required
    settings = ApiSettings.from_env({"PULSE_API_HOST": "0.0.0.0"})
    assert settings.bind_host == "127.0.0.1"
    assert settings.url(9110) == "http://127.0.0.1:9110"
    with_tokens = ApiSettings.from_env({"PULSE_API_TOKENS": TOKEN})
    assert with_tokens.bind_host == "0.0.0.0"


def test_settings_read_tokens_from_a_file_and_never_show_them(tmp_path: Path) -> None:
    path = tmp_path / "tokens"
    path.write_text(f"# the API's tokens\n{TOKEN}\n\n  another-token-abcdefgh  \n")
    settings = ApiSettings.from_env(
        {"PULSE_API_TOKENS_FILE": str(path), "PULSE_API_TOKENS": f"{TOKEN}, third-token-abcdefgh"}
    )
    assert settings.tokens == (TOKEN, "third-token-abcdefgh", "another-token-abcdefgh")
    assert TOKEN not in repr(settings)
    defaults = ApiSettings.from_env({})
    assert (defaults.port, defaults.rate_limit, defaults.history, defaults.tokens) == (
        9110, 1000, 50, ()
    )  # fmt: skip
    with pytest.raises(ConfigError) as short:
        ApiSettings.from_env({"PULSE_API_TOKENS": "short"})
    assert "short" not in str(short.value).replace("shorter", "")
    with pytest.raises(ConfigError):
        ApiSettings.from_env({"PULSE_API_TOKENS_FILE": str(tmp_path / "missing")})
    with pytest.raises(ConfigError):
        ApiSettings.from_env({"PULSE_API_RATE_LIMIT": "0"})


def test_the_rate_limit_is_a_bucket_per_client() -> None:
    now = [0.0]
    limiter = RateLimiter(10, clock=lambda: now[0])
    assert all(limiter.allow("a") == 0.0 for _ in range(10))  # a burst of 10
    wait = limiter.allow("a")
    assert 0.09 < wait <= 0.1
    assert limiter.allow("b") == 0.0  # another client has its own bucket
    now[0] += 0.1  # one token back
    assert limiter.allow("a") == 0.0
    assert limiter.allow("a") > 0


def test_the_rate_limiter_keeps_a_bounded_number_of_clients() -> None:
    limiter = RateLimiter(5, max_clients=100)
    for i in range(1000):
        limiter.allow(f"10.0.{i // 256}.{i % 256}")
    assert len(limiter.buckets) == 100
