"""The delivery book: order per person, retries that survive a restart, and what may commit."""

from __future__ import annotations

from pipeline.deliver.book import Book
from pipeline.deliver.config import Batch, Destination, Retry
from pipeline.deliver.entries import Read, Write
from pipeline.deliver.policy import Judgement, Verdict
from pipeline.deliver.records import marker_headers, retry_headers, retry_meta

T0 = 1_700_000_000_000
OK = Judgement(Verdict.DELIVERED)
FAIL = Judgement(Verdict.RETRY)


def dest(order: str = "per_person", schedule=(0, 5_000, 60_000)) -> Destination:
    return Destination("crm", "http://x", order=order, batch=Batch(10, 0),
                       retry=Retry(tuple(schedule), 10**9))  # fmt: skip


def rec(offset: int, person: str = "p1", partition: int = 0, headers=None) -> Read:
    act = {"activation_id": f"a{offset}", "person_id": person}
    return Read(partition, offset, person.encode(), b"v%d" % offset, headers or [], act, T0)


def ids(entries) -> list[int]:
    return [e.origin for e in entries]


def drain(book: Book, now: int = T0, error: str | None = None) -> list[Write]:
    """Acknowledge every write the book asked for, as the broker would."""
    writes, book.outbox = book.outbox, []
    for w in writes:
        book.written(w, error, now)
    return writes


def ready_book(order: str = "per_person", **kw) -> Book:
    book = Book(dest(order, **kw))
    book.set_caught_up(0, T0)
    return book


def test_one_person_in_order_one_request_at_a_time():
    book = ready_book()
    for off in (0, 1, 2):
        book.add_main(rec(off), T0)
    book.add_main(rec(3, "p2"), T0)
    assert ids(book.take(T0, 1)) == [0]
    assert ids(book.take(T0, 1)) == [3]  # p1 is busy; p2 goes
    assert book.take(T0, 10) == []
    assert book.positions()[("main", 0)] == 0


def test_a_batch_takes_a_persons_queue_in_order():
    book = ready_book()
    for off in (0, 1, 2):
        book.add_main(rec(off), T0)
    batch = book.take(T0, 10)
    assert ids(batch) == [0, 1, 2]
    book.finish(batch, OK, T0, 200, "")
    assert book.positions()[("main", 0)] == 3
    assert book.pending == 0


def test_a_failure_goes_to_the_retry_topic_and_releases_the_input_offset():
    book = ready_book()
    book.add_main(rec(0), T0)
    book.add_main(rec(1), T0)
    (a,) = book.take(T0, 1)
    book.finish([a], FAIL, T0, 500, "HTTP 500")
    assert a.attempts == 1
    assert a.due_ms == T0 + 5_000
    writes = drain(book)
    # the head's retry, then its follower parked behind it, both off the input partition
    assert [(w.kind, w.entry.origin) for w in writes] == [("retry", 0), ("retry", 1)]
    assert book.positions()[("main", 0)] == 2
    assert book.take(T0 + 4_999, 10) == []  # b waits behind a: one person, in order
    assert book.next_due_ms() == T0 + 5_000
    assert ids(book.take(T0 + 5_000, 10)) == [0, 1]


def test_a_retry_does_not_hold_back_other_people():
    book = ready_book()
    book.add_main(rec(0, "p1"), T0)
    book.add_main(rec(1, "p2"), T0)
    book.finish(book.take(T0, 1), FAIL, T0, 503, "")
    drain(book)
    assert ids(book.take(T0, 10)) == [1]


def test_unordered_never_waits_for_a_retry():
    book = ready_book("unordered")
    book.add_main(rec(0), T0)
    book.add_main(rec(1), T0)
    (a,) = book.take(T0, 1)
    book.finish([a], FAIL, T0, 500, "")
    assert [w.entry.origin for w in drain(book)] == [0]  # nothing parked
    assert ids(book.take(T0, 10)) == [1]


def test_schedule_exhausted_goes_to_the_dead_letter_then_commits():
    book = ready_book(schedule=(0, 1000))
    book.add_main(rec(0), T0)
    book.finish(book.take(T0, 1), FAIL, T0, 500, "HTTP 500")
    drain(book)
    (a,) = book.take(T0 + 1000, 1)
    book.finish([a], FAIL, T0 + 1000, 500, "HTTP 500")
    (dlq,) = [w for w in book.outbox if w.kind == "dlq"]
    assert dlq.reason == "attempts_exhausted"
    assert a.attempts == 2
    assert book.positions()[("main", 0)] == 1  # released when the retry record was written
    drain(book)
    assert book.pending == 0
    assert a.state == "done"


def test_rejected_and_undecodable_go_straight_to_the_dead_letter():
    book = ready_book()
    book.add_main(rec(0), T0)
    book.add_main(Read(0, 1, b"p9", b"junk", [], None, 0), T0)
    book.finish(book.take(T0, 1), Judgement(Verdict.REJECTED), T0, 400, "HTTP 400: bad")
    assert sorted((w.entry.origin, w.reason) for w in book.outbox) == [
        (0, "rejected"), (1, "undecodable")]  # fmt: skip
    assert book.positions()[("main", 0)] == 0  # not until the broker has them
    drain(book)
    assert book.positions()[("main", 0)] == 2


