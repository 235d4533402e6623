"""The Faust agents in test context (memory store, no broker): the adapters call
the core, persist state in the table and send what it returns."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from faust.types import TP

from pipeline.config import Settings
from pipeline.core.events import Event
from pipeline.records import decode_state
from pipeline.topology import default_operators
from pipeline.wire import encode_event
from pipeline.worker import app as app_module
from pipeline.worker.app import SOURCE_HEADER, PulseWorker
from pipeline.worker.clocks import (
    CONTROL_HEADER,
    WATERMARK,
    SourceClock,
    parse_watermark,
    processed_all,
    watermark_record,
)
from pipeline.worker.offsets import Record

pytestmark = pytest.mark.wiring

MIN = 60_000
T0 = 1_790_000_000_000


@pytest.fixture
def worker(tmp_path: Path) -> PulseWorker:
    settings = Settings(home=tmp_path, allowed_lateness_ms=0, idle_advance_ms=0)
    w = PulseWorker(settings, default_operators(), partitions=1, store_url="memory://")
    w.app.finalize()
    w.app.conf.store = "memory://"
    w.app.flow_control.resume()
    return w


@pytest.fixture
def emitted(worker: PulseWorker, monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """What the behavior agent emits, captured instead of sent."""
    captured: list[Any] = []

    async def capture(outputs: list[Any]) -> None:
        captured.extend(outputs)

    monkeypatch.setattr(worker, "_emit", capture)
    return captured


async def settled(worker: PulseWorker) -> None:
    """Let the agent process the batch it is gathering (``PULSE_BATCH_WAIT_MS``)."""
    await asyncio.sleep(5 * worker.settings.batch_wait_ms / 1000 + 0.02)


class Sent:
    def __init__(self) -> None:
        self.records: list[tuple[Any, Any, Any]] = []

    async def __call__(self, *, key: Any = None, value: Any = None, **kw: Any) -> None:
        self.records.append((key, value, kw.get("headers")))


def ev(mid: str, name: str, at_min: int, person: str) -> Event:
    return Event(
        message_id=mid, type="track", event=name, user_id=person, timestamp_ms=T0 + at_min * MIN
    )


async def test_ingest_rekeys_by_person_and_dead_letters_bad_input(
    worker: PulseWorker, monkeypatch: pytest.MonkeyPatch
) -> None:
    by_person, dlq = Sent(), Sent()
    monkeypatch.setattr(worker.by_person, "send", by_person)
    monkeypatch.setattr(worker.dlq, "send", dlq)
    agent = worker.app.agents["ingest"]
    async with agent.test_context() as ctx:
        await ctx.put(key=b"anon-1", value=encode_event(ev("m1", "checkout_started", 0, "u1")))
        await ctx.put(key=b"k", value=b"\x07garbage")
    data = [(key, dict(headers)) for key, _, headers in by_person.records]
    data = [(key, h) for key, h in data if CONTROL_HEADER not in h]
    # re-keyed by person, naming the source record (behavior skips a redelivery by it)
    assert data == [(b"u1", {SOURCE_HEADER: b"0:0"})]
    # ...followed by the source partition's stream time for every by-person partition
    ((_, value, headers),) = [r for r in by_person.records if (CONTROL_HEADER, WATERMARK) in r[2]]
    assert headers == [(CONTROL_HEADER, WATERMARK)]
    assert parse_watermark(value) == (0, T0)
    ((key, value, headers),) = dlq.records
    assert (key, value) == (b"k", b"\x07garbage")
    assert dict(headers)["pulse-dlq-reason"] == b"bad_framing"


async def test_behavior_fires_on_watermark_and_keeps_state_in_table(
    worker: PulseWorker, emitted: list[Any]
) -> None:
    agent = worker.app.agents["behavior"]
    wm = [(CONTROL_HEADER, WATERMARK)]
    async with agent.test_context() as ctx:
        await ctx.put(key=b"u1", value=encode_event(ev("c1", "checkout_started", 0, "u1")))
        await ctx.put(key=b"", value=watermark_record(0, T0), headers=wm)
        await ctx.put(key=b"u2", value=encode_event(ev("p1", "page_viewed", 31, "u2")))
        await settled(worker)
        assert emitted == []  # data records do not move time: the source watermarks do
        assert worker.state.get(b"u1") is not None  # the pending timer is persisted state
        await ctx.put(key=b"", value=watermark_record(0, T0 + 31 * MIN), headers=wm)
    triggers = [(o.topic, o.record["person_id"]) for o in emitted if o.topic == "triggers"]
    assert triggers == [("triggers", "u1")]
    assert ("sessions", "u1") in [(o.topic, o.key) for o in emitted]  # u1's session closed too


class FakeConsumer:
    """Faust's consumer as the worker's offset checks use it.

    ``bounds`` stands for the broker's answer on a partition's earliest offset and
    high watermark (``PulseWorker._bounds``, see the fixture below).
    """

    def __init__(self, highwater: int, earliest: int = 0, committed: int | None = None) -> None:
        self.high = highwater
        self.earliest = earliest
        self._committed_offset: dict[Any, int] = {} if committed is None else {TP_EVENTS: committed}
        self.seeks: list[tuple[Any, int]] = []
        self.resumed: list[Any] = []

    async def bounds(self, tp: Any) -> tuple[int, int]:
        return self.earliest, self.high

    def resume_partitions(self, tps: set[Any]) -> None:
        self.resumed.extend(tps)

    async def seek_wait(self, partitions: dict[Any, int]) -> None:
        self.seeks.extend(partitions.items())


@pytest.fixture(autouse=True)
def bounds_from_the_consumer(monkeypatch: pytest.MonkeyPatch) -> None:
    """The broker's answer on a partition's bounds: the fake consumer's numbers."""

    async def bounds(self: PulseWorker, tp: TP) -> tuple[int, int]:
        return await self.app.consumer.bounds(tp)  # type: ignore[no-any-return]

    monkeypatch.setattr(PulseWorker, "_bounds", bounds)


