"""The profile API on the real broker: two workers, each answering for every person.

Persons live on all four partitions, so whichever worker is asked answers
some itself and forwards the others to the worker that owns them (found on
the ``<prefix>workers`` topic). ``pulse profile`` prints the same JSON, and
the person page is loaded in headless Chromium (Debian's ``chromium``,
installed by ``scripts/prereqs.sh chromium``) through a proxy that adds the
bearer token, as an authenticating proxy in front of the workers would.
"""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from aiohttp import ClientSession, web

from pipeline.config import Settings
from pipeline.contract.topics import ensure_topics
from tests.integration.helpers import event_line, person_on_partition, pulse
from tests.integration.runtime_helpers import COMMERCE, read_committed, start_worker, stop_worker

pytestmark = pytest.mark.integration

MIN, HOUR = 60_000, 3_600_000
T0 = 1_790_000_000_000
TOKEN = "live-profile-token-0123456789"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def get(url: str, token: str | None = TOKEN) -> tuple[int, Any, dict[str, str]]:
    req = urllib.request.Request(url)
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, json.loads(resp.read()), dict(resp.headers)
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read()), dict(err.headers)


def wait_for(check: Any, timeout_s: float, what: str) -> Any:
    deadline = time.monotonic() + timeout_s
    last = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(0.3)
    raise AssertionError(f"{what}: not after {timeout_s} s (last: {last})")


@contextmanager
def token_proxy(target: str) -> Iterator[str]:
    """An HTTP proxy to ``target`` that adds the bearer token (what a browser cannot)."""
    loop = asyncio.new_event_loop()
    port = free_port()
    ready = threading.Event()

    async def handle(request: web.Request) -> web.Response:
        async with (
            ClientSession() as session,
            session.get(
                target + request.path_qs, headers={"Authorization": f"Bearer {TOKEN}"}
            ) as resp,
        ):
            return web.Response(status=resp.status, body=await resp.read(),
                                content_type=resp.content_type)  # fmt: skip

    async def serve() -> web.AppRunner:
        app = web.Application()
        app.router.add_get("/{tail:.*}", handle)
        runner = web.AppRunner(app)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        return runner

    def run() -> None:
        asyncio.set_event_loop(loop)
        runner = loop.run_until_complete(serve())
        ready.set()
        loop.run_forever()
        loop.run_until_complete(runner.cleanup())

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    ready.wait(10)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)


def chromium_dom(url: str) -> str:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    assert browser, "chromium is missing: scripts/prereqs.sh chromium installs it (make test does)"
    out = subprocess.run(
        [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
         "--no-first-run", "--dump-dom", url],
        capture_output=True, text=True, timeout=90, check=False,
    )  # fmt: skip
    assert "<html" in out.stdout, out.stderr[-2000:]
    return out.stdout


def shoppers(persons: list[str]) -> list[str]:
    """Each person views a product and starts a checkout, a minute apart."""
    lines = []
    for i, person in enumerate(persons):
        lines += [
            event_line(f"{i}-v", "product_viewed", T0 + i * MIN, userId=person),
            event_line(f"{i}-c", "checkout_started", T0 + i * MIN + 1000, userId=person),
        ]
    return lines


def two_workers_setup(
    settings: Settings, tmp_path: Path, lines: list[str]
) -> tuple[Path, list[int], list[str], list[Path]]:
    """The events file (ending with a page view two hours on), fresh topics, two ports and logs."""
    lines = [*lines, event_line("end", "page_viewed", T0 + 2 * HOUR, userId="someone-else")]
    events = tmp_path / "events.jsonl"
    events.write_text("\n".join(lines) + "\n")
    ensure_topics(settings)
    ports = [free_port(), free_port()]
    urls = [f"http://127.0.0.1:{port}" for port in ports]
    return events, ports, urls, [tmp_path / "a.log", tmp_path / "b.log"]


