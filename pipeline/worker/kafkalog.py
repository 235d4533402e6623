"""librdkafka's log lines through Python logging, rate-limited.

During a broker outage librdkafka reports every failed connection attempt;
each distinct message is logged at most once every ``INTERVAL_S`` seconds.
"""

from __future__ import annotations

import logging
import time
from typing import Any

INTERVAL_S = 10.0


class RateLimitedLog(logging.LoggerAdapter):  # type: ignore[type-arg]
    """librdkafka's log lines, at most one per message text every 10 s (broker outages)."""

    def __init__(self, logger: logging.Logger) -> None:
        super().__init__(logger, {})
        self._last: dict[str, float] = {}

    def log(self, level: int, msg: object, *args: Any, **kwargs: Any) -> None:
        text = str(msg) % args if args else str(msg)
        key = text.split("(")[0][:80]
        now = time.monotonic()
        if now - self._last.get(key, -1e9) < INTERVAL_S:
            return
        self._last[key] = now
        self.logger.log(level, text)
