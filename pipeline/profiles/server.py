"""The profile API's HTTP server: aiohttp on its own thread, read-only.

Routes (``openapi.json`` documents them; a test keeps the two in step):

* ``GET /v1/persons/{id}``: the person now (``lookups.py``, ``view.py``);
* ``GET /v1/persons/{id}/triggers``: recent triggers and suppressions;
* ``GET /persons/{id}``: the person page (HTML, ``page.py``);
* ``GET /v1/openapi.json``: the OpenAPI document.

A person is answered by the worker whose partition holds them: here, through
the worker loop, or forwarded to the owner the directory names
(``directory.py``), at most :data:`MAX_HOPS` hops (a merged anonymous id may
take a second one to its user). Every request needs a bearer token when
tokens are configured; each client address is rate-limited; requests have no
body and short lines.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

import orjson
from aiohttp import ClientSession, ClientTimeout, TCPConnector, web

from pipeline.profiles import page
from pipeline.profiles.auth import RateLimiter, Tokens
from pipeline.profiles.directory import Directory
from pipeline.profiles.lookups import PERSON, TRIGGERS, Answer, Lookups
from pipeline.profiles.settings import LOCALHOST, ApiSettings

log = logging.getLogger(__name__)

HOPS_HEADER = "X-Pulse-Hops"
SERVED_BY = "X-Pulse-Served-By"
MAX_HOPS = 2
MAX_ID = 256
RETRY_AFTER = "1"
COOKIE = "pulse_token"
#: The page runs no script and loads nothing: a browser may not either.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
}


def openapi() -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(
        resources.files("pipeline.profiles").joinpath("openapi.json").read_text()
    )
    return doc


def dumps(body: Any) -> bytes:
    return orjson.dumps(body, option=orjson.OPT_NON_STR_KEYS)


@dataclass
class Reply:
    """An answer as JSON bytes (the worker loop's, or the owner's, passed through as they are)."""

    status: int
    raw: bytes
    served_by: str = ""
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def body(self) -> dict[str, Any]:
        value: dict[str, Any] = orjson.loads(self.raw)
        return value


def error(status: int, code: str, message: str, **headers: str) -> Reply:
    return Reply(status, dumps({"error": {"code": code, "message": message}}), headers=headers)


def _unavailable(message: str) -> Reply:
    return error(503, "unavailable", message, **{"Retry-After": RETRY_AFTER})


class ApiServer:
    """One worker's API; :meth:`start` returns the bound port (None: not serving)."""

    def __init__(
        self, settings: ApiSettings, lookups: Lookups, directory: Directory | None, instance_id: str
    ) -> None:
        self.settings = settings
        self.lookups = lookups
        self.directory = directory
        self.instance_id = instance_id
        self.tokens = Tokens(settings.tokens)
        self.limiter = RateLimiter(settings.rate_limit)
        self.wait_s = settings.wait_ms / 1000  # for a forwarded lookup's owner
        self.loop = asyncio.new_event_loop()
        self.thread: threading.Thread | None = None
        self.runner: web.AppRunner | None = None
        self.session: ClientSession | None = None
        self.port: int | None = None

    # -- lifecycle ----------------------------------------------------------------------

    def app(self) -> web.Application:
        app = web.Application(
            middlewares=[self._guard],
            client_max_size=1024,
            handler_args={"max_line_size": 4096, "max_field_size": 4096},
        )
        app.router.add_get("/v1/persons/{id}", self._person)
        app.router.add_get("/v1/persons/{id}/triggers", self._triggers)
        app.router.add_get("/persons/{id}", self._page)
        app.router.add_get("/v1/openapi.json", self._openapi)
        return app

    def start(self) -> int | None:
        started: Future[int | None] = Future()
        self.thread = threading.Thread(
            target=self._serve, args=(started,), name="pulse-api", daemon=True
        )
        self.thread.start()
        self.port = started.result(timeout=30)
        return self.port

    def _serve(self, started: Future[int | None]) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            port = self.loop.run_until_complete(self._bind())
        except OSError as exc:
            log.error("profile API not started: cannot bind %s:%d (%s)",
                      self.settings.bind_host, self.settings.port, exc.strerror)  # fmt: skip
            started.set_result(None)
            return
        started.set_result(port)
        self.loop.run_forever()

    async def _bind(self) -> int:
        self.runner = web.AppRunner(
            self.app(),
            access_log=None,  # an access log could carry what clients send; tokens never logged
        )
        await self.runner.setup()
        site = web.TCPSite(self.runner, self.settings.bind_host, self.settings.port, backlog=512)
        await site.start()
        self.session = ClientSession(
            connector=TCPConnector(limit=64), timeout=ClientTimeout(total=self.wait_s)
        )
        sockets = getattr(site._server, "sockets", None) or []
        port: int = sockets[0].getsockname()[1] if sockets else self.settings.port
        return port

    def stop(self) -> None:
        if self.thread is None or not self.loop.is_running():
            return

        async def shutdown() -> None:
            if self.session is not None:
                await self.session.close()
            if self.runner is not None:
                await self.runner.cleanup()

        asyncio.run_coroutine_threadsafe(shutdown(), self.loop).result(timeout=10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)

    # -- guards -------------------------------------------------------------------------

    @web.middleware
    async def _guard(self, request: web.Request, handler: Any) -> web.StreamResponse:
        if request.content_length or request.body_exists:
            return self._respond(error(413, "too_large", "requests have no body"))
        authorization = request.headers.get("Authorization")
        if (
            authorization is None
            and COOKIE in request.cookies
            and request.path.startswith("/persons/")
        ):
            authorization = f"Bearer {request.cookies[COOKIE]}"
        if not self.tokens.allows(authorization):
            reply = error(401, "unauthorized", "a valid bearer token is required")
            reply.headers["WWW-Authenticate"] = 'Bearer realm="pulse"'
            return self._respond(reply)
        peer = self.tokens.required and HOPS_HEADER in request.headers
        if not peer:  # a forwarded request was limited where it came in
            wait = self.limiter.allow(request.remote or "?")
            if wait:
                retry = str(max(1, round(wait)))
                return self._respond(
                    error(429, "rate_limited", "too many requests", **{"Retry-After": retry})
                )
        person = request.match_info.get("id")
        if person is not None and (not person or len(person.encode()) > MAX_ID):
            return self._respond(error(400, "bad_id", f"a person id is 1 to {MAX_ID} bytes"))
        started = time.perf_counter()
        response: web.StreamResponse = await handler(request)
        response.headers.update(SECURITY_HEADERS)
        # how long this worker took (forwarding included): what the client saw beyond it is network
        response.headers["Server-Timing"] = (
            f"total;dur={(time.perf_counter() - started) * 1000:.2f}"
        )
        return response

    def _respond(self, reply: Reply) -> web.Response:
        headers = dict(reply.headers)
        if reply.served_by:
            headers[SERVED_BY] = reply.served_by
        return web.Response(
            status=reply.status, body=reply.raw, content_type="application/json", headers=headers
        )

    # -- routes -------------------------------------------------------------------------

    async def _person(self, request: web.Request) -> web.Response:
        return self._respond(
            await self.resolve(PERSON, request.match_info["id"], self._hops(request))
        )

    async def _triggers(self, request: web.Request) -> web.Response:
        return self._respond(
            await self.resolve(TRIGGERS, request.match_info["id"], self._hops(request))
        )

    async def _openapi(self, _request: web.Request) -> web.Response:
        return self._respond(Reply(200, dumps(openapi())))

    async def _page(self, request: web.Request) -> web.Response:
        person_id = request.match_info["id"]
        hops = self._hops(request)
        profile, triggers = await asyncio.gather(
            self.resolve(PERSON, person_id, hops), self.resolve(TRIGGERS, person_id, hops)
        )
        if profile.status != 200:
            body = page.error_page(person_id, profile.status, profile.body)
            headers = {k: v for k, v in profile.headers.items() if k == "Retry-After"}
            return web.Response(
                status=profile.status, text=body, content_type="text/html", headers=headers
            )
        recent = triggers.body.get("recent_triggers", []) if triggers.status == 200 else []
        html = page.render(profile.body, recent)
        return web.Response(
            text=html, content_type="text/html", headers={SERVED_BY: profile.served_by}
        )

    @staticmethod
    def _hops(request: web.Request) -> int:
        try:
            return int(request.headers.get(HOPS_HEADER, "0"))
        except ValueError:
            return MAX_HOPS

    # -- answering ----------------------------------------------------------------------

    async def resolve(self, kind: str, person_id: str, hops: int, *, merged: bool = False) -> Reply:
        partition = self.lookups.partition_of(person_id)
        if partition not in self.lookups.ready:
            return await self._forward(kind, person_id, partition, hops)
        try:
            answer = self.lookups.lookup(kind, person_id)  # the last commit, read here
        except Exception as exc:  # a layout change in the core, or a bug: say which, not a stack
            return error(500, "internal", f"{type(exc).__name__}: {exc}")
        return await self._answered(
            answer, kind, person_id, hops=hops, merged=merged, partition=partition
        )

    async def _answered(
        self, answer: Answer, kind: str, person_id: str, *, hops: int, merged: bool, partition: int
    ) -> Reply:
        if answer.status == "found":
            return Reply(200, answer.raw, self.instance_id)
        if answer.status == "unknown":
            return error(404, "not_found", f"no person {person_id!r}")
        if answer.status == "merged":
            user = answer.user
            if user == person_id or merged:  # one step: a user is never merged again
                return error(404, "not_found", f"no person {person_id!r}")
            reply = await self.resolve(kind, user, hops, merged=True)
            if reply.status == 200:
                reply.raw = dumps({"resolved_from": person_id, "merged": True, **reply.body})
            return reply
        return _unavailable(f"partition {partition} is moving to another worker")

    async def _forward(self, kind: str, person_id: str, partition: int, hops: int) -> Reply:
        owner = None if self.directory is None else self.directory.owner(partition)
        if (
            hops >= MAX_HOPS
            or owner is None
            or owner[0] == self.instance_id
            or self.session is None
        ):
            return _unavailable(f"partition {partition} is not ready on any worker yet")
        from urllib.parse import quote

        url = f"{owner[1]}/v1/persons/{quote(person_id, safe='')}"
        if kind == TRIGGERS:
            url += "/triggers"
        headers = {HOPS_HEADER: str(hops + 1)}
        if (auth := self.tokens.header()) is not None:
            headers["Authorization"] = auth
        try:
            async with self.session.get(url, headers=headers) as resp:
                raw = await resp.read()
                orjson.loads(raw)  # JSON, or a ValueError (a 503 here)
                reply = Reply(resp.status, raw, resp.headers.get(SERVED_BY, owner[0]))
                if "Retry-After" in resp.headers:
                    reply.headers["Retry-After"] = resp.headers["Retry-After"]
                return reply
        except (TimeoutError, OSError, ValueError) as exc:
            return _unavailable(
                f"the owner of partition {partition} did not answer ({type(exc).__name__})"
            )
        except Exception as exc:  # aiohttp's ClientError and friends
            return _unavailable(
                f"the owner of partition {partition} did not answer ({type(exc).__name__})"
            )


def start_api(
    settings: ApiSettings, lookups: Lookups, directory: Directory, instance_id: str
) -> ApiServer | None:
    """Start the API for ``pulse worker``; logs how it is reachable."""
    server = ApiServer(settings, lookups, directory, instance_id)
    port = server.start()
    if port is None:
        return None
    url = settings.url(port)
    directory.start(url)
    if settings.tokens:
        log.info("profile API on %s:%d (advertised as %s), bearer tokens required (%d configured)",
                 settings.bind_host, port, url, len(settings.tokens))  # fmt: skip
    else:
        log.warning("profile API on %s:%d only, without authentication: no tokens configured "
                    "(PULSE_API_TOKENS or PULSE_API_TOKENS_FILE)", LOCALHOST, port)  # fmt: skip
    return server
