"""The producer SDK: send events to Pulse from Python, sync or asyncio.

::

    from pipeline.sdk import PulseClient

    with PulseClient() as pulse:                      # KAFKA_BOOTSTRAP_SERVERS, pulse.events
        pulse.identify("u-42", anonymous_id="a-1", traits={"email": "ada@example.com"})
        pulse.track("Checkout Started", user_id="u-42", properties={"value": 89.5})
    # leaving the block flushes: every event is delivered or an error is raised

    async with AsyncPulseClient() as pulse:           # the same API, awaitable
        await pulse.track("Order Completed", user_id="u-42", properties={"revenue": 89.5})

What it guarantees:

* every event is validated like the ingest validates it (:class:`~pipeline.errors.DecodeError`
  at the call, not in the dead-letter topic later) and sent as Avro single-object
  encoding (:func:`pipeline.contract.wire.encode_event`);
* the producer is idempotent (``enable.idempotence``, ``acks=all``) and events
  are keyed like ``pulse produce`` (:func:`pipeline.contract.produce.partition_key`), so a
  device's events stay in order on one partition through retries;
* batching: events wait up to ``linger_ms`` to share a request;
* delivery reports are counted (:attr:`PulseClient.delivered`, :attr:`PulseClient.failed`)
  and :meth:`PulseClient.flush` raises :class:`~pipeline.errors.BrokerUnavailable`
  when an event could not be delivered.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Mapping
from types import TracebackType
from typing import Any

from pipeline.config import Settings
from pipeline.contract.produce import kafka_producer_config, partition_key
from pipeline.contract.wire import encode_event
from pipeline.core.events import Event, event_from_json
from pipeline.errors import BrokerUnavailable, PulseError

__all__ = ["AsyncPulseClient", "PulseClient", "build_event"]


def build_event(
    type: str,
    *,
    event: str | None = None,
    user_id: str | None = None,
    anonymous_id: str | None = None,
    properties: Mapping[str, Any] | None = None,
    context: Mapping[str, Any] | None = None,
    timestamp_ms: int | None = None,
    message_id: str | None = None,
    previous_id: str | None = None,
    group_id: str | None = None,
) -> Event:
    """A validated :class:`Event`; ``timestamp_ms`` defaults to now, ``message_id`` to a UUID.

    >>> build_event("track", event="Checkout Started", user_id="u1",
    ...             timestamp_ms=1_790_000_000_000, message_id="m1").event
    'checkout_started'
    """
    obj: dict[str, Any] = {
        "type": type,
        "messageId": message_id or str(uuid.uuid4()),
        "timestamp": int(time.time() * 1000) if timestamp_ms is None else timestamp_ms,
        "event": event,
        "userId": user_id,
        "anonymousId": anonymous_id,
        "properties": dict(properties or {}),
        "context": dict(context or {}),
        "previousId": previous_id,
        "groupId": group_id,
    }
    return event_from_json(obj)


class PulseClient:
    """A typed, batching, idempotent producer of Pulse events (one per process is plenty)."""

    def __init__(
        self,
        bootstrap: str | None = None,
        topic: str | None = None,
        *,
        settings: Settings | None = None,
        linger_ms: int = 5,
        config: Mapping[str, Any] | None = None,
    ) -> None:
        from confluent_kafka import Producer

        settings = settings or Settings.from_env()
        if bootstrap:
            settings = Settings(bootstrap_servers=bootstrap, bootstrap_from_env=True,
                                topic_prefix=settings.topic_prefix)  # fmt: skip
        self.settings = settings
        self.topic = topic or settings.topic("events")
        conf = kafka_producer_config(settings)
        conf["linger.ms"] = linger_ms
        conf.update(config or {})
        self._producer = Producer(conf)
        self.sent = 0
        self.delivered = 0
        self.failed = 0
        self.errors: list[str] = []
        self._closed = False

    # -- the calls --------------------------------------------------------------

    def send(self, event: Event) -> str:
        """Queue one validated event; returns its message id. Never blocks for long."""
        if self._closed:
            raise PulseError("this PulseClient is closed")
        value = encode_event(event)
        key = partition_key(event)
        while True:
            try:
                self._producer.produce(self.topic, key=key, value=value,
                                       on_delivery=self._on_delivery)  # fmt: skip
                break
            except BufferError:  # local queue full: serve delivery reports, then retry
                self._producer.poll(0.05)
        self.sent += 1
        self._producer.poll(0)
        return event.message_id

    def track(
        self,
        event: str,
        *,
        user_id: str | None = None,
        anonymous_id: str | None = None,
        properties: Mapping[str, Any] | None = None,
        **fields: Any,
    ) -> str:
        """``track("Checkout Started", user_id=..., properties={...})``; returns the message id."""
        return self.send(
            build_event(
                "track",
                event=event,
                user_id=user_id,
                anonymous_id=anonymous_id,
                properties=properties,
                **fields,
            )
        )

    def identify(
        self,
        user_id: str,
        *,
        anonymous_id: str | None = None,
        traits: Mapping[str, Any] | None = None,
        **fields: Any,
    ) -> str:
        """Link ``anonymous_id`` (this device) to ``user_id``, with the person's traits."""
        return self.send(
            build_event(
                "identify", user_id=user_id, anonymous_id=anonymous_id, properties=traits, **fields
            )
        )

    def page(
        self,
        name: str | None = None,
        *,
        user_id: str | None = None,
        anonymous_id: str | None = None,
        properties: Mapping[str, Any] | None = None,
        **fields: Any,
    ) -> str:
        """A page view (``page_viewed`` unless ``name`` is given)."""
        return self.send(
            build_event(
                "page",
                event=name,
                user_id=user_id,
                anonymous_id=anonymous_id,
                properties=properties,
                **fields,
            )
        )

    def alias(self, user_id: str, previous_id: str, **fields: Any) -> str:
        """Declare that ``previous_id`` (an old or anonymous id) is ``user_id``."""
        return self.send(build_event("alias", user_id=user_id, previous_id=previous_id, **fields))

    # -- delivery ---------------------------------------------------------------

    def _on_delivery(self, err: Any, _msg: Any) -> None:
        if err is None:
            self.delivered += 1
        else:
            self.failed += 1
            if len(self.errors) < 100:
                self.errors.append(str(err))

    def poll(self, timeout_s: float = 0.0) -> int:
        """Serve delivery reports; returns how many were served."""
        return int(self._producer.poll(timeout_s))

    def flush(self, timeout_s: float = 30.0) -> None:
        """Wait until every queued event is delivered; raise if any could not be."""
        remaining = int(self._producer.flush(timeout_s))
        if remaining or self.errors:
            errors, self.errors = self.errors, []
            raise BrokerUnavailable(
                f"{remaining} event(s) still queued and {self.failed} failed for "
                f"{self.settings.bootstrap_servers}" + (f": {errors[0]}" if errors else "")
            )

    async def aflush(self, timeout_s: float = 30.0) -> None:
        """:meth:`flush` without blocking the event loop."""
        await asyncio.to_thread(self.flush, timeout_s)

    def close(self, timeout_s: float = 30.0) -> None:
        """Flush and stop accepting events."""
        if not self._closed:
            self._closed = True
            self.flush(timeout_s)

    def __enter__(self) -> PulseClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.close()
        else:  # don't hide the original error behind a flush error
            self._closed = True
            self._producer.flush(5)


