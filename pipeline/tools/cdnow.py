"""``pulse cdnow``: the CDNOW purchase log as Pulse events.

CDNOW is the public data set of the repeat-purchase literature (Fader, Hardie
and Lee's BG/NBD paper fits it): every purchase by the 23,570 people who first
bought CDs at CDNOW in the first quarter of 1997, through June 1998. It ships
inside the PyPI package ``lifetimes`` as ``lifetimes/datasets/CDNOW_master.txt``,
one purchase a line::

     customer_id  date number_of_cds  dollar_value
     00001 19970101  1   11.77

Each line becomes one ``order_completed`` track event::

    {"messageId": "cdnow-00002-19970112-2", "type": "track", "event": "Order Completed",
     "userId": "cdnow-00002", "timestamp": 1736683260000,
     "properties": {"order_id": "cdnow-00002-19970112-2", "revenue": 77.0,
                    "quantity": 5, "currency": "USD"}}

Times: the log has days only, and Pulse refuses event times before 2000
(``absurd_timestamp``), so every date moves forward :data:`SHIFT_YEARS` (28)
years: 1997-01-01 becomes 2025-01-01, on the same weekday (the Gregorian
calendar repeats every 28 years between 1901 and 2099). The k-th purchase
(k = 1, 2, ...) of a person on one day is at 12:00 + (k - 1) minutes UTC, so a
day's purchases fall into one session and keep the file's order. The same file
gives the same events, byte for byte, sorted by time then person.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

from pipeline.core.events import Event
from pipeline.errors import ConfigError

#: years added to every CDNOW date (1997 -> 2025): Pulse refuses times before 2000
SHIFT_YEARS = 28
NOON_MS = 12 * 3_600_000
MINUTE_MS = 60_000
CUSTOMERS = 23_570
PREFIX = "cdnow-"


@dataclass(frozen=True, slots=True)
class Purchase:
    """One line of the log: a person's purchase of ``cds`` CDs for ``dollars`` on ``day``."""

    customer: str
    day: date
    cds: int
    dollars: float


def default_path() -> Path:
    """``CDNOW_master.txt`` in the installed ``lifetimes`` package (not imported: it needs pandas).

    ``lifetimes`` is in the ``train`` extra: ``pip install -e '.[train]'``.
    """
    spec = importlib.util.find_spec("lifetimes")
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(
            "the CDNOW log ships inside the PyPI package lifetimes: "
            "pip install -e '.[train]' (or pass --source PATH to CDNOW_master.txt)"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / "datasets" / "CDNOW_master.txt"
    if not path.is_file():
        raise ConfigError(f"{path} is missing from the installed lifetimes package")
    return path


def read_purchases(lines: Iterable[str], source: str = "CDNOW") -> Iterator[Purchase]:
    """Parse the log's lines (whitespace-separated; a header line is skipped)."""
    for no, line in enumerate(lines, start=1):
        parts = line.split()
        if not parts or parts[0] == "customer_id":
            continue
        try:
            customer, day, cds, dollars = parts
            when = datetime.strptime(day, "%Y%m%d").replace(tzinfo=UTC).date()
            yield Purchase(customer, when, int(cds), float(dollars))
        except ValueError as exc:
            raise ConfigError(f"{source}:{no}: not 'customer date cds dollars': {line!r}") from exc


def _day_ms(day: date) -> int:
    shifted = day.replace(year=day.year + SHIFT_YEARS)
    return int(datetime(shifted.year, shifted.month, shifted.day, tzinfo=UTC).timestamp()) * 1000


def to_events(purchases: Iterable[Purchase], *, max_customers: int | None = None) -> list[Event]:
    """One ``order_completed`` per purchase, sorted by time then person (see the module doc).

    ``max_customers`` keeps the people with the lowest ids (the file's first
    ones), for a small sample.
    """
    keep: set[str] | None = None
    rows = list(purchases)
    if max_customers is not None:
        keep = set(sorted({p.customer for p in rows})[:max_customers])
    seen: dict[tuple[str, date], int] = {}
    events = []
    for p in rows:
        if keep is not None and p.customer not in keep:
            continue
        k = seen[p.customer, p.day] = seen.get((p.customer, p.day), 0) + 1
        order_id = f"{PREFIX}{p.customer}-{p.day:%Y%m%d}-{k}"
        events.append(
            Event(
                message_id=order_id,
                type="track",
                event="order_completed",
                user_id=PREFIX + p.customer,
                timestamp_ms=_day_ms(p.day) + NOON_MS + (k - 1) * MINUTE_MS,
                properties={
                    "order_id": order_id,
                    "revenue": p.dollars,
                    "quantity": p.cds,
                    "currency": "USD",
                },
            )
        )
    events.sort(key=lambda e: (e.timestamp_ms, e.person_id))
    return events


def load(path: Path | None = None, *, max_customers: int | None = None) -> list[Event]:
    """The CDNOW log at ``path`` (default: :func:`default_path`) as events."""
    source = path or default_path()
    with source.open(encoding="ascii") as handle:
        return to_events(read_purchases(handle, str(source)), max_customers=max_customers)
