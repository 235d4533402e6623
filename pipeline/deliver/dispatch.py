"""One destination's dispatcher: takes what is due from its book and sends it.

A :class:`Dispatcher` is an asyncio task per destination. It sends when the
destination is enabled, not paused by a ``Retry-After``, has fewer than
``concurrency`` requests in flight, its rate limit has a token, and either a
full batch is ready or the oldest ready activation has waited ``batch.wait``.
Each request runs as its own task; its answer goes back to the book
(``Book.finish``), and the writes the book then asks for are handed to
``flush`` (the worker's producer).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from pipeline.deliver import metrics
from pipeline.deliver.book import Book
from pipeline.deliver.config import Destination
from pipeline.deliver.entries import Entry
from pipeline.deliver.http import Sender
from pipeline.deliver.policy import Verdict, judge

log = logging.getLogger("pulse.deliver")


def now_ms() -> int:
    return int(time.time() * 1000)


@dataclass(eq=False)
class Dispatcher:
    config: Destination
    input_topic: str
    retry_topic: str
    flush: Callable[[], None] = lambda: None
    on_gone: Callable[[Dispatcher, str, int | None], None] = lambda d, r, s: None
    book: Book = field(init=False)
    sender: Sender = field(init=False)
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    requests: int = 0
    records_in_flight: int = 0
    fill_since: int | None = None
    paused: set[int] = field(default_factory=set)
    tasks: set[asyncio.Task[None]] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.book = Book(self.config)
        self.sender = Sender(self.config)

    @property
    def name(self) -> str:
        return self.config.name

    def wait_s(self, now: int) -> float | None:
        """How long to wait before sending (None: send now)."""
        book, dest = self.book, self.config
        if book.disabled or self.requests >= dest.concurrency:
            return 1.0
        if now < book.not_before_ms:
            return (book.not_before_ms - now) / 1000
        ready = book.ready_count(now)
        if not ready:
            due = book.next_due_ms()
            return 1.0 if due is None else max(0.0, (due - now) / 1000)
        batch = dest.batch
        if batch.max_records > 1 and ready < batch.max_records and batch.wait_ms:
            self.fill_since = self.fill_since or now
            left = self.fill_since + batch.wait_ms - now
            if left > 0:
                return left / 1000
        return None

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            self.wake.clear()
            wait = self.wait_s(now_ms())
            if wait is not None:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.wake.wait(), min(wait, 1.0))
                continue
            await self.sender.wait_for_token()
            entries = self.book.take(now_ms(), self.config.batch.max_records)
            self.fill_since = None
            if not entries:
                continue
            self.requests += 1
            self.records_in_flight += len(entries)
            task = asyncio.create_task(self.send(entries))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)

    async def send(self, entries: list[Entry]) -> None:
        name = self.name
        try:
            activations = [e.activation or {} for e in entries]
            body, headers = self.sender.build(activations, int(time.time()))
            answer = await self.sender.post(body, headers)
            now = now_ms()
            judgement = judge(answer, now)
            status = answer.status
            outcome = "error" if status is None else f"{status // 100}xx"
            metrics.DELIVER_REQUESTS.labels(name, outcome).inc()
            self.book.finish(entries, judgement, now, status, answer.summary)
            if judgement.verdict is Verdict.DELIVERED:
                delivered = [e for e in entries if e.state == "done"]
                metrics.DELIVER_DELIVERED.labels(name).inc(len(delivered))
                histogram = metrics.DELIVER_LATENCY.labels(name)
                for e in delivered:
                    if e.emitted_ms:
                        histogram.observe(max(0, now - e.emitted_ms) / 1000)
            elif judgement.verdict is Verdict.RETRY:
                retried = sum(1 for e in entries if e.state == "idle")
                metrics.DELIVER_RETRIED.labels(name).inc(retried)
                log.info("%s: %s; %d activation(s) to retry", name, answer.summary, retried)
            elif judgement.verdict is Verdict.GONE:
                self.on_gone(self, answer.summary, status)
            self.flush()
        finally:
            self.requests -= 1
            self.records_in_flight -= len(entries)
            self.wake.set()

    async def drain(self, timeout_s: float) -> None:
        """Wait for the requests in flight (at most ``timeout_s``)."""
        if self.tasks:
            await asyncio.wait(list(self.tasks), timeout=timeout_s)
