"""``pulse profile ID``: ask any worker's profile API, print the JSON it answers.

``PULSE_API_URL`` (default ``http://127.0.0.1:9110``) names the worker; the
token is ``PULSE_API_TOKEN``, else the first of the workers' own
``PULSE_API_TOKENS`` / ``PULSE_API_TOKENS_FILE``.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from pipeline.profiles.settings import ApiSettings

DEFAULT_URL = "http://127.0.0.1:9110"


def fetch(
    person_id: str,
    *,
    url: str | None = None,
    triggers: bool = False,
    env: Mapping[str, str] | None = None,
    timeout_s: float = 10.0,
) -> tuple[int, dict[str, Any]]:
    """(HTTP status, JSON body) of ``GET /v1/persons/{id}[/triggers]``."""
    env = os.environ if env is None else env
    base = (url or env.get("PULSE_API_URL", "").strip() or DEFAULT_URL).rstrip("/")
    path = f"/v1/persons/{quote(person_id, safe='')}" + ("/triggers" if triggers else "")
    token = env.get("PULSE_API_TOKEN", "").strip() or next(
        iter(ApiSettings.from_env(env).tokens), ""
    )
    if not base.startswith(("http://", "https://")):
        raise ValueError(f"the profile API's URL must be http(s): {base!r}")
    request = urllib.request.Request(base + path, headers={"Accept": "application/json"})  # noqa: S310
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as resp:  # noqa: S310
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        try:
            return err.code, json.loads(err.read())
        except ValueError:
            return err.code, {"error": {"code": "http", "message": str(err)}}
