"""A partition task driven record by record, with a real RocksDB store and no broker.

What goes where (applied here, forwarded, dead-lettered), identity merges, and
that the store holds only committed writes and brings the clocks back.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pipeline.contract.topics import decode_output
from pipeline.contract.wire import encode_event
from pipeline.core.events import Event
from pipeline.worker.clocks import CONTROL_HEADER, SOURCE_HEADER
from pipeline.worker.partition import MERGE_IN, MERGE_OUT, PartitionTask, Record, Topology
from pipeline.worker.partitioner import partition_for
from pipeline.worker.store import PartitionStore
from tests.unit.helpers import CHECKOUT, MIN, T0

N = 4


class ListSink:
    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes, bytes | None, dict[str, bytes], int | None]] = []

    def send(
        self,
        topic: str,
        key: bytes,
        value: bytes | None,
        headers: Any,
        partition: Any,
        *,
        clock: Any = None,
    ) -> None:
        self.sent.append((topic, key, value, dict(headers), partition))

    def on(self, topic: str) -> list[Any]:
        return [s for s in self.sent if s[0] == topic]


def key_on(partition: int, prefix: str) -> str:
    return next(
        f"{prefix}{i}"
        for i in range(10_000)
        if partition_for(f"{prefix}{i}".encode(), N) == partition
    )


def task_for(tmp_path: Path, partition: int = 0) -> tuple[PartitionTask, ListSink, PartitionStore]:
    sink = ListSink()
    store = PartitionStore(tmp_path / f"p{partition}", partition)
    task = PartitionTask(
        partition,
        N,
        store,
        Topology([CHECKOUT]),
        sink,
        allowed_lateness_ms=0,
        idle_timeout_s=1.0,
        clock=lambda: 0.0,
    )
    return task, sink, store


def rec(offset: int, event: Event, partition: int = 0) -> Record:
    key = (event.anonymous_id or event.user_id or "").encode()
    return Record(partition, offset, key, encode_event(event), [])


def event(mid: str, name: str, at_min: int, **ids: str) -> Event:
    return Event(message_id=mid, type="track", event=name, timestamp_ms=T0 + at_min * MIN, **ids)  # type: ignore[arg-type]


def test_an_event_is_applied_where_its_person_lives_or_forwarded_there(tmp_path: Path) -> None:
    task, sink, _ = task_for(tmp_path)
    here, there = key_on(0, "u"), key_on(2, "u")
    task.on_event_record(rec(0, event("m1", "checkout_started", 0, user_id=here)))
    task.on_event_record(rec(1, event("m2", "checkout_started", 1, user_id=there)))
    forwarded = sink.on("events.by-person")
    assert [(f[1], f[4]) for f in forwarded] == [(there.encode(), 2)]
    assert forwarded[0][3][SOURCE_HEADER] == b"0:1:%d" % (T0 + MIN)
    assert task.processor.store.load(here) is not None  # applied here
    assert task.processor.store.load(there) is None


def test_a_timer_fires_once_every_source_is_past_its_deadline(tmp_path: Path) -> None:
    task, sink, _ = task_for(tmp_path)
    person = key_on(0, "u")
    task.on_event_record(rec(0, event("m1", "checkout_started", 0, user_id=person)))
    task.on_event_record(rec(1, event("m2", "page_viewed", 45, user_id=person)))
    task.advance()
    assert sink.on("triggers") == []  # sources 1..3 have not said how far they got
    for source in (1, 2, 3):
        task.inputs.observe(source, T0 + 40 * MIN, False, 0.0)
    task.advance()
    triggers = [decode_output("triggers", s[2]) for s in sink.on("triggers")]
    assert [(t["rule"], t["person_id"]) for t in triggers] == [("checkout_abandoned", person)]


def test_undecodable_input_goes_to_the_dlq_with_its_bytes_and_reason(tmp_path: Path) -> None:
    task, sink, _ = task_for(tmp_path)
    task.on_event_record(Record(0, 7, b"k", b"{not json", [("origin", b"app")]))
    ((_topic, key, value, headers, _p),) = sink.on("events.dlq")
    assert (key, value) == (b"k", b"{not json")
    assert headers["pulse-dlq-reason"] == b"invalid_json"
    assert headers["origin"] == b"app"
    assert headers["pulse-dlq-source-topic"] == b"pulse.events"
    assert headers["pulse-dlq-source-offset"] == b"7"


def test_a_link_sends_the_anonymous_state_to_the_users_partition(tmp_path: Path) -> None:
    task, sink, _ = task_for(tmp_path)
    anon, user = key_on(0, "a"), key_on(3, "u")
    task.on_event_record(rec(0, event("m1", "checkout_started", 0, anonymous_id=anon)))
    assert task.processor.store.load(anon) is not None
    task.on_event_record(rec(1, event("m2", "logged_in", 1, anonymous_id=anon, user_id=user)))
    assert task.processor.store.load(anon) is None  # moved out
    merges = [s for s in sink.on("events.by-person") if s[3].get(CONTROL_HEADER) == MERGE_IN]
    assert [(m[1], m[4]) for m in merges] == [(user.encode(), 3)]
    identities = [decode_output("identities", s[2])["kind"] for s in sink.on("identities")]
    assert identities == ["link"]


def test_the_store_keeps_only_committed_writes_and_the_clocks(tmp_path: Path) -> None:
    task, _, store = task_for(tmp_path)
    person = key_on(0, "u")
    task.on_event_record(rec(0, event("m1", "checkout_started", 0, user_id=person)))
    task.save_meta()
    store.applied(41)  # the transaction committed; its changelog ended at offset 41
    task.on_event_record(rec(1, event("m2", "order_completed", 1, user_id=person)))
    store.discard()  # ... and the next one aborted
    store.close()
    again, _, store2 = task_for(tmp_path)
    assert store2.checkpoint == 41
    assert again.source.stream_time_ms == T0  # the aborted event's time is gone too
    state = again.processor.store.load(person)
    assert state is not None
    assert again.timers_restored == 1
    store2.close()


def test_a_link_keyed_by_the_user_takes_two_hops_and_holds_the_user(tmp_path: Path) -> None:
    # keyed by its user id (not Pulse's keying): the anonymous state lives on
    # another partition, so a merge-out goes there and the user waits for it
    task, sink, _ = task_for(tmp_path)
    anon, user = key_on(1, "a"), key_on(0, "u")
    linking = event("m1", "checkout_started", 0, anonymous_id=anon, user_id=user)
    task.on_event_record(Record(0, 0, user.encode(), encode_event(linking), []))
    outs = [s for s in sink.on("events.by-person") if s[3].get(CONTROL_HEADER) == MERGE_OUT]
    assert [(m[1], m[4]) for m in outs] == [(anon.encode(), 1)]
    state = task.processor.store.load(user)
    assert state is not None
    assert anon in state.get("_await", [])  # the user is held until the merge arrives


def test_a_partition_of_the_same_worker_gets_events_and_merges_handed_over(
    tmp_path: Path,
) -> None:
    # the task of the user's partition belongs to this worker and may take
    # records directly: nothing goes to the broker, and the same state results
    source, sink, _ = task_for(tmp_path, 0)
    target, target_sink, _ = task_for(tmp_path, 3)
    asked: list[tuple[int, int]] = []

    def direct(s: int, t: int) -> PartitionTask | None:
        asked.append((s, t))
        return target if t == 3 else None

    source.direct = direct
    anon, user = key_on(0, "a"), key_on(3, "u")
    source.on_event_record(rec(0, event("m1", "checkout_started", 0, anonymous_id=anon)))
    linking = event("m2", "checkout_started", 1, anonymous_id=anon, user_id=user)
    source.on_event_record(rec(1, linking))
    assert sink.on("events.by-person") == []  # the merge and the event were handed over
    assert asked == [(0, 3), (0, 3)]
    state = target.processor.store.load(user)
    assert state is not None
    assert state["_src"] == {"0": 1}  # the redelivery guard, as through the broker
    assert source.processor.store.load(anon) is None  # moved into the user
    assert target_sink.on("events.by-person") == []
