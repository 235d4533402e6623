"""The profile API's own process against a worker's real RocksDB stores.

The test drives partition tasks and commits as the worker loop does, and tells
an :class:`ApiProcess` what a loop tells it. The child reads secondaries of the
stores: it shows each commit once told, never a batch in progress, lets go of
the stores before a restore may wipe them, and stops when the worker is gone.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pipeline.config import Settings
from pipeline.profiles.directory import ensure_workers_topic
from pipeline.profiles.process import ApiProcess
from tests.integration.runtime_helpers import COMMERCE
from tests.integration.test_profiles_live import free_port
from tests.wiring.test_partition_task import N, key_on
from tests.wiring.test_profiles_api import Loop, drive

pytestmark = pytest.mark.integration
TOKEN = "process-token-0123456789"


@pytest.fixture
def api(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[ApiProcess, int]]:
    port = free_port()
    monkeypatch.setenv("PULSE_API_PORT", str(port))
    monkeypatch.setenv("PULSE_API_TOKENS", TOKEN)
    monkeypatch.setenv("PULSE_API_HOST", "127.0.0.1")
    ensure_workers_topic(settings)
    child = ApiProcess(settings, (str(COMMERCE), ()), N, "w-process-test", history_size=3)
    assert child.port == port
    yield child, port
    child.close()


def get(port: int, path: str) -> tuple[int, Any]:
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}")
    req.add_header("Authorization", f"Bearer {TOKEN}")
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def eventually(port: int, path: str, check: Any) -> tuple[int, Any]:
    """The answer, once ``check`` holds (a commit reaches the child through its pipe)."""
    deadline = time.monotonic() + 10
    while True:
        status, body = get(port, path)
        if check(status, body) or time.monotonic() > deadline:
            return status, body
        time.sleep(0.05)


def events_total(body: Any) -> Any:
    return body.get("traits", {}).get("events_total")


def test_the_api_process_reads_each_commit_and_lets_go_of_the_stores(
    api: tuple[ApiProcess, int], tmp_path: Path
) -> None:
    child, port = api
    loop = Loop(tmp_path, child)  # type: ignore[arg-type]
    child.assigned(list(range(N)))
    person = key_on(1, "proc-")
    drive(loop, person, [("a1", "page_viewed", 0), ("a2", "page_viewed", 1)], user_id=person)
    child.committed()
    path = f"/v1/persons/{person}"
    status, body = eventually(port, path, lambda status, _: status == 200)
    assert status == 200, body
    assert events_total(body) == 1
    # a batch in progress is not shown; its commit is, once the loop says so
    drive(loop, person, [("a3", "page_viewed", 2), ("a4", "page_viewed", 3)], commit=False,
          user_id=person)  # fmt: skip
    child.committed()
    assert events_total(get(port, path)[1]) == 1
    loop.commit()
    child.committed()
    assert events_total(eventually(port, path, lambda _, b: events_total(b) == 3)[1]) == 3
    # a restore: the child lets go first (the call returns once it did), then answers 503
    child.unready()
    status, body = get(port, path)
    assert (status, body["error"]["code"]) == (503, "unavailable")
    loop.tasks[1].store.wipe()  # the restore starts over: files removed under no reader
    child.assigned(list(range(N)))
    assert get(port, path)[0] == 404  # the wiped store, opened again
    # the worker is gone (kill -9 closes its end of the pipe): the child stops
    child.conn.close()
    child.proc.join(15)
    assert not child.proc.is_alive()
