"""Sending one request to a webhook destination: signed, timed out, rate limited.

One :class:`Sender` per destination holds an aiohttp session whose connection
pool is as large as the destination's ``concurrency``, and a token bucket for
its ``rate_limit`` (requests per second). Every outcome is an
:class:`~pipeline.deliver.policy.Answer`: a status, or an error for a timeout or
a connection that failed. Redirects are not followed (a 3xx is an answer).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

import aiohttp

from pipeline.deliver.config import Destination
from pipeline.deliver.formats import message_id, render
from pipeline.deliver.policy import Answer
from pipeline.deliver.signing import signed_headers

USER_AGENT = "pulse-deliver/0.1"
_BODY_KEEP = 2048


class TokenBucket:
    """At most ``rate`` acquisitions per second on average, bursts up to ``burst``."""

    def __init__(self, rate: float, burst: float | None = None) -> None:
        self.rate = rate
        self.capacity = max(1.0, burst if burst is not None else rate)
        self.tokens = self.capacity
        self.stamp = time.monotonic()

    def delay(self) -> float:
        """Seconds until a token is free (0: take one now)."""
        now = time.monotonic()
        self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        return 0.0 if self.tokens >= 1 else (1 - self.tokens) / self.rate

    def take(self) -> None:
        self.tokens -= 1


class Sender:
    """Posts rendered, signed bodies to one destination."""

    def __init__(self, destination: Destination) -> None:
        self.destination = destination
        self.bucket = TokenBucket(destination.rate_limit) if destination.rate_limit else None
        self._session: aiohttp.ClientSession | None = None

    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            dest = self.destination
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=dest.concurrency, ttl_dns_cache=300),
                timeout=aiohttp.ClientTimeout(total=dest.timeout_ms / 1000),
                headers={"User-Agent": USER_AGENT},
            )
        return self._session

    def build(
        self, activations: Sequence[dict[str, object]], now_s: int
    ) -> tuple[bytes, dict[str, str]]:
        """The body and headers of one request (signed with every secret of the destination)."""
        dest = self.destination
        body = render(dest.format, activations, batched=dest.batch.max_records > 1)
        ids = [str(a["activation_id"]) for a in activations]
        headers = dict(dest.headers)
        headers["Content-Type"] = "application/json"
        headers.update(signed_headers(message_id(ids), now_s, body, dest.secrets))
        return body, headers

    async def post(self, body: bytes, headers: dict[str, str]) -> Answer:
        started = time.monotonic()
        try:
            async with self.session().post(
                self.destination.url, data=body, headers=headers, allow_redirects=False
            ) as response:
                content = await response.content.read(_BODY_KEEP)
                return Answer(
                    status=response.status,
                    retry_after=response.headers.get("Retry-After"),
                    body=content,
                    elapsed_ms=(time.monotonic() - started) * 1000,
                )
        except TimeoutError:
            error = f"timed out after {self.destination.timeout_ms} ms"
        except aiohttp.ClientError as exc:
            error = f"{type(exc).__name__}: {exc}"
        except OSError as exc:
            error = f"{type(exc).__name__}: {exc}"
        return Answer(status=None, error=error, elapsed_ms=(time.monotonic() - started) * 1000)

    async def wait_for_token(self) -> None:
        if self.bucket is None:
            return
        while (pause := self.bucket.delay()) > 0:
            await asyncio.sleep(pause)
        self.bucket.take()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