class AsyncPulseClient:
    """:class:`PulseClient` for asyncio code: the same calls, awaitable, never blocking.

    Producing only queues (librdkafka sends in its own threads); delivery reports
    are served by a background task, and :meth:`flush` runs in a worker thread.
    """

    def __init__(
        self, bootstrap: str | None = None, topic: str | None = None, **kwargs: Any
    ) -> None:
        self.client = PulseClient(bootstrap, topic, **kwargs)
        self._poller: asyncio.Task[None] | None = None

    async def _poll_forever(self) -> None:
        while True:
            self.client.poll(0)
            await asyncio.sleep(0.05)

    async def __aenter__(self) -> AsyncPulseClient:
        self._poller = asyncio.get_running_loop().create_task(self._poll_forever())
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._poller is not None:
            self._poller.cancel()
        await self.close()

    async def track(self, event: str, **kwargs: Any) -> str:
        return self.client.track(event, **kwargs)

    async def identify(self, user_id: str, **kwargs: Any) -> str:
        return self.client.identify(user_id, **kwargs)

    async def page(self, name: str | None = None, **kwargs: Any) -> str:
        return self.client.page(name, **kwargs)

    async def alias(self, user_id: str, previous_id: str, **kwargs: Any) -> str:
        return self.client.alias(user_id, previous_id, **kwargs)

    async def flush(self, timeout_s: float = 30.0) -> None:
        await self.client.aflush(timeout_s)

    async def close(self, timeout_s: float = 30.0) -> None:
        await asyncio.to_thread(self.client.close, timeout_s)

    @property
    def delivered(self) -> int:
        return self.client.delivered
