"""Between the API's thread and the worker loop: lookups answered between batches.

The worker loop is single-threaded and keeps person state decoded in a write
cache between commits, which nothing else may read while the loop changes it.
So the API never touches the stores: it queues a :class:`Lookup`, and the loop
answers every queued lookup (``Lookups.answer``) at the top of each turn and
between two records of a batch (a check of the queue per record), so an answer
is the state between two records, committed or about to be. The API waits for it
at most ``PULSE_API_WAIT_MS`` (then ``503``).

**While the loop waits.** In a commit the loop waits for the broker (the changelog, the
transaction), for tens of milliseconds, and changes no state a lookup reads:
the persons were encoded into the stores' write caches just before, and the
commit only sends those caches and then moves them into RocksDB (``store.get``
sees each value in the one or the other). The same holds while it waits in
``consume()`` for records (only a rebalance callback changes state there, and
it closes the window first). So around both waits the loop opens a *window*
(:meth:`Lookups.waiting`) and the API's thread answers lookups itself meanwhile
(:meth:`Lookups.try_now`), under a lock the loop takes before it goes on: no
answer is computed while the loop changes state.

**Readiness.** ``ready`` is the set of partitions whose stores are restored
and processed by this worker. The loop empties it when a rebalance starts
(revoke, lost, or an assignment that is still restoring) and sets it once the
assignment's restore is done, so the API answers ``503`` with ``Retry-After``
for them in between, never a stale or empty profile. A lookup queued just
before a rebalance is answered "not here" (``503``) after it.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import orjson

from pipeline.profiles import history
from pipeline.profiles.view import ProfileView
from pipeline.worker.partitioner import partition_for
from pipeline.worker.store import Links

log = logging.getLogger(__name__)

PERSON, TRIGGERS, PAGE = "person", "triggers", "page"


@dataclass
class Lookup:
    """A queued lookup; ``done`` is called on the loop's thread with the answer (or error)."""

    kind: str
    person_id: str
    done: Callable[[Answer | Exception], None]
    cancelled: bool = False  # the API gave up waiting


@dataclass(frozen=True)
class Answer:
    """``found`` (``raw``: its JSON), ``merged`` (into ``user``), ``unknown`` or ``moved``.

    The JSON is encoded on the loop's thread, before the state can change.
    """

    status: str
    raw: bytes = b""
    user: str = ""


class Lookups:
    """Shared by the API thread (:meth:`ask`) and the worker loop (everything else)."""

    def __init__(
        self,
        view: ProfileView,
        partitions: int,
        history_size: int,
        on_ready: Callable[[frozenset[int]], None] | None = None,
    ) -> None:
        self.view = view
        self.partitions = partitions
        self.history_size = history_size
        self.queue: deque[Lookup] = deque()  # append/popleft are atomic
        self.ready: frozenset[int] = frozenset()
        self.on_ready = on_ready
        #: the tasks the API's thread may read (a commit is waiting for the broker), else None
        self.window: Mapping[int, Any] | None = None
        self.lock = threading.Lock()

    # -- the API's side ---------------------------------------------------------------

    def partition_of(self, person_id: str) -> int:
        return partition_for(person_id.encode(), self.partitions)

    def try_now(self, kind: str, person_id: str) -> Answer | None:
        """The answer, computed on the caller's thread if a commit window is open, else None."""
        if self.window is None:
            return None
        return self._in_window(kind, person_id)

    def _in_window(self, kind: str, person_id: str) -> Answer | None:
        with self.lock:
            tasks = self.window  # read again under the lock: the loop may have closed it
            if tasks is None:
                return None
            return self._answer(Lookup(kind, person_id, _ignore), tasks)

    def ask(self, kind: str, person_id: str, done: Callable[[Answer | Exception], None]) -> Lookup:
        lookup = Lookup(kind, person_id, done)
        self.queue.append(lookup)
        return lookup

    # -- the loop's side (hooks in pipeline/worker/loop.py) -----------------------------

    def attach(self, tasks: Mapping[int, Any]) -> None:
        """New partition tasks: their outputs go to the history too."""
        for task in tasks.values():
            task.history = history.History(task.store, self.history_size)

    def unready(self) -> None:
        self._close_window()  # a rebalance callback is about to change the tasks
        self.ready = frozenset()

    def assigned(self, partitions: list[int]) -> None:
        self.ready = frozenset(partitions)
        if self.on_ready is not None:
            self.on_ready(self.ready)

    def revoked(self) -> None:
        self._close_window()
        self.ready = frozenset()
        if self.on_ready is not None:
            self.on_ready(self.ready)

    @contextmanager
    def waiting(self, tasks: Mapping[int, Any]) -> Iterator[None]:
        """Around a wait of the loop: the API's thread may answer lookups meanwhile.

        The loop waits in ``consume()`` (where only a rebalance callback changes
        anything: :meth:`unready` and :meth:`revoked` close the window first) and
        in a commit.
        """
        if self.queue:
            self.answer(tasks)  # what is queued already
        self.window = tasks
        try:
            yield
        finally:
            self._close_window()

    def _close_window(self) -> None:
        self.window = None
        with self.lock:  # an answer being computed has finished: the loop may go on
            pass

    def answer(self, tasks: Mapping[int, Any]) -> None:
        """Answer every queued lookup (the loop calls this once a turn)."""
        queue = self.queue
        while queue:
            lookup = queue.popleft()
            if lookup.cancelled:
                continue
            try:
                answer: Answer | Exception = self._answer(lookup, tasks)
            except Exception as exc:
                log.exception("profile lookup of a person failed")
                answer = exc
            lookup.done(answer)

    def _answer(self, lookup: Lookup, tasks: Mapping[int, Any]) -> Answer:
        p = self.partition_of(lookup.person_id)
        task = tasks.get(p)
        if task is None or p not in self.ready:
            return Answer("moved")
        person = lookup.person_id
        state = task.persons.peek(person)
        past = history.read(task.store, person)
        if state is None:
            user = Links(task.store).get(person)  # the source partition's identity links
            if user is not None:
                return Answer("merged", user=user)
            if lookup.kind == PERSON or not past["t"]:
                return Answer("unknown")
        body: dict[str, Any] = {}
        if lookup.kind in (PERSON, PAGE) and state is not None:
            body = self.view.profile(person, state, task.processor.watermark_ms)
            entered = past["s"]
            body["segments"] = [
                {"segment": s, "entered_ms": entered.get(s)} for s in body["segments"]
            ]
            body["partition"] = p
        if lookup.kind in (TRIGGERS, PAGE):
            body["person_id"] = person
            body["recent_triggers"] = history.entries(past)
        return Answer("found", orjson.dumps(body, option=orjson.OPT_NON_STR_KEYS))


def _ignore(_answer: Answer | Exception) -> None:
    """A lookup answered on the caller's thread needs no callback."""
