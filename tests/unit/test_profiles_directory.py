"""Who owns a partition, from the workers' advertisements (``pipeline/profiles/directory.py``)."""

from __future__ import annotations

import json

from pipeline.config import Settings
from pipeline.profiles.directory import Directory


def claim(url: str, *partitions: int) -> bytes:
    return json.dumps({"url": url, "partitions": list(partitions), "at_ms": 0}).encode()


def test_the_latest_claim_of_a_partition_wins() -> None:
    d = Directory(Settings(bootstrap_servers="127.0.0.1:1"), "a")
    d._apply("a", 0, claim("http://a", 0, 1, 2, 3))
    assert d.owner(2) == ("a", "http://a")
    d._apply("a", 1, claim("http://a"))  # a rebalance starts: a lets go of everything
    assert d.owner(2) is None
    d._apply("b", 2, claim("http://b", 2, 3))
    d._apply("a", 3, claim("http://a", 0, 1))
    assert [d.owner(p) for p in range(4)] == [
        ("a", "http://a"), ("a", "http://a"), ("b", "http://b"), ("b", "http://b"),
    ]  # fmt: skip
    # b is killed (its claim stays); a takes over after restoring: the later claim wins
    d._apply("a", 4, claim("http://a", 0, 1, 2, 3))
    assert {d.owner(p) for p in range(4)} == {("a", "http://a")}
    d._apply("c", 5, b"not json")  # ignored
    assert d.owner(0) == ("a", "http://a")
