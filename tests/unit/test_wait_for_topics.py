"""``wait_for_topics``: a created topic is usable only once every partition has a leader."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from pipeline.contract.topics import wait_for_topics
from pipeline.errors import BrokerUnavailable


class Admin:
    """Metadata answers in turn: the topic unknown, then leaderless, then ready."""

    def __init__(self, *answers: dict[str, Any]) -> None:
        self.answers = list(answers)
        self.asked = 0

    def list_topics(self, timeout: float) -> Any:
        self.asked += 1
        answer = self.answers[min(self.asked, len(self.answers)) - 1]
        return SimpleNamespace(topics=answer)


def topic(*leaders: int, error: Any = None) -> Any:
    partitions = {i: SimpleNamespace(leader=leader) for i, leader in enumerate(leaders)}
    return SimpleNamespace(error=error, partitions=partitions)


def test_waits_until_every_partition_has_a_leader() -> None:
    admin = Admin({}, {"t": topic(1, -1)}, {"t": topic(1, 1)})
    wait_for_topics(admin, ["t"], timeout_s=5)
    assert admin.asked == 3


def test_names_the_topic_that_never_gets_a_leader() -> None:
    admin = Admin({"t": topic(1, 1), "u": topic(-1)})
    with pytest.raises(BrokerUnavailable, match="topics u have no leader"):
        wait_for_topics(admin, ["t", "u"], timeout_s=0.3)
