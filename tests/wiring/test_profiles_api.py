"""The profile API over partition tasks driven record by record (real RocksDB, no broker).

The test stands in for the worker loop: it drives records into the tasks and
commits (the stores' write caches into RocksDB), as ``loop.py`` does; the API
reads the last commit on its own thread. Checks the routes, errors, limits, the
history kept in the store (committed with it, gone with an aborted batch), a
merged anonymous id, readiness, and that the OpenAPI document matches the routes.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pipeline.profiles.auth import RateLimiter
from pipeline.profiles.lookups import Lookups
from pipeline.profiles.server import ApiServer, openapi
from pipeline.profiles.settings import ApiSettings
from pipeline.profiles.view import ProfileView
from pipeline.topology.dsl import load_topology
from pipeline.worker.partition import PartitionTask, Topology
from pipeline.worker.persons import MERGE_IN
from pipeline.worker.store import PartitionStore
from tests.integration.runtime_helpers import COMMERCE
from tests.wiring.test_partition_task import MIN, T0, ListSink, N, event, key_on, rec

TOKEN = "wiring-token-0123456789"


class Loop:
    """The worker loop's part: tasks for every partition, committed when told."""

    def __init__(self, tmp_path: Path, lookups: Lookups) -> None:
        topo = load_topology(COMMERCE)
        self.topology = Topology(topo.operators, topo.stage, topo.identity)
        self.lookups = lookups
        self.lock = threading.Lock()
        self.tasks = {
            p: PartitionTask(
                p,
                N,
                PartitionStore(tmp_path / f"p{p}", p),
                self.topology,
                ListSink(),
                allowed_lateness_ms=0,
                idle_timeout_s=1.0,
                clock=lambda: 0.0,
            )
            for p in range(N)
        }
        lookups.attach({p: t.store for p, t in self.tasks.items()}, self.tasks)

    def commit(self) -> None:
        for task in self.tasks.values():
            task.save_meta()
            task.store.applied(None)


@pytest.fixture
def api(tmp_path: Path) -> Iterator[tuple[ApiServer, Loop]]:
    topo = load_topology(COMMERCE)
    lookups = Lookups(ProfileView(topo.operators, topo.stage), N, history_size=3)
    loop = Loop(tmp_path, lookups)
    settings = ApiSettings(port=0, tokens=(TOKEN,), host="127.0.0.1", rate_limit=50)
    server = ApiServer(settings, lookups, None, "w-test")
    assert server.start()
    lookups.assigned(list(range(N)))
    yield server, loop
    server.stop()


def get(
    server: ApiServer, path: str, token: str | None = TOKEN, **headers: str
) -> tuple[int, Any, dict[str, str]]:
    req = urllib.request.Request(f"http://127.0.0.1:{server.port}{path}", headers=headers)
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            body = resp.read().decode()
            status, hdrs = resp.status, dict(resp.headers)
    except urllib.error.HTTPError as err:
        body, status, hdrs = err.read().decode(), err.code, dict(err.headers)
    try:
        return status, json.loads(body), hdrs
    except ValueError:
        return status, body, hdrs


def drive(
    loop: Loop, person: str, events: list[tuple[str, str, int]], commit: bool = True, **ids: str
) -> None:
    """Records for ``person``'s partition, the watermark moved to them, then a commit."""
    p = next(p for p in range(N) if key_on(p, "") is not None and p == _partition(person))
    task = loop.tasks[p]
    with loop.lock:
        for offset, (mid, name, at) in enumerate(events):
            task.on_event_record(rec(task.read_to + 1 + offset, event(mid, name, at, **ids), p))
        task.inputs.observe(p, task.source.stream_time_ms, 0, 0.0)
        for q in range(N):  # every source reported: the watermark follows stream time
            task.inputs.observe(q, task.source.stream_time_ms, 0, 0.0)
        task.advance()
        if commit:
            loop.commit()


def _partition(person: str) -> int:
    from pipeline.worker.partitioner import partition_for

    return partition_for(person.encode(), N)


