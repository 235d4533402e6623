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
from pipeline.topics import ensure_topics
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


def test_two_workers_answer_for_every_person_forwarding_to_the_owner(
    settings: Settings, pulse_env: dict[str, str], tmp_path: Path
) -> None:
    persons = [person_on_partition(p, 4, prefix="shopper") for p in range(4)]
    anon = person_on_partition(0, 4, prefix="anon")
    lines = []
    for i, person in enumerate(persons):
        lines += [
            event_line(f"{i}-v", "product_viewed", T0 + i * MIN, userId=person),
            event_line(f"{i}-c", "checkout_started", T0 + i * MIN + 1000, userId=person),
        ]
    lines += [
        event_line("a-v", "product_viewed", T0, anonymousId=anon),
        event_line("a-l", "logged_in", T0 + MIN, anonymousId=anon, userId=persons[2]),
        event_line("end", "page_viewed", T0 + 2 * HOUR, userId="someone-else"),
    ]
    events = tmp_path / "events.jsonl"
    events.write_text("\n".join(lines) + "\n")
    ensure_topics(settings)
    ports = [free_port(), free_port()]
    urls = [f"http://127.0.0.1:{port}" for port in ports]
    logs = [tmp_path / "a.log", tmp_path / "b.log"]
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