def test_two_workers_answer_for_every_person_forwarding_to_the_owner(
    settings: Settings, pulse_env: dict[str, str], tmp_path: Path
) -> None:
    persons = [person_on_partition(p, 4, prefix="shopper") for p in range(4)]
    anon = person_on_partition(0, 4, prefix="anon")
    lines = [
        *shoppers(persons),
        event_line("a-v", "product_viewed", T0, anonymousId=anon),
        event_line("a-l", "logged_in", T0 + MIN, anonymousId=anon, userId=persons[2]),
    ]
    events, ports, urls, logs = two_workers_setup(settings, tmp_path, lines)
    procs = []
    try:
        for name, port, log in zip(("wa", "wb"), ports, logs, strict=True):
            env = {**pulse_env, "PULSE_IDLE_ADVANCE_MS": "1000", "PULSE_INSTANCE_ID": name,
                   "PULSE_API_PORT": str(port), "PULSE_API_HOST": "127.0.0.1",
                   "PULSE_API_TOKENS": TOKEN, "PULSE_API_HISTORY": "5"}  # fmt: skip
            procs.append(start_worker(env, log, "--topology", str(COMMERCE)))

        def both_ready() -> bool:
            codes = [get(f"{u}/v1/persons/nobody")[0] for u in urls if _up(u)]
            return len(codes) == 2 and all(c == 404 for c in codes)

        wait_for(both_ready, 90, "both workers answer for every partition")
        pulse(pulse_env, "produce", "--file", str(events))
        triggered = read_committed(
            settings, ["triggers"], timeout_s=90,
            until=lambda g: {r["person_id"] for _, r in g if r["rule"] == "checkout_abandoned"}
            >= set(persons),
        )  # fmt: skip
        assert {r["person_id"] for _, r in triggered} >= set(persons)

        # every person from either worker; each answered by the owner of its partition
        served: dict[str, set[str]] = {}
        for url in urls:
            for person in persons:
                status, body, headers = get(f"{url}/v1/persons/{person}")
                assert status == 200, (url, person, body)
                assert body["person_id"] == person
                served.setdefault(person, set()).add(headers["X-Pulse-Served-By"])
                assert body["traits"]["events_total"] >= 2
        assert all(len(who) == 1 for who in served.values()), served  # always its owner
        assert set().union(*served.values()) == {"wa", "wb"}  # so each forwarded some

        for url in urls:
            status, body, _ = get(f"{url}/v1/persons/{persons[1]}/triggers")
            assert status == 200
            assert "checkout_abandoned" in [t["rule"] for t in body["recent_triggers"]]
            # the merged anonymous id resolves to its user, wherever each lives
            status, body, _ = get(f"{url}/v1/persons/{anon}")
            assert status == 200, body
            assert (body["resolved_from"], body["person_id"]) == (anon, persons[2])
            assert anon in body["identities"]["anonymous_ids"]
            assert get(f"{url}/v1/persons/{persons[0]}", token=None)[0] == 401
            assert get(f"{url}/v1/persons/nobody")[0] == 404

        # the CLI prints the same JSON
        env = {**pulse_env, "PULSE_API_TOKEN": TOKEN}
        out = pulse(env, "profile", persons[3], "--url", urls[0])
        printed = json.loads(out.stdout)
        _, direct, _ = get(f"{urls[1]}/v1/persons/{persons[3]}")
        for key in ("person_id", "identities", "segments", "partition"):
            assert printed[key] == direct[key]
        assert set(printed) == set(direct)

        # the page, in a real browser
        page_person = persons[1]
        with token_proxy(urls[0]) as proxy:
            dom = chromium_dom(f"{proxy}/persons/{page_person}")
        assert f'<h1 id="person">{page_person}</h1>' in dom
        triggers_table = re.search(r'<table id="triggers">(.*?)</table>', dom, re.S)
        assert triggers_table
        assert "checkout_abandoned" in triggers_table.group(1)
        segments_table = re.search(r'<table id="segments">(.*?)</table>', dom, re.S)
        assert segments_table
        assert "active_this_week" in segments_table.group(1)
        counts = [int(n) for n in re.findall(r'data-count="(\d+)"', dom)]
        assert len(counts) == 7 * 24
        assert sum(counts) == 2
        assert re.search(r'<table id="traits">.*events_total', dom, re.S)
    finally:
        for proc in procs:
            stop_worker(proc)
    for log in logs:
        text = log.read_text()
        assert TOKEN not in text  # tokens are never logged
        assert "profile API on 127.0.0.1" in text


