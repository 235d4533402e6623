"""What an HTTP answer means for the activations it carried, and when to try again.

================================  ==========================================
answer                            what happens
================================  ==========================================
2xx                               delivered
429, 503                          retried after ``Retry-After`` (seconds or an
                                  HTTP date; the schedule's delay without it),
                                  and the destination pauses until then
408, other 5xx, timeout,          retried on the schedule
connection error
410 Gone                          the destination is disabled; its records are
                                  parked (kept, not committed) until
                                  ``pulse deliver enable``
other 3xx and 4xx                 dead-lettered at once with the response
================================  ==========================================

After the schedule's last attempt, or once the next attempt would come later
than ``max_age`` after the first, a record is dead-lettered.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from email.utils import parsedate_to_datetime

from pipeline.deliver.config import Retry

#: Retry-After is honoured up to this long (a day); a larger value is taken as this.
MAX_RETRY_AFTER_MS = 86_400_000


class Verdict(enum.Enum):
    DELIVERED = "delivered"
    RETRY = "retry"
    REJECTED = "rejected"
    GONE = "gone"


@dataclass(frozen=True)
class Answer:
    """How one request ended: an HTTP status, or no status and an error (timeout, refused)."""

    status: int | None
    error: str | None = None
    retry_after: str | None = None
    body: bytes = b""
    elapsed_ms: float = 0.0

    @property
    def summary(self) -> str:
        if self.status is None:
            return self.error or "no answer"
        text = self.body[:200].decode("utf-8", "replace").strip()
        return f"HTTP {self.status}" + (f": {text}" if text else "")


@dataclass(frozen=True)
class Judgement:
    verdict: Verdict
    #: For RETRY: the delay the receiver asked for (Retry-After), else None (the schedule's).
    after_ms: int | None = None


def retry_after_ms(value: str | None, now_ms: int) -> int | None:
    """``Retry-After`` in milliseconds from now: delta-seconds or an HTTP date; None if absent."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    if text.isdigit():
        return min(int(text) * 1000, MAX_RETRY_AFTER_MS)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        return None
    return max(0, min(int(when.timestamp() * 1000) - now_ms, MAX_RETRY_AFTER_MS))


def judge(answer: Answer, now_ms: int) -> Judgement:
    """The verdict on one answer (see the table above)."""
    status = answer.status
    if status is None:
        return Judgement(Verdict.RETRY)
    if 200 <= status < 300:
        return Judgement(Verdict.DELIVERED)
    if status == 410:
        return Judgement(Verdict.GONE)
    if status in (429, 503):
        return Judgement(Verdict.RETRY, retry_after_ms(answer.retry_after, now_ms))
    if status == 408 or status >= 500:
        return Judgement(Verdict.RETRY)
    return Judgement(Verdict.REJECTED)


@dataclass(frozen=True)
class NextStep:
    """After a failed attempt: try again at ``due_ms``, or give up with ``reason``."""

    due_ms: int | None
    reason: str | None = None


def next_step(
    retry: Retry, attempts: int, first_ms: int, now_ms: int, after_ms: int | None = None
) -> NextStep:
    """What follows the ``attempts``-th failed attempt (``attempts`` counts it)."""
    if attempts >= retry.attempts:
        return NextStep(None, "attempts_exhausted")
    delay = retry.schedule_ms[attempts] if after_ms is None else after_ms
    due = now_ms + delay
    if due - first_ms > retry.max_age_ms:
        return NextStep(None, "expired")
    return NextStep(due)
