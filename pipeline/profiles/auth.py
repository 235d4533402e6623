"""Bearer tokens and per-client rate limits of the profile API (no I/O, unit-tested)."""

from __future__ import annotations

import hmac
import time
from collections.abc import Callable, Sequence


class Tokens:
    """Checks an ``Authorization`` header against the configured tokens (none: open)."""

    def __init__(self, tokens: Sequence[str]) -> None:
        self._tokens = [t.encode() for t in tokens]

    @property
    def required(self) -> bool:
        return bool(self._tokens)

    def allows(self, authorization: str | None) -> bool:
        if not self._tokens:
            return True
        if not authorization:
            return False
        scheme, _, given = authorization.partition(" ")
        if scheme.lower() != "bearer" or not given:
            return False
        candidate = given.strip().encode()
        # compare with every token, so the time taken says nothing about which matched
        ok = False
        for token in self._tokens:
            ok |= hmac.compare_digest(candidate, token)
        return ok

    def header(self) -> str | None:
        """The header this worker sends when it forwards (it holds the same tokens)."""
        return f"Bearer {self._tokens[0].decode()}" if self._tokens else None

    def __repr__(self) -> str:  # never show the tokens
        return f"Tokens({len(self._tokens)} configured)"


class RateLimiter:
    """A token bucket per client: ``rate`` requests a second, bursts of ``rate``.

    At most ``max_clients`` buckets are kept (the least recently refilled go
    first), so a scan from many addresses cannot grow it without bound.
    """

    def __init__(
        self,
        rate: float,
        *,
        max_clients: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.rate = float(rate)
        self.burst = float(rate)
        self.max_clients = max_clients
        self.clock = clock
        self.buckets: dict[str, tuple[float, float]] = {}  # client -> (tokens, at)

    def allow(self, client: str) -> float:
        """0.0 if the request may go on, else the seconds to wait before retrying."""
        now = self.clock()
        tokens, at = self.buckets.pop(client, (self.burst, now))
        tokens = min(self.burst, tokens + (now - at) * self.rate)
        wait = 0.0
        if tokens >= 1.0:
            tokens -= 1.0
        else:
            wait = (1.0 - tokens) / self.rate
        self.buckets[client] = (tokens, now)  # re-inserted: dicts keep insertion order
        if len(self.buckets) > self.max_clients:
            del self.buckets[next(iter(self.buckets))]
        return wait
