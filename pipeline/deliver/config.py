"""Destinations in YAML, validated on load with the file, line and field in every error.

A destinations file (or a ``destinations:`` section beside a topology's
triggers and segments)::

    destinations:
      crm:
        type: webhook
        url: https://crm.example.com/hooks/pulse
        secret: {env: CRM_WEBHOOK_SECRET}     # or {file: /run/secrets/crm}; never the secret
        headers: {X-Team: growth, Authorization: {env: CRM_TOKEN}}
        format: pulse                         # pulse | segment | slack
        timeout: 10s
        concurrency: 8                        # requests in flight at most
        rate_limit: 50                        # requests per second (absent: no limit)
        batch: {max: 100, wait: 200ms}        # or `batch: 1`: one activation per request
        retry: {schedule: [0s, 5s, 5m, 30m, 2h, 5h, 10h, 10h], max_age: 2d}
        order: per_person                     # or unordered

An error reads like a topology's::

    deliver.yaml:7: destinations.crm.timeout: expected a duration like 30s, 5m or 500ms,
        got 'soon'

Secrets are resolved when the file is loaded: a missing variable or file is an
error naming the line that refers to it. A secret value may hold several
``whsec_`` secrets separated by spaces (a key rotation): each request then
carries one signature per secret.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from pipeline.deliver.signing import parse_secret
from pipeline.errors import ConfigError, PulseError
from pipeline.topology.nodes import NodeReader

FORMATS = ("pulse", "segment", "slack")
ORDERS = ("per_person", "unordered")
#: The common webhook services' schedule: the first attempt at once, then 7 retries.
DEFAULT_SCHEDULE_MS = (0, 5_000, 300_000, 1_800_000, 7_200_000, 18_000_000, 36_000_000,
                       36_000_000)  # fmt: skip
DEFAULT_MAX_AGE_MS = 2 * 86_400_000
#: Names that would collide with Pulse's own topics (``pulse.activations.dlq``).
RESERVED = frozenset({"dlq"})

_NAME = re.compile(r"^[A-Za-z0-9_-]+$")
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)\s*$")
_UNIT_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000}
_KEYS = {"type", "url", "headers", "secret", "format", "timeout", "concurrency", "rate_limit",
         "batch", "retry", "order", "description"}  # fmt: skip
#: Top-level keys a topology file may have beside ``destinations``.
_TOPOLOGY_KEYS = {"version", "name", "description", "events", "triggers", "segments", "caps",
                  "identity"}  # fmt: skip


@dataclass(frozen=True)
class Batch:
    """At most ``max_records`` activations per request, waiting at most ``wait_ms`` to fill it."""

    max_records: int = 1
    wait_ms: int = 0


@dataclass(frozen=True)
class Retry:
    """Delays before each attempt (the first usually 0) and the age after which to give up."""

    schedule_ms: tuple[int, ...] = DEFAULT_SCHEDULE_MS
    max_age_ms: int = DEFAULT_MAX_AGE_MS

    @property
    def attempts(self) -> int:
        return len(self.schedule_ms)


@dataclass(frozen=True)
class Destination:
    """One webhook destination, with its secrets already resolved."""

    name: str
    url: str
    secrets: tuple[bytes, ...] = ()
    headers: tuple[tuple[str, str], ...] = ()
    format: str = "pulse"
    timeout_ms: int = 10_000
    concurrency: int = 8
    rate_limit: float | None = None
    batch: Batch = field(default_factory=Batch)
    retry: Retry = field(default_factory=Retry)
    order: str = "per_person"
    type: str = "webhook"

    @property
    def per_person(self) -> bool:
        return self.order == "per_person"

    def __repr__(self) -> str:  # never print secrets or header values
        return f"Destination({self.name!r}, {self.url!r}, format={self.format!r})"


@dataclass(frozen=True)
class Destinations:
    """Every destination of a file, by name."""

    by_name: Mapping[str, Destination]
    source: str = "<none>"

    def __iter__(self) -> Any:
        return iter(self.by_name.values())

    def __len__(self) -> int:
        return len(self.by_name)

    def __getitem__(self, name: str) -> Destination:
        return self.by_name[name]


class _DestinationLoader(NodeReader):
    """The node reader, plus what destinations need."""

    def __init__(self, path: str, text: str, env: Mapping[str, str], base: Path) -> None:
        super().__init__(path, text)
        self.env = env
        self.base = base

    def millis(self, node: yaml.Node, where: str, *, zero: bool = False) -> int:
        value = self.scalar(node, where)
        if isinstance(value, int) and not isinstance(value, bool):
            if value > 0 or (zero and value == 0):
                return value
            raise self.fail(node, where, "a duration like 30s, 5m or 500ms", value)
        match = _DURATION.match(str(value))
        if match:
            ms = int(float(match.group(1)) * _UNIT_MS[match.group(2)])
            if ms > 0 or zero:
                return ms
        raise self.fail(node, where, "a duration like 30s, 5m or 500ms", value)

    def number(self, node: yaml.Node, where: str) -> float:
        value = self.scalar(node, where)
        if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
            raise self.fail(node, where, "a number > 0", value)
        return float(value)

    def reference(self, node: yaml.Node, where: str) -> str:
        """``{env: NAME}`` or ``{file: PATH}``: the value it refers to, stripped."""
        if not isinstance(node, yaml.MappingNode):
            raise self.fail(
                node, where, "a reference {env: NAME} or {file: PATH}, never the secret itself"
            )
        spec = self.mapping(node, where)
        if len(spec) != 1 or next(iter(spec)) not in ("env", "file"):
            raise self.fail(node, where, "exactly one of env or file")
        kind, target = next(iter(spec.items()))
        name = self.string(target, f"{where}.{kind}")
        if kind == "env":
            value = self.env.get(name)
            if value is None or not value.strip():
                raise self.fail(target, f"{where}.env", f"environment variable {name} to be set")
            return value.strip()
        path = Path(name) if Path(name).is_absolute() else self.base / name
        try:
            return path.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise self.fail(target, f"{where}.file", f"a readable file ({exc.strerror})") from exc

    def secrets(self, node: yaml.Node, where: str) -> tuple[bytes, ...]:
        nodes = list(node.value) if isinstance(node, yaml.SequenceNode) else [node]
        keys: list[bytes] = []
        for i, item in enumerate(nodes):
            here = where if len(nodes) == 1 and node is item else f"{where}[{i}]"
            for text in self.reference(item, here).split():
                try:
                    keys.append(parse_secret(text))
                except PulseError as exc:
                    raise self.fail(item, here, f"whsec_<base64> secrets ({exc})") from None
        return tuple(keys)

    def headers(self, node: yaml.Node, where: str) -> tuple[tuple[str, str], ...]:
        out = []
        for name, value in self.mapping(node, where).items():
            here = f"{where}.{name}"
            if name.lower().startswith("webhook-") or name.lower() in ("content-type", "host"):
                raise self.fail(value, here, "a header Pulse does not set itself")
            if isinstance(value, yaml.MappingNode):
                out.append((name, self.reference(value, here)))
            else:
                out.append((name, str(self.scalar(value, here))))
        return tuple(out)

    def batch(self, node: yaml.Node, where: str) -> Batch:
        if isinstance(node, yaml.ScalarNode):
            return Batch(self.integer(node, where, 1), 0)
        spec = self.mapping(node, where)
        self.check_keys(spec, where, {"max", "wait"})
        records = self.integer(spec["max"], f"{where}.max", 1) if "max" in spec else 1
        wait = self.millis(spec["wait"], f"{where}.wait", zero=True) if "wait" in spec else 0
        return Batch(records, wait)

    def retry(self, node: yaml.Node, where: str) -> Retry:
        spec = self.mapping(node, where)
        self.check_keys(spec, where, {"schedule", "max_age"})
        schedule: tuple[int, ...] = DEFAULT_SCHEDULE_MS
        if "schedule" in spec:
            items = self._seq(spec["schedule"], f"{where}.schedule")
            if not items:
                raise self.fail(spec["schedule"], f"{where}.schedule", "at least one delay")
            schedule = tuple(
                self.millis(n, f"{where}.schedule[{i}]", zero=True) for i, n in enumerate(items)
            )
        max_age = DEFAULT_MAX_AGE_MS
        if "max_age" in spec:
            max_age = self.millis(spec["max_age"], f"{where}.max_age")
        return Retry(schedule, max_age)

    def choice(self, node: yaml.Node, where: str, options: tuple[str, ...]) -> str:
        value = self.string(node, where)
        if value not in options:
            raise self.fail(node, where, " or ".join(options), value)
        return value

    def destination(self, name: str, node: yaml.Node) -> Destination:
        where = f"destinations.{name}"
        if not _NAME.match(name) or name in RESERVED:
            raise self.fail(node, where, "a name of letters, digits, _ and - (not dlq)", name)
        spec = self.mapping(node, where)
        self.check_keys(spec, where, _KEYS)
        kind = self.choice(self._need(spec, "type", node, where), f"{where}.type", ("webhook",))
        url = self.string(self._need(spec, "url", node, where), f"{where}.url")
        if not re.match(r"^https?://[^/\s]+", url):
            raise self.fail(spec["url"], f"{where}.url", "an http:// or https:// URL", url)
        kwargs: dict[str, Any] = {}
        if "secret" in spec:
            kwargs["secrets"] = self.secrets(spec["secret"], f"{where}.secret")
        if "headers" in spec:
            kwargs["headers"] = self.headers(spec["headers"], f"{where}.headers")
        if "format" in spec:
            kwargs["format"] = self.choice(spec["format"], f"{where}.format", FORMATS)
        if "timeout" in spec:
            kwargs["timeout_ms"] = self.millis(spec["timeout"], f"{where}.timeout")
        if "concurrency" in spec:
            kwargs["concurrency"] = self.integer(spec["concurrency"], f"{where}.concurrency", 1)
        if "rate_limit" in spec:
            kwargs["rate_limit"] = self.number(spec["rate_limit"], f"{where}.rate_limit")
        if "batch" in spec:
            kwargs["batch"] = self.batch(spec["batch"], f"{where}.batch")
        if "retry" in spec:
            kwargs["retry"] = self.retry(spec["retry"], f"{where}.retry")
        if "order" in spec:
            kwargs["order"] = self.choice(spec["order"], f"{where}.order", ORDERS)
        return Destination(name=name, url=url, type=kind, **kwargs)


def load_destinations(
    path: str | Path, text: str | None = None, env: Mapping[str, str] | None = None
) -> Destinations:
    """Load and validate a destinations file (raises :class:`ConfigError`).

    The file has a top-level ``destinations:`` mapping; the other top-level keys
    of a topology file are allowed beside it, so one file can hold both.
    """
    path = str(path)
    if text is None:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"{path}: cannot read destinations file: {exc.strerror}") from exc
    ld = _DestinationLoader(path, text, os.environ if env is None else env, Path(path).parent)
    top = ld.mapping(ld.root, "file")
    ld.check_keys(top, "file", {"destinations"} | _TOPOLOGY_KEYS)
    if "destinations" not in top:
        raise ld.fail(ld.root, "destinations", "a `destinations:` mapping (it is required)")
    found = {
        name: ld.destination(name, node)
        for name, node in ld.mapping(top["destinations"], "destinations").items()
    }
    if not found:
        raise ld.fail(top["destinations"], "destinations", "at least one destination")
    return Destinations(found, path)
