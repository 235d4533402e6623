"""What a person partition has not read yet of what this worker sent it (no broker)."""

from __future__ import annotations

from pipeline.worker.forwards import Forwards


def test_a_source_is_capped_at_its_time_when_it_sent_the_oldest_unread_record() -> None:
    f = Forwards()
    f.keep({1})
    a = f.sent(1, 0, 100)  # source 0 at 100 ms
    clock = f.sent(1, -1, 0)  # a clock record: carries no data
    b = f.sent(1, 2, 150)
    c = f.sent(1, 0, 200)
    assert a is not None
    assert clock is not None
    assert b is not None
    assert c is not None
    assert f.unread(1, 0) == {0: 100, 2: 150}  # nothing delivered yet
    a.offset, clock.offset = 5, 6
    assert f.unread(1, 6) == {2: 150, 0: 200}  # read up to 5: a is gone
    # b's delivery report has not come: it and everything after it stay unread
    assert f.unread(1, 100) == {2: 150, 0: 200}
    b.offset, c.offset = -1, 8  # b was not written: it never arrives
    assert f.unread(1, 8) == {0: 200}
    assert f.unread(1, 9) == {}


def test_other_partitions_records_are_forgotten_and_kept_apart() -> None:
    f = Forwards()
    f.keep({1, 2})
    f.sent(1, 0, 100)
    f.sent(2, 0, 50)
    assert f.unread(2, 0) == {0: 50}
    assert f.unread(1, 0) == {0: 100}
    f.keep({1})
    assert f.unread(2, 0) == {}
    assert f.unread(1, 0) == {0: 100}
    # another worker's partition: nothing is kept for it, however much is sent
    assert f.sent(2, 0, 60) is None
    assert f.sent_to.keys() == {1}