def test_a_person_their_triggers_and_the_page(api: tuple[ApiServer, Loop]) -> None:
    server, loop = api
    person = key_on(1, "shopper-")
    drive(loop, person, [("m1", "product_viewed", 0), ("m2", "checkout_started", 1),
                         ("m3", "page_viewed", 120)], user_id=person)  # fmt: skip
    status, body, headers = get(server, f"/v1/persons/{person}")
    assert status == 200, body
    assert headers["X-Pulse-Served-By"] == "w-test"
    assert body["person_id"] == person
    assert body["partition"] == 1
    assert body["traits"]["events_total"] == 2  # the last one is not below the watermark yet
    assert [e["message_id"] for e in body["awaiting_watermark"]] == ["m3"]
    assert {"segment": "active_this_week", "entered_ms": None} not in body["segments"]
    assert [s["segment"] for s in body["segments"]] == ["active_this_week"]
    assert all(isinstance(s["entered_ms"], int) for s in body["segments"])
    status, body, _ = get(server, f"/v1/persons/{person}/triggers")
    assert status == 200
    rules = [(t["kind"], t["rule"]) for t in body["recent_triggers"]]
    assert ("trigger", "checkout_abandoned") in rules, rules
    status, html, headers = get(server, f"/persons/{person}")
    assert headers["Content-Security-Policy"].startswith("default-src 'none'")
    assert status == 200
    assert "checkout_abandoned" in html
    assert 'id="heatmap"' in html


def test_the_history_is_bounded_committed_with_the_store_and_dropped_with_an_abort(
    api: tuple[ApiServer, Loop],
) -> None:
    server, loop = api
    person = key_on(2, "buyer-")
    p = _partition(person)
    drive(loop, person, [("b1", "order_completed", 0), ("b1x", "page_viewed", 1)], user_id=person)
    _, body, _ = get(server, f"/v1/persons/{person}/triggers")
    assert [t["rule"] for t in body["recent_triggers"]] == ["first_purchase"]
    # a batch not committed yet: the API shows the last commit
    drive(
        loop, person, [("b2", "logged_in", 2), ("b2x", "page_viewed", 3)], commit=False,
        user_id=person,
    )  # fmt: skip
    assert loop.tasks[p].store.cache  # the batch's writes are in the write cache ...
    _, body, _ = get(server, f"/v1/persons/{person}/triggers")
    assert [t["rule"] for t in body["recent_triggers"]] == ["first_purchase"]  # ... not shown
    # the batch aborted: its outputs never happened, nor their history
    with loop.lock:
        loop.tasks[p].store.discard()
        loop.tasks[p].persons.objects.clear()
        loop.tasks[p].persons.dirty.clear()
    loop.commit()
    _, body, _ = get(server, f"/v1/persons/{person}/triggers")
    assert [t["rule"] for t in body["recent_triggers"]] == ["first_purchase"]
    drive(loop, person, [("b3", "logged_in", 4), ("b3x", "page_viewed", 5)], user_id=person)
    _, body, _ = get(server, f"/v1/persons/{person}/triggers")
    assert [t["rule"] for t in body["recent_triggers"]] == ["first_login", "first_purchase"]
    # at most history_size (3) entries, newest first
    more = [(f"c{i}", "checkout_started", 10 + 40 * i) for i in range(5)]
    drive(loop, person, [*more, ("z", "page_viewed", 400)], user_id=person)
    _, body, _ = get(server, f"/v1/persons/{person}/triggers")
    assert len(body["recent_triggers"]) == 3
    times = [t["event_time_ms"] for t in body["recent_triggers"]]
    assert times == sorted(times, reverse=True)


def test_errors_auth_and_limits(api: tuple[ApiServer, Loop]) -> None:
    server, _ = api
    status, body, _ = get(server, "/v1/persons/nobody")
    assert (status, body["error"]["code"]) == (404, "not_found")
    status, body, headers = get(server, "/v1/persons/nobody", token=None)
    assert (status, body["error"]["code"]) == (401, "unauthorized")
    assert headers["WWW-Authenticate"].startswith("Bearer")
    assert get(server, "/v1/persons/nobody", token="wrong-token-0123456789")[0] == 401
    assert get(server, "/v1/persons/" + "x" * 300)[0] == 400
    assert get(server, "/v1/persons/" + "x" * 5000)[0] in (400, 414, 431)
    req = urllib.request.Request(f"http://127.0.0.1:{server.port}/v1/persons/nobody",
                                 data=b"x" * 10, method="GET",
                                 headers={"Authorization": f"Bearer {TOKEN}"})  # fmt: skip
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(req, timeout=10)
    assert err.value.code == 413
    assert get(server, "/v1/persons/nobody", token=None, Cookie=f"pulse_token={TOKEN}")[0] == 401
    assert get(server, "/persons/nobody", token=None, Cookie=f"pulse_token={TOKEN}")[0] == 404
    server.limiter = RateLimiter(5)
    codes = [get(server, "/v1/persons/nobody")[0] for _ in range(8)]
    assert codes[:5] == [404] * 5
    assert 429 in codes[5:]
    status, body, headers = get(server, "/v1/persons/nobody")
    assert (status, body["error"]["code"], headers["Retry-After"]) == (429, "rate_limited", "1")


