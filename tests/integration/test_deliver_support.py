"""A real HTTP receiver for the delivery tests, helpers to feed and run ``pulse deliver``,
and the receiver's own checks.

:class:`Receiver` is an aiohttp server on 127.0.0.1 (a random port) in its own
thread. Each path answers 200 unless told otherwise with :meth:`Receiver.plan`
(a queue of answers: status, headers, delay), records every request it gets,
and verifies each one's Standard Webhooks signature with the test's secret
(``pipeline.deliver.verify``, as a user's receiver would).
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web
from confluent_kafka import Producer

from pipeline.config import Settings
from pipeline.contract.topics import encode_output
from pipeline.deliver import WebhookVerificationError, verify
from pipeline.deliver.config import Destinations, load_destinations
from pipeline.deliver.worker import DeliveryWorker

pytestmark = pytest.mark.integration

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
T0 = 1_790_000_000_000


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float
    verified: bool
    status: int = 200

    def json(self) -> Any:
        return json.loads(self.body)

    def activation_ids(self) -> list[str]:
        data = self.json()
        items = data if isinstance(data, list) else data.get("batch", [data])
        return [i.get("activation_id") or i.get("messageId") for i in items]


@dataclass
class Answer:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0


class Receiver:
    """A webhook endpoint that records, verifies and answers as planned."""

    def __init__(self, secret: str | None = SECRET) -> None:
        self.secret = secret
        self.requests: list[Received] = []
        self.plans: dict[str, deque[Answer]] = {}
        self.defaults: dict[str, Answer] = {}
        self.lock = threading.Lock()
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def plan(self, path: str, *answers: Answer) -> None:
        with self.lock:
            self.plans.setdefault(path, deque()).extend(answers)

    def default(self, path: str, answer: Answer) -> None:
        with self.lock:
            self.defaults[path] = answer

    def got(self, path: str | None = None, status: int | None = None) -> list[Received]:
        with self.lock:
            return [r for r in self.requests if (path is None or r.path == path)
                    and (status is None or r.status == status)]  # fmt: skip

    def delivered_ids(self, path: str) -> list[str]:
        return [i for r in self.got(path, 200) for i in r.activation_ids()]

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        verified = True
        if self.secret is not None:
            try:
                verify(body, dict(request.headers), self.secret)
            except WebhookVerificationError:
                verified = False
        with self.lock:
            queue = self.plans.get(request.path)
            answer = queue.popleft() if queue else self.defaults.get(request.path, Answer())
            self.requests.append(Received(request.path, dict(request.headers), body,
                                          time.time(), verified, answer.status))  # fmt: skip
        if answer.delay_s:
            await asyncio.sleep(answer.delay_s)
        return web.Response(status=answer.status, headers=answer.headers, text="ok")

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        app = web.Application()
        app.router.add_route("POST", "/{tail:.*}", self._handle)
        runner = web.AppRunner(app, access_log=None)
        self._loop.run_until_complete(runner.setup())
        site = web.TCPSite(runner, "127.0.0.1", 0)
        self._loop.run_until_complete(site.start())
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self._ready.set()
        self._loop.run_forever()
        self._loop.run_until_complete(runner.cleanup())

    def __enter__(self) -> Receiver:
        self._thread.start()
        self._ready.wait(10)
        return self

    def __exit__(self, *exc: object) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)


def activation(dest: str, n: int, person: str | None = None, name: str = "checkout_abandoned"
               ) -> dict[str, Any]:  # fmt: skip
    return {
        "activation_id": f"act-{dest}-{n}", "destination": dest, "kind": "trigger",
        "name": name, "person_id": person or f"person-{n % 7}", "channel": "email",
        "event_time_ms": T0 + n, "source_id": f"trig-{n}", "payload": {"cart_value": 10.0 + n},
    }  # fmt: skip


def produce_activations(settings: Settings, acts: list[dict[str, Any]]) -> None:
    """Onto ``pulse.activations.<dest>``, keyed by person, as the stream worker writes them."""
    producer = Producer({"bootstrap.servers": settings.bootstrap_servers, "linger.ms": 5})
    emitted = str(int(time.time() * 1000)).encode()
    for act in acts:
        producer.produce(settings.topic(f"activations.{act['destination']}"),
                         key=act["person_id"].encode(), value=encode_output("activations.x", act),
                         headers=[("pulse-emitted-at-ms", emitted)])  # fmt: skip
        producer.poll(0)
    assert producer.flush(30) == 0


def destinations(text: str) -> Destinations:
    return load_destinations("test-destinations.yaml", text, env={"SECRET": SECRET})


@contextmanager
def running(
    settings: Settings, dests: Destinations, group_id: str | None = None, **kwargs: Any
) -> Iterator[DeliveryWorker]:
    """A delivery worker in a thread of this process for the duration of the block."""
    group_id = group_id or f"deliver-{uuid.uuid4().hex[:8]}"
    worker = DeliveryWorker(settings, dests, group_id=group_id, **kwargs)
    worker.setup(partitions=4)
    errors: list[BaseException] = []
    loop = asyncio.new_event_loop()

    def main() -> None:
        try:
            loop.run_until_complete(worker.run())
        except BaseException as exc:  # surfaced in the test
            errors.append(exc)

    thread = threading.Thread(target=main, daemon=True)
    thread.start()
    try:
        yield worker
    finally:
        loop.call_soon_threadsafe(worker.stop)
        thread.join(30)
        loop.close()
    assert not errors, errors


def wait_for(check: Callable[[], bool], timeout_s: float = 30, what: str = "") -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or check}")
        time.sleep(0.05)


# --------------------------------------------------------------------------- #
# The receiver itself (no broker needed, but it lives with its users)
# --------------------------------------------------------------------------- #


def test_receiver_verifies_signatures_and_follows_its_plan() -> None:
    import urllib.error
    import urllib.request

    from pipeline.deliver.signing import parse_secret, signed_headers

    body = b'{"x": 1}'
    with Receiver() as rx:
        rx.plan("/a", Answer(503, {"Retry-After": "1"}))
        headers = signed_headers("m1", int(time.time()), body, [parse_secret(SECRET)])
        req = urllib.request.Request(rx.url("/a"), body, headers, method="POST")
        with pytest.raises(urllib.error.HTTPError, match="503"):
            urllib.request.urlopen(req, timeout=5).close()
        urllib.request.urlopen(req, timeout=5).close()
        bad = urllib.request.Request(rx.url("/a"), body, {"webhook-id": "m1"}, method="POST")
        urllib.request.urlopen(bad, timeout=5).close()
    assert [r.status for r in rx.got("/a")] == [503, 200, 200]
    assert [r.verified for r in rx.got("/a")] == [True, True, False]