def test_gone_parks_until_enabled():
    book = ready_book()
    book.add_main(rec(0), T0)
    book.add_main(rec(1, "p2"), T0)
    batch = book.take(T0, 1)
    book.finish(batch, Judgement(Verdict.GONE), T0, 410, "HTTP 410")
    assert book.disabled
    assert book.outbox == []
    assert batch[0].attempts == 0
    assert book.positions()[("main", 0)] == 0  # parked: never committed past
    book.enable(T0)
    assert ids(book.take(T0, 10)) == [0, 1]


def test_retry_after_pauses_the_destination():
    book = ready_book()
    book.add_main(rec(0), T0)
    book.finish(book.take(T0, 1), Judgement(Verdict.RETRY, 30_000), T0, 429, "")
    assert book.not_before_ms == T0 + 30_000
    assert book.outbox[0].entry.due_ms == T0 + 30_000


def test_nothing_is_sent_before_the_retry_partition_is_read_to_its_end():
    book = Book(dest())
    book.add_main(rec(0), T0)
    assert book.take(T0, 10) == []
    book.set_caught_up(0, T0)
    assert ids(book.take(T0, 10)) == [0]


def retry_record(book_entry, offset: int, gen: int) -> tuple[Read, dict[str, int]]:
    headers = retry_headers(book_entry, gen)
    return (Read(0, offset, book_entry.key, book_entry.value, headers,
                 book_entry.activation, T0), retry_meta(headers))  # fmt: skip


def test_restart_rebuilds_retries_and_skips_what_was_done():
    """A first life fails a and b, delivers b on its retry; a second life reads it all back."""
    first = ready_book()
    for off in (0, 1, 2):
        first.add_main(rec(off, f"p{off}"), T0)
    first.finish(first.take(T0, 2), FAIL, T0, 500, "HTTP 500")
    retry_log = []
    for offset, w in enumerate(drain(first)):
        retry_log.append(retry_record(w.entry, offset, w.gen))
    # the first life reads its retry records back, then delivers b's retry
    for read, meta in retry_log:
        first.add_retry(read, meta, T0)
    b = first.origins[(0, 1)]
    first.finish([b], FAIL, T0, 500, "")
    retry_log.append(retry_record(b, 2, b.gen))  # b's second generation
    first.add_retry(*retry_log[-1], T0)
    first.take(T0 + 60_000, 10)  # a (gen 1, due +5 s) and b (gen 2, due +60 s)
    first.finish([b], OK, T0 + 60_000, 200, "")
    (marker,) = [w for w in first.outbox if w.kind == "marker"]
    headers = marker_headers(marker.entry, marker.gen)
    retry_log.append((Read(0, 3, b"p1", b"", headers, None, 0), retry_meta(headers)))
    # commit positions of the first life: c (offset 2) was never sent; the retry topic's
    # first record (a's) is still needed
    assert first.positions()[("main", 0)] == 2
    assert first.positions()[("retry", 0)] == 0

    second = Book(dest())
    for off in (2,):  # what the input partition still holds past its commit
        second.add_main(rec(off, f"p{off}"), T0)
    for read, meta in retry_log:
        second.add_retry(read, meta, T0)
    second.set_caught_up(0, T0)
    assert sorted(second.origins) == [(0, 0), (0, 2)]  # b was done: its marker says so
    a = second.origins[(0, 0)]
    assert (a.attempts, a.due_ms) == (1, T0 + 5_000)
    assert ids(second.take(T0, 10)) == [2]
    assert ids(second.take(T0 + 5_000, 10)) == [0]
    assert second.positions()[("retry", 0)] == 0


def test_an_input_record_already_in_the_retry_topic_is_a_duplicate():
    first = ready_book()
    first.add_main(rec(0), T0)
    first.finish(first.take(T0, 1), FAIL, T0, 500, "")
    (w,) = drain(first)
    second = Book(dest())
    second.add_retry(*retry_record(w.entry, 0, w.gen), T0)
    second.add_main(rec(0), T0)  # the input offset was not committed before the crash
    second.set_caught_up(0, T0)
    assert second.pending == 1
    assert second.positions()[("main", 0)] == 1


def test_a_record_read_back_after_its_entry_was_done_is_dropped():
    book = ready_book()
    book.add_main(rec(0), T0)
    book.finish(book.take(T0, 1), FAIL, T0, 500, "")
    (w,) = drain(book)
    book.finish(book.take(T0 + 5_000, 1), OK, T0 + 5_000, 200, "")  # before reading it back
    book.add_retry(*retry_record(w.entry, 0, w.gen), T0)
    assert book.pending == 0
    assert book.positions()[("retry", 0)] == 1


def test_failed_writes_are_asked_again():
    book = ready_book()
    book.add_main(rec(0), T0)
    book.finish(book.take(T0, 1), FAIL, T0, 500, "")
    drain(book, error="broker down")
    assert [w.kind for w in book.outbox] == ["retry"]
    assert book.positions()[("main", 0)] == 0


def test_dropping_a_partition_forgets_it():
    book = ready_book()
    book.add_main(rec(0), T0)
    book.add_main(rec(0, partition=1), T0)
    book.set_caught_up(1, T0)
    batch = book.take(T0, 10)
    assert len(batch) == 2
    book.drop_partition(0)
    book.finish(batch, OK, T0, 200, "")
    assert book.pending == 0
    assert ("main", 0) not in book.positions()
