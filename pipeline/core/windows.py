"""Window assignment: pure functions of ``(timestamp_ms, size_ms, step_ms)``.

Every window is half-open, ``[start_ms, end_ms)``, in epoch milliseconds, and
aligned to the epoch (a day window starts at 00:00 UTC). Nothing here keeps
state; the window-count trait (``folds.WindowCounts``) places events in
tumbling buckets and reads a window as the hopping window over them.

Three kinds, the names Kafka Streams and Quix use:

* **tumbling** ``size``: fixed, non-overlapping; each event is in exactly one.

      >>> tumbling_window(125, 100)
      Window(start_ms=100, end_ms=200)

* **hopping** ``size, step`` (``step <= size``): windows start every ``step``;
  an event is in ``size / step`` of them (when ``step`` divides ``size``),
  listed oldest first.

      >>> hopping_windows(125, 100, 50)
      (Window(start_ms=50, end_ms=150), Window(start_ms=100, end_ms=200))

* **sliding** ``size, step``: the window "as of" time ``t`` is ``[t - size,
  t)``, for every ``t`` on the ``step`` grid. It is the hopping window that
  *ends* at ``t``; ``step`` is its resolution (``1`` = every millisecond). An
  event is in the sliding windows whose end is in ``(ts, ts + size]``:

      >>> list(sliding_window_ends(125, 100, 50))
      [150, 200]
      >>> sliding_window(200, 100)
      Window(start_ms=100, end_ms=200)

A sliding window is *closed* at ``t`` once the watermark reaches ``t``: no
event below the watermark can arrive any more, so its count is final.
:func:`last_closed_end` gives the newest closed end on the grid.
"""

from __future__ import annotations

from typing import NamedTuple


class Window(NamedTuple):
    """A half-open interval of event time, ``[start_ms, end_ms)``."""

    start_ms: int
    end_ms: int

    def __contains__(self, timestamp_ms: object) -> bool:
        return isinstance(timestamp_ms, int) and self.start_ms <= timestamp_ms < self.end_ms


def _check(size_ms: int, step_ms: int | None = None) -> None:
    if size_ms <= 0:
        raise ValueError(f"size_ms must be positive, got {size_ms}")
    if step_ms is not None and not 0 < step_ms <= size_ms:
        raise ValueError(f"step_ms must be in (0, size_ms={size_ms}], got {step_ms}")


def tumbling_window(timestamp_ms: int, size_ms: int) -> Window:
    """The one tumbling window of ``size_ms`` that contains ``timestamp_ms``.

    Works for negative times too (floor division rounds toward minus infinity).
    """
    _check(size_ms)
    start = timestamp_ms - timestamp_ms % size_ms
    return Window(start, start + size_ms)


def hopping_windows(timestamp_ms: int, size_ms: int, step_ms: int) -> tuple[Window, ...]:
    """Every hopping window (``size_ms``, starting every ``step_ms``) containing the time.

    Starts are multiples of ``step_ms``; the result is ordered by start. With
    ``step_ms == size_ms`` this is the tumbling window alone.
    """
    _check(size_ms, step_ms)
    last_start = timestamp_ms - timestamp_ms % step_ms
    first_start = ((timestamp_ms - size_ms) // step_ms + 1) * step_ms  # first start > ts - size
    return tuple(
        Window(start, start + size_ms) for start in range(first_start, last_start + 1, step_ms)
    )


def sliding_window(as_of_ms: int, size_ms: int) -> Window:
    """The sliding window "the last ``size_ms`` before ``as_of_ms``": ``[as_of - size, as_of)``."""
    _check(size_ms)
    return Window(as_of_ms - size_ms, as_of_ms)


def sliding_window_ends(timestamp_ms: int, size_ms: int, step_ms: int = 1) -> range:
    """Ends ``t`` (multiples of ``step_ms``) of the sliding windows that contain the time.

    ``[t - size, t)`` contains ``ts`` exactly when ``ts < t <= ts + size``.
    """
    _check(size_ms, step_ms)
    first = timestamp_ms + step_ms - timestamp_ms % step_ms  # smallest multiple > ts
    last = timestamp_ms + size_ms
    return range(first, last - last % step_ms + 1, step_ms)


def last_closed_end(watermark_ms: int, step_ms: int) -> int:
    """The newest window end on the ``step_ms`` grid at or below ``watermark_ms``.

    A sliding window ending there is closed: every event in it is below the
    watermark, so it can no longer change.

        >>> last_closed_end(1_234, 100)
        1200
    """
    _check(step_ms)
    return watermark_ms - watermark_ms % step_ms