def _up(url: str) -> bool:
    try:
        get(f"{url}/v1/openapi.json")
    except OSError:
        return False
    return True


def test_a_rebalance_answers_503_or_the_person_never_an_empty_profile(
    settings: Settings, pulse_env: dict[str, str], tmp_path: Path
) -> None:
    # One worker has every partition; a second joins with an empty PULSE_HOME, so
    # the partitions it takes are restored from the changelog (the trigger
    # history with them). Every answer meanwhile is the person, or 503 + Retry-After.
    persons = [person_on_partition(p, 4, prefix="rebalanced") for p in range(4)]
    events, ports, urls, logs = two_workers_setup(settings, tmp_path, shoppers(persons))

    def env_of(i: int) -> dict[str, str]:
        home = str(tmp_path / f"home{i}")
        return {**pulse_env, "PULSE_IDLE_ADVANCE_MS": "1000", "PULSE_INSTANCE_ID": f"w{i}",
                "PULSE_HOME": home, "PULSE_API_PORT": str(ports[i])}  # fmt: skip

    procs = [start_worker(env_of(0), logs[0], "--topology", str(COMMERCE))]
    answers: list[tuple[int, Any, dict[str, str]]] = []
    stop = threading.Event()

    def poll() -> None:
        while not stop.is_set():
            for person in persons:
                try:
                    answers.append((*get(f"{urls[0]}/v1/persons/{person}", token=None)[:2],
                                    {"person": person}))  # fmt: skip
                except OSError as exc:
                    answers.append((0, str(exc), {"person": person}))
            time.sleep(0.02)

    try:
        wait_for(lambda: _up(urls[0]) and get(f"{urls[0]}/v1/persons/x", None)[0] == 404, 90,
                 "the first worker answers")  # fmt: skip
        pulse(pulse_env, "produce", "--file", str(events))
        read_committed(
            settings, ["triggers"], timeout_s=90,
            until=lambda g: {r["person_id"] for _, r in g} >= set(persons),
        )  # fmt: skip
        wait_for(lambda: all(get(f"{urls[0]}/v1/persons/{p}/triggers", None)[0] == 200
                             for p in persons), 30, "histories")  # fmt: skip
        poller = threading.Thread(target=poll, daemon=True)
        poller.start()
        procs.append(start_worker(env_of(1), logs[1], "--topology", str(COMMERCE)))

        def moved() -> bool:
            who = {
                get(f"{urls[0]}/v1/persons/{p}", None)[2].get("X-Pulse-Served-By") for p in persons
            }
            return who == {"w0", "w1"}

        wait_for(moved, 90, "the second worker serves its partitions")
        time.sleep(1)
        stop.set()
        poller.join(10)
        # the restored partitions' histories came with them (read from the changelog)
        for person in persons:
            status, body, _ = get(f"{urls[1]}/v1/persons/{person}/triggers", None)
            assert status == 200, body
            assert "checkout_abandoned" in [t["rule"] for t in body["recent_triggers"]]
        assert "w1" in {get(f"{urls[1]}/v1/persons/{p}", None)[2]["X-Pulse-Served-By"]
                        for p in persons}  # fmt: skip
    finally:
        stop.set()
        for proc in procs:
            stop_worker(proc)
    statuses = [a[0] for a in answers]
    assert 503 in statuses, "the rebalance was not seen"  # else the test proves nothing
    for status, body, meta in answers:
        if status == 200:
            assert body["person_id"] == meta["person"]
            assert body["traits"]["events_total"] >= 2  # never an empty profile
        else:
            assert status == 503, (status, body)
            assert body["error"]["code"] == "unavailable"