TP_EVENTS = TP("pulse.events", 0)


async def test_a_source_is_empty_only_once_ingest_processed_its_records(
    worker: PulseWorker, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Reporting a source partition empty while its fetched records still wait for
    # ingest lets time run ahead on the others, and those records arrive late
    # (the restart test lost a browse_abandoned that way in CI).
    # the consumer fetched all of the partition's records before ingest processed any
    consumer = FakeConsumer(highwater=5, committed=2)
    monkeypatch.setattr(type(worker.app), "consumer", consumer)

    async def caught_up() -> bool:
        worker.sources[0].next_check = 0.0  # the 1 s rate limit, not under test here
        return await worker._caught_up(TP_EVENTS)

    worker.sources[0] = SourceClock()
    assert not await caught_up()  # 3 records fetched, none processed
    worker.sources[0].next_offset = 4
    assert not await caught_up()
    worker.sources[0].next_offset = 5
    assert await caught_up()
    # after a restart with everything already committed, nothing is left to read
    # (each case is a new assignment: the start offset is asked once per assignment)
    worker.sources[0] = SourceClock()
    worker._starts.clear()
    consumer._committed_offset = {TP_EVENTS: 5}
    assert await caught_up()
    # a new group (nothing committed) starts at the earliest
    worker._starts.clear()
    consumer._committed_offset = {}
    assert not await caught_up()
    # ... which retention may have moved to the end: nothing to read either
    worker._starts.clear()
    consumer.earliest = 5
    assert await caught_up()
    consumer.earliest = 0
    worker._starts.clear()
    # asked at most once a second
    worker.sources[0] = SourceClock(next_offset=0)
    assert not await worker._caught_up(TP_EVENTS)
    worker.sources[0].next_offset = 5
    assert not await worker._caught_up(TP_EVENTS)


def test_processed_all_counts_processed_records_not_fetched_ones() -> None:
    assert processed_all(None, 0, 0)  # an empty partition
    assert not processed_all(None, 0, 3)  # a new group reads from the earliest
    assert processed_all(None, 7, 7)  # restarted with everything committed
    assert not processed_all(None, 5, 7)
    assert not processed_all(6, 5, 7)
    assert processed_all(7, 5, 7)


async def test_behavior_skips_a_record_it_already_applied(
    worker: PulseWorker, emitted: list[Any]
) -> None:
    agent = worker.app.agents["behavior"]
    wm = [(CONTROL_HEADER, WATERMARK)]
    src = [(SOURCE_HEADER, b"0:7")]
    started = encode_event(ev("c1", "checkout_started", 0, "u1"))
    async with agent.test_context() as ctx:
        await ctx.put(key=b"u1", value=started, headers=src)
        await ctx.put(key=b"", value=watermark_record(0, T0 + 10 * MIN), headers=wm)
        # Faust's recovery seek (or ingest forwarding it again) brings it back
        await ctx.put(key=b"u1", value=started, headers=src)
        await ctx.put(key=b"", value=watermark_record(0, T0 + 31 * MIN), headers=wm)
    assert [o.topic for o in emitted if o.topic == "events.late"] == []
    triggers = [o.record["event_ids"] for o in emitted if o.topic == "triggers"]
    assert triggers == [["c1"]]
    assert worker.runtimes[0].processor.redelivered_count == 1


async def test_ingest_reads_records_the_consumer_skipped_from_the_broker(
    worker: PulseWorker, monkeypatch: pytest.MonkeyPatch
) -> None:
    by_person = Sent()
    monkeypatch.setattr(worker.by_person, "send", by_person)
    events = [encode_event(ev(f"m{i}", "page_viewed", i, "u1")) for i in range(6)]
    reads: list[tuple[int, int]] = []

    def broker(_servers: str, topic: str, partition: int, start: int, end: int) -> list[Record]:
        reads.append((start, end))
        return [Record(topic, partition, o, b"d", events[o], []) for o in range(start, end)]

    monkeypatch.setattr(app_module, "read_range", broker)
    agent = worker.app.agents["ingest"]
    async with agent.test_context() as ctx:
        for i in (0, 1):
            await ctx.put(key=b"d", value=events[i])
        ctx.sent_offset = 4  # offsets 2 and 3 never reach the agent ...
        await ctx.put(key=b"d", value=events[4])
        await ctx.put(key=b"d", value=events[5])
        ctx.sent_offset = 2  # a seek back delivers them again: dropped
        for i in (2, 3):
            await ctx.put(key=b"d", value=events[i])
        await asyncio.sleep(0.1)  # put() returns when the agent took the value, not when done
    assert reads == [(2, 4)]  # ... so it read them from the broker first
    sources = [dict(h).get(SOURCE_HEADER) for _k, _v, h in by_person.records]
    assert [x for x in sources if x] == [b"0:%d" % i for i in range(6)]  # each once, in order


@pytest.fixture
def broker_has(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """Whether the partition holds records past the expected offset (not only markers)."""
    holds = [True]

    def look(_servers: str, topic: str, partition: int, start: int, end: int, **_kw: Any) -> list:  # type: ignore[type-arg]
        return [Record(topic, partition, start, None, b"x", [])] if holds[0] else []

    monkeypatch.setattr(app_module, "read_range", look)
    return holds


def only_partition(
    worker: PulseWorker, monkeypatch: pytest.MonkeyPatch, consumer: Any, partition: int = 0
) -> TP:
    """The worker owns one ``pulse.events`` partition, read through ``consumer``."""
    tp = TP(worker.settings.topic("events"), partition)
    monkeypatch.setattr(type(worker.app), "consumer", consumer)
    monkeypatch.setattr(worker.app.assignor, "assigned_actives", lambda: {tp})
    return tp


async def test_a_hole_at_the_end_of_a_quiet_partition_is_sought_back(
    worker: PulseWorker, monkeypatch: pytest.MonkeyPatch, broker_has: list[bool]
) -> None:
    consumer = FakeConsumer(highwater=5)
    tp = only_partition(worker, monkeypatch, consumer)
    worker.events_guard.expected[0] = 1  # offset 0 processed, 1-4 never delivered
    worker._delivered[tp.topic] = time.monotonic()
    await worker._check_tails()
    assert consumer.seeks == []  # the agent had a record lately: nothing to say yet
    worker._delivered[tp.topic] = time.monotonic() - 10
    await worker._check_tails()
    await worker._check_tails()
    assert consumer.seeks == [(tp, 1)]  # not again at once
    assert consumer.resumed == [tp]  # and back in Faust's fetch set
    worker._tail_sought[tp] = (1, 0.0)  # TAIL_RETRY_S later, still stuck: again
    await worker._check_tails()
    assert consumer.seeks == [(tp, 1), (tp, 1)]
    worker.events_guard.expected[0] = 5  # all delivered now
    await worker._check_tails()
    assert consumer.seeks == [(tp, 1), (tp, 1)]


async def test_a_tail_of_transaction_markers_is_not_sought(
    worker: PulseWorker, monkeypatch: pytest.MonkeyPatch, broker_has: list[bool]
) -> None:
    consumer = FakeConsumer(highwater=5)
    tp = only_partition(worker, monkeypatch, consumer)
    broker_has[0] = False  # offsets 1-4 hold no record: markers, or compacted
    worker.events_guard.expected[0] = 1
    worker._delivered[tp.topic] = time.monotonic() - 10
    await worker._check_tails()
    await worker._check_tails()
    assert consumer.seeks == []


async def test_a_partition_that_delivered_nothing_is_sought_to_its_start(
    worker: PulseWorker, monkeypatch: pytest.MonkeyPatch, broker_has: list[bool]
) -> None:
    # faust-streaming can drop the first records of a partition the group never
    # committed, and its seek to the committed offset does not bring them back
    # (the 2-worker benchmark stalled with 5,150 records never read)
    consumer = FakeConsumer(highwater=5150, earliest=3)
    tp = only_partition(worker, monkeypatch, consumer, 1)
    await worker._on_assigned(worker.app, {tp})
    await worker._check_tails()
    assert consumer.seeks == []  # just assigned: records may be on their way
    worker._delivered[tp.topic] = time.monotonic() - 10
    await worker._check_tails()
    assert consumer.seeks == [(tp, 3)]  # nothing committed: the earliest offset
    # committed: from there
    await worker._on_revoked(worker.app, {tp})
    consumer._committed_offset = {tp: 40}
    consumer.seeks.clear()
    await worker._on_assigned(worker.app, {tp})
    worker._delivered[tp.topic] = time.monotonic() - 10
    await worker._check_tails()
    assert consumer.seeks == [(tp, 40)]
    # an empty partition (start == high watermark): nothing to seek
    await worker._on_revoked(worker.app, {tp})
    consumer._committed_offset = {tp: 5150}
    consumer.seeks.clear()
    worker._delivered[tp.topic] = time.monotonic() - 10
    await worker._check_tails()
    assert consumer.seeks == []


def rebalance(worker: PulseWorker, tp: TP) -> None:
    # a rebalance meanwhile may have revoked the partition, and seeking it then
    # crashed the worker (IllegalStateError)
    worker.app.consumer_generation_id += 1


def delivery(worker: PulseWorker, tp: TP) -> None:
    # a seek while records are being delivered races with them
    worker.events_guard.expected[0] = 3  # the agent got offsets 1 and 2
    worker._delivered[tp.topic] = time.monotonic()


@pytest.mark.parametrize("meanwhile", [rebalance, delivery])
async def test_what_happens_while_the_tail_check_asks_the_broker_cancels_its_seek(
    worker: PulseWorker,
    monkeypatch: pytest.MonkeyPatch,
    broker_has: list[bool],
    meanwhile: Callable[[PulseWorker, TP], None],
) -> None:
    # the check awaits the broker: only a partition still assigned, still quiet and
    # still expecting the same offset once it answered is sought
    consumer = FakeConsumer(highwater=5)
    tp = only_partition(worker, monkeypatch, consumer)

    async def bounds_while(_tp: Any) -> tuple[int, int]:
        meanwhile(worker, tp)
        return 0, 5

    consumer.bounds = bounds_while  # type: ignore[method-assign]
    worker.events_guard.expected[0] = 1
    worker._delivered[tp.topic] = time.monotonic() - 10
    await worker._check_tails()
    assert consumer.seeks == []


async def test_a_start_offset_asked_across_a_rebalance_is_not_kept(
    worker: PulseWorker, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the earliest offset asked in one generation, answered in the next, must not
    # stand for the new assignment (whose committed offset Faust reads later):
    # the 2-worker benchmark re-read 10,310 committed records that way
    consumer = FakeConsumer(highwater=5)
    app = worker.app

    async def bounds_while_rebalancing(_tp: Any) -> tuple[int, int]:
        app.consumer_generation_id += 1
        return 0, 5

    consumer.bounds = bounds_while_rebalancing  # type: ignore[method-assign]
    monkeypatch.setattr(type(app), "consumer", consumer)
    assert await worker._start_offset(TP_EVENTS) is None
    assert worker._starts == {}
    consumer._committed_offset = {TP_EVENTS: 4}  # Faust's seek at the end of the rebalance
    assert await worker._start_offset(TP_EVENTS) == 4
    app.rebalancing = True  # the next rebalance: nothing known until it ends
    app.consumer_generation_id += 1
    assert await worker._start_offset(TP_EVENTS) is None


async def test_a_batch_writes_each_persons_state_once_to_its_own_partition(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = Settings(home=tmp_path, allowed_lateness_ms=0, idle_advance_ms=0)
    w = PulseWorker(settings, default_operators(), partitions=2, store_url="memory://")
    w.app.finalize()
    w.app.conf.store = "memory://"
    w.app.flow_control.resume()
    dlq = Sent()
    monkeypatch.setattr(w.dlq, "send", dlq)
    changelog: list[tuple[int, bytes, Any]] = []

    def send_changelog(partition: int, key: bytes, value: Any, *_a: Any, **_kw: Any) -> Any:
        changelog.append((partition, key, value))
        return SimpleNamespace(message=SimpleNamespace(partition=partition))

    monkeypatch.setattr(w.state, "send_changelog", send_changelog)
    batches: list[int] = []
    take = w._batches

    async def counted(stream: Any) -> Any:
        async for batch in take(stream):
            batches.append(len(batch))
            yield batch

    monkeypatch.setattr(w, "_batches", counted)
    agent = w.app.agents["behavior"]
    records = [("u1", 0, 0), ("u2", 1, 0), ("u3", 0, 1), ("u1", 0, 2)]  # person, partition, offset
    async with agent.test_context() as ctx:
        for i, (person, partition, offset) in enumerate(records):
            ctx.sent_offset = offset
            value = encode_event(ev(f"m{i}", "page_viewed", i, person))
            await ctx.put(key=person.encode(), value=value, partition=partition, wait=False)
        await settled(w)
    assert batches == [4]  # one batch held records of both partitions ...
    assert dlq.records == []
    # ... each person's state went once to the changelog partition of its records
    assert sorted((p, k) for p, k, _v in changelog) == [(0, b"u1"), (0, b"u3"), (1, b"u2")]
    # and u1's one write holds both of its page views
    (u1,) = [decode_state(v) for _p, k, v in changelog if k == b"u1"]
    assert [s["n"] for s in u1["behavior"]["o"]] == [{"page_viewed": 2}]


def test_the_producer_lingers_as_configured(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path, linger_ms=1)
    w = PulseWorker(settings, default_operators(), partitions=1, store_url="memory://")
    assert w.app.conf.producer_linger == 0.001


async def test_saves_kept_before_a_rebalance_in_mid_batch_are_still_written(
    worker: PulseWorker, monkeypatch: pytest.MonkeyPatch
) -> None:
    written: list[bytes] = []

    def send_changelog(partition: int, key: bytes, value: Any, *_a: Any, **_kw: Any) -> Any:
        written.append(key)
        return SimpleNamespace(message=SimpleNamespace(partition=partition))

    monkeypatch.setattr(worker.state, "send_changelog", send_changelog)
    behave_one = worker._behave_one

    async def then_revoked(record: Any) -> None:
        await behave_one(record)
        if record.offset == 0:  # a rebalance while the batch is processed
            await worker._on_revoked(worker.app, {TP(record.topic, record.partition)})

    monkeypatch.setattr(worker, "_behave_one", then_revoked)
    agent = worker.app.agents["behavior"]
    async with agent.test_context() as ctx:
        for i, person in enumerate(["u1", "u2"]):
            value = encode_event(ev(f"m{i}", "page_viewed", i, person))
            await ctx.put(key=person.encode(), value=value, wait=False)
        await settled(worker)
    assert sorted(written) == [b"u1", b"u2"]  # u1 was kept by the runtime the rebalance dropped
