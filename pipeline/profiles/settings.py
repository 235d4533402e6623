"""Settings of the profile API, read once from the environment (``pipeline.config`` style).

``PULSE_API_PORT``         port of the worker's profile API (default 9110; 0 = off)
``PULSE_API_HOST``         address to bind when tokens are configured (default ``0.0.0.0``);
                           without tokens the API binds ``127.0.0.1`` whatever this says
``PULSE_API_TOKENS``       comma-separated bearer tokens accepted by the API
``PULSE_API_TOKENS_FILE``  a file of bearer tokens, one a line (``#`` comments)
``PULSE_API_ADVERTISE``    the URL other workers forward to (default ``http://<host>:<port>``,
                           with the host name, or ``127.0.0.1`` when bound there)
``PULSE_API_RATE_LIMIT``   requests a second per client address (default 1000; burst the same)
``PULSE_API_WAIT_MS``      a forwarded lookup's wait for its owner before a 503 (default 2000)
``PULSE_API_HISTORY``      recent triggers and suppressions kept per person (default 50)
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from pipeline.config import _int_env
from pipeline.errors import ConfigError

LOCALHOST = "127.0.0.1"
#: With tokens configured the API listens on every interface unless PULSE_API_HOST says.
ANY = "0.0.0.0"  # noqa: S104


def _tokens(env: Mapping[str, str]) -> tuple[str, ...]:
    tokens = [t.strip() for t in env.get("PULSE_API_TOKENS", "").split(",")]
    path = env.get("PULSE_API_TOKENS_FILE", "").strip()
    if path:
        try:
            lines = Path(path).read_text().splitlines()
        except OSError as exc:
            raise ConfigError(
                f"PULSE_API_TOKENS_FILE={path!r}: cannot read it ({exc.strerror})"
            ) from None
        tokens += [line.strip() for line in lines if not line.strip().startswith("#")]
    tokens = [t for t in tokens if t]
    for t in tokens:
        if len(t) < 16:
            # the message must not contain the token
            raise ConfigError("a profile API token is shorter than 16 characters")
    return tuple(dict.fromkeys(tokens))


@dataclass(frozen=True)
class ApiSettings:
    """The profile API of one worker; build with :meth:`from_env`."""

    port: int = 9110
    host: str = ANY
    tokens: tuple[str, ...] = field(default=(), repr=False)  # never in a repr or a log
    advertise: str = ""
    rate_limit: int = 1000
    wait_ms: int = 2000
    history: int = 50

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> ApiSettings:
        env = os.environ if env is None else env
        return cls(
            port=_int_env(env, "PULSE_API_PORT", 9110, what="a port"),
            host=env.get("PULSE_API_HOST", "").strip() or ANY,
            tokens=_tokens(env),
            advertise=env.get("PULSE_API_ADVERTISE", "").strip().rstrip("/"),
            rate_limit=_int_env(env, "PULSE_API_RATE_LIMIT", 1000, what="requests", least=1),
            wait_ms=_int_env(env, "PULSE_API_WAIT_MS", 2000, least=1),
            history=_int_env(env, "PULSE_API_HISTORY", 50, what="entries", least=1),
        )

    @property
    def bind_host(self) -> str:
        """Without tokens, only this machine can reach the API."""
        return self.host if self.tokens else LOCALHOST

    def url(self, port: int) -> str:
        """What other workers forward to (``port``: the one actually bound)."""
        if self.advertise:
            return self.advertise
        host = LOCALHOST if self.bind_host == LOCALHOST else socket.gethostname()
        return f"http://{host}:{port}"