def test_a_merged_anonymous_id_resolves_to_its_user_with_its_triggers(
    api: tuple[ApiServer, Loop],
) -> None:
    server, loop = api
    anon = key_on(3, "anon-")
    user = key_on(3, "user-")
    drive(loop, user, [("u1", "order_completed", 0)], user_id=user)  # the user's own trigger
    drive(loop, anon, [("a1", "checkout_started", 10), ("a1x", "page_viewed", 130)],
          anonymous_id=anon)  # fmt: skip
    _, body, _ = get(server, f"/v1/persons/{anon}/triggers")
    assert [t["rule"] for t in body["recent_triggers"]] == ["checkout_abandoned"]
    drive(loop, anon, [("a2", "logged_in", 131), ("a2x", "page_viewed", 132)],
          anonymous_id=anon, user_id=user)  # fmt: skip
    status, body, _ = get(server, f"/v1/persons/{anon}")
    assert status == 200, body
    assert body["resolved_from"] == anon
    assert body["merged"] is True
    assert body["person_id"] == user
    assert anon in body["identities"]["anonymous_ids"]
    # the anonymous person's triggers moved with it, in event time, within the bound (3)
    _, body, _ = get(server, f"/v1/persons/{user}/triggers")
    rules = [(t["rule"], t["person_id"]) for t in body["recent_triggers"]]
    assert rules == [("first_login", user), ("checkout_abandoned", anon), ("first_purchase", user)]
    status, body, _ = get(server, f"/v1/persons/{anon}/triggers")
    assert (status, body["resolved_from"], body["person_id"]) == (200, anon, user)
    # the merge read again (at-least-once): the history is not taken in twice
    taken = [["trigger", {"rule": "checkout_abandoned", "person_id": anon,
                          "event_time_ms": T0 + 200 * MIN}]]  # fmt: skip
    again = {"anon": anon, "user": user, "t": T0 + 131 * MIN, "mid": "a2", "state": {},
             "history": taken}  # fmt: skip
    loop.tasks[3].on_control(MERGE_IN, again)
    loop.commit()
    _, body, _ = get(server, f"/v1/persons/{user}/triggers")
    assert [t["rule"] for t in body["recent_triggers"]] == [r for r, _ in rules]


def test_not_ready_partitions_answer_503_with_retry_after(api: tuple[ApiServer, Loop]) -> None:
    server, loop = api
    person = key_on(0, "someone-")
    drive(loop, person, [("s1", "page_viewed", 0)], user_id=person)
    assert get(server, f"/v1/persons/{person}")[0] == 200
    loop.lookups.unready()  # an assignment is restoring
    status, body, headers = get(server, f"/v1/persons/{person}")
    assert (status, body["error"]["code"], headers["Retry-After"]) == (503, "unavailable", "1")
    loop.lookups.assigned([0])
    assert get(server, f"/v1/persons/{person}")[0] == 200
    assert headers["Retry-After"] == "1"


def test_the_openapi_document_is_served_and_matches_the_routes(api: tuple[ApiServer, Loop]) -> None:
    server, _ = api
    status, body, _ = get(server, "/v1/openapi.json")
    assert status == 200
    assert body == openapi()
    routes = {
        (r.method.lower(), r.resource.canonical)
        for r in server.app().router.routes()
        if r.method != "HEAD" and r.resource is not None
    }
    documented = {(m, path) for path, ops in body["paths"].items() for m in ops}
    assert routes == documented
    checked_in = Path(__file__).resolve().parents[2] / "pipeline" / "profiles" / "openapi.json"
    assert json.loads(checked_in.read_text()) == body


def test_a_busy_loop_does_not_delay_the_answer_which_is_the_last_commit(
    api: tuple[ApiServer, Loop],
) -> None:
    server, loop = api
    person = key_on(2, "committing-")
    drive(loop, person, [("w1", "page_viewed", 0), ("w2", "page_viewed", 1)], user_id=person)
    drive(loop, person, [("w3", "page_viewed", 2), ("w4", "page_viewed", 3)], commit=False,
          user_id=person)  # fmt: skip
    with loop.lock:  # the loop is in the middle of a batch: the answer does not wait for it
        started = time.monotonic()
        status, body, _ = get(server, f"/v1/persons/{person}")
        assert time.monotonic() - started < 1.0
        assert status == 200
        assert body["traits"]["events_total"] == 1  # as committed, not the batch in progress
    loop.commit()
    assert get(server, f"/v1/persons/{person}")[1]["traits"]["events_total"] == 3
