"""The duplicate window kept in the partition store: a restart remembers what replay remembers."""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.core.dedupe import Dedupe, DedupeWindow
from pipeline.worker.partition import PartitionTask, Topology
from pipeline.worker.seen import SEEN, StoredDedupe
from pipeline.worker.store import PartitionStore
from tests.unit.helpers import CHECKOUT
from tests.wiring.test_partition_task import ListSink, event, rec

# one step: offer (message id, event time), then maybe commit, then maybe crash
steps = st.lists(
    st.tuples(st.integers(0, 30), st.integers(0, 200), st.booleans(), st.booleans()),
    max_size=120,
)


@settings(max_examples=60, deadline=None)
@given(steps=steps, horizon=st.integers(1, 80), max_ids=st.integers(1, 25))
def test_a_rebuilt_window_answers_as_the_uninterrupted_one(
    steps: list[tuple[int, int, bool, bool]], horizon: int, max_ids: int
) -> None:
    window = DedupeWindow(horizon_ms=horizon, max_ids=max_ids)
    with tempfile.TemporaryDirectory() as tmp:
        store = PartitionStore(Path(tmp) / "p0", 0)
        reference = Dedupe(window)
        stored = StoredDedupe(window, store)
        snapshot = None
        committed = 0  # steps applied and committed
        i = 0
        while i < len(steps):
            mid, ts, commit, crash = steps[i]
            assert stored.offer(f"m{mid}", ts) == reference.offer(f"m{mid}", ts), i
            i += 1
            if commit:
                snapshot = stored.save()
                store.applied(None)
                committed = i
            elif crash:  # back to the last commit, as the worker does, and on from there
                store.discard()
                stored = StoredDedupe(window, store)
                stored.load(snapshot)
                reference = Dedupe(window)
                for m, t, _, _ in steps[:committed]:
                    reference.offer(f"m{m}", t)
                assert list(stored._seen.items()) == list(reference._seen.items())
                redo = [(m, t, c, False) for m, t, c, _ in steps[committed:i]]
                steps = steps[:committed] + redo + steps[i:]
                i = committed  # the uncommitted steps again, without crashing in them
        snapshot = stored.save()
        store.applied(None)
        rebuilt = StoredDedupe(window, store)
        rebuilt.load(snapshot)
        assert list(rebuilt._seen.items()) == list(reference._seen.items())
        assert rebuilt.max_time_ms == reference.max_time_ms
        # the journal keeps no record whose ids all left the window
        if rebuilt.journal:
            journaled = sum(n for _, n in rebuilt.journal)
            assert journaled - rebuilt.journal[0][1] < len(rebuilt)
        store.close()


def test_a_duplicate_after_a_restart_is_dropped_without_reading_the_broker(tmp_path: Path) -> None:
    def task(store: PartitionStore) -> PartitionTask:
        topology = Topology([CHECKOUT])
        return PartitionTask(
            0, 4, store, topology, ListSink(), allowed_lateness_ms=0, idle_timeout_s=1.0
        )

    store = PartitionStore(tmp_path / "p0", 0)
    first = task(store)
    assert not first.seen_restored  # a new store: nothing to restore, nothing to refill
    first.on_event_record(rec(0, event("m1", "checkout_started", 0, user_id="u1")))
    first.save_meta()
    store.applied(None)
    assert [k for k, _ in store.scan(SEEN)] == [(0).to_bytes(8, "big")]

    again = task(store)
    assert again.seen_restored
    assert "m1" in again.seen
    again.on_event_record(rec(1, event("m1", "checkout_started", 0, user_id="u1")))
    assert again.seen.duplicates == 1
