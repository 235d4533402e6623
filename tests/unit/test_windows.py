"""Window assignment from one table: tumbling, hopping, sliding; half-open everywhere."""

from __future__ import annotations

from typing import Any

import pytest

from pipeline.core.windows import (
    Window,
    hopping_windows,
    last_closed_end,
    sliding_window,
    sliding_window_ends,
    tumbling_window,
)

W = Window


def assign(kind: str, ts: int, size: int, step: int) -> Any:
    if kind == "tumbling":
        return [tumbling_window(ts, size)]
    if kind == "hopping":
        return list(hopping_windows(ts, size, step))
    return [sliding_window(end, size) for end in sliding_window_ends(ts, size, step)]


TABLE = [
    # kind       ts    size step  windows containing ts
    ("tumbling", 0, 100, 100, [W(0, 100)]),
    ("tumbling", 99, 100, 100, [W(0, 100)]),
    ("tumbling", 100, 100, 100, [W(100, 200)]),  # half-open: the end belongs to the next
    ("tumbling", -1, 100, 100, [W(-100, 0)]),
    ("hopping", 125, 100, 50, [W(50, 150), W(100, 200)]),
    ("hopping", 100, 100, 50, [W(50, 150), W(100, 200)]),
    ("hopping", 149, 100, 50, [W(50, 150), W(100, 200)]),
    ("hopping", 150, 100, 50, [W(100, 200), W(150, 250)]),
    ("hopping", 5, 30, 10, [W(-20, 10), W(-10, 20), W(0, 30)]),
    ("hopping", 7, 10, 4, [W(0, 10), W(4, 14)]),  # step does not divide size
    ("hopping", 130, 100, 100, [W(100, 200)]),  # step == size is tumbling
    ("sliding", 125, 100, 50, [W(50, 150), W(100, 200)]),
    ("sliding", 100, 100, 50, [W(50, 150), W(100, 200)]),  # ends in (100, 200]
    ("sliding", 5, 3, 1, [W(3, 6), W(4, 7), W(5, 8)]),
    ("sliding", 0, 60_000, 60_000, [W(0, 60_000)]),
]


@pytest.mark.parametrize(("kind", "ts", "size", "step", "expected"), TABLE)
def test_window_assignment(
    kind: str, ts: int, size: int, step: int, expected: list[Window]
) -> None:
    windows = assign(kind, ts, size, step)
    assert windows == expected
    assert all(ts in w for w in windows)  # every window assigned really contains ts
    assert all(w.end_ms - w.start_ms == size for w in windows)
    # no window on the grid that contains ts is missing
    grid = range(ts - 2 * size - ts % step, ts + 2 * size, step)
    starts = {s for s in grid if s <= ts < s + size} if kind == "hopping" else None
    if starts is not None:
        assert {w.start_ms for w in windows} == starts


@pytest.mark.parametrize(
    ("watermark", "step", "expected"), [(1_234, 100, 1_200), (1_200, 100, 1_200), (-1, 100, -100)]
)
def test_last_closed_end(watermark: int, step: int, expected: int) -> None:
    assert last_closed_end(watermark, step) == expected


@pytest.mark.parametrize(
    "call",
    [
        lambda: tumbling_window(1, 0),
        lambda: hopping_windows(1, 10, 0),
        lambda: hopping_windows(1, 10, 11),
        lambda: sliding_window(1, -5),
        lambda: sliding_window_ends(1, 10, 20),
    ],
)
def test_bad_sizes_are_rejected(call: Any) -> None:
    with pytest.raises(ValueError, match="must be"):
        call()
