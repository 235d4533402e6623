"""Confluent Schema Registry framing: ``00 | 4-byte big-endian schema id | Avro body``.

When ``PULSE_SCHEMA_REGISTRY_URL`` is set, records that start with the magic
byte 0 are decoded here: the writer schema is fetched by id through
confluent-kafka's :class:`~confluent_kafka.schema_registry.SchemaRegistryClient`
(once per id: parsed schemas are cached, and so are ids the registry does not
know) and the body is resolved against Pulse's reader schema
(``schemas/event.avsc``), so producers may use any compatible version.

Every failure is a :class:`~pipeline.errors.DecodeError`: ``bad_framing``
(shorter than the 5-byte header), ``unknown_schema_id``, ``registry_unavailable``
(the record goes to the DLQ and can be replayed once the registry is back),
``incompatible_schema``, ``truncated_avro`` or ``corrupt_avro``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from pipeline.contract.avro import Schema, hinted, load_schema, parse_schema, read_avro_body
from pipeline.errors import DecodeError

MAGIC = 0
HEADER_BYTES = 5
_MAX_UNKNOWN = 1_024

#: ``schema id -> schema JSON text``; raises ``LookupError`` for an unknown id
#: and ``ConnectionError`` when the registry cannot be asked.
SchemaFetcher = Callable[[int], str]


def frame(schema_id: int, body: bytes) -> bytes:
    """Registry framing of an Avro body written with schema ``schema_id``."""
    return bytes([MAGIC]) + schema_id.to_bytes(4, "big") + body


def client_fetcher(url: str, timeout_s: float = 5.0) -> SchemaFetcher:
    """A :data:`SchemaFetcher` over confluent-kafka's registry client."""
    from confluent_kafka.schema_registry import SchemaRegistryClient, SchemaRegistryError

    client = SchemaRegistryClient({"url": url, "timeout": timeout_s})

    def fetch(schema_id: int) -> str:
        try:
            schema = client.get_schema(schema_id)
        except SchemaRegistryError as exc:
            if exc.http_status_code == 404:
                raise LookupError(str(exc)) from exc
            raise ConnectionError(str(exc)) from exc
        except Exception as exc:  # requests/httpx transport errors
            raise ConnectionError(f"{type(exc).__name__}: {exc}") from exc
        if (schema.schema_type or "AVRO") != "AVRO":
            raise LookupError(f"schema {schema_id} is {schema.schema_type}, not AVRO")
        return str(schema.schema_str)

    return fetch


class RegistryDecoder:
    """``decoder(framed bytes) -> event record``, resolving writer schemas by id."""

    def __init__(
        self,
        url: str | None = None,
        *,
        fetch: SchemaFetcher | None = None,
        reader: Schema | None = None,
    ) -> None:
        if fetch is None:
            if not url:
                raise ValueError("give a registry url or a fetch function")
            fetch = client_fetcher(url)
        self.url = url
        self._fetch = fetch
        self._reader = reader or load_schema("event")
        self._writers: dict[int, Schema] = {}
        self._unknown: set[int] = set()

    def writer(self, schema_id: int) -> Schema:
        """The parsed writer schema for ``schema_id`` (fetched once, then cached)."""
        cached = self._writers.get(schema_id)
        if cached is not None:
            return cached
        if schema_id in self._unknown:
            raise DecodeError("unknown_schema_id", f"schema id {schema_id} is not in the registry")
        try:
            text = self._fetch(schema_id)
        except LookupError as exc:
            if len(self._unknown) < _MAX_UNKNOWN:
                self._unknown.add(schema_id)
            raise DecodeError(
                "unknown_schema_id", f"schema id {schema_id} is not in the registry ({exc})"
            ) from exc
        except ConnectionError as exc:
            raise DecodeError(
                "registry_unavailable", f"registry {self.url or ''} did not answer: {exc}"
            ) from exc
        try:
            schema = parse_schema(json.loads(text), f"registry:{schema_id}")
            hinted(schema)
        except Exception as exc:  # a schema fastavro cannot parse
            raise DecodeError("incompatible_schema", f"schema {schema_id}: {exc}") from exc
        self._writers[schema_id] = schema
        return schema

    def __call__(self, data: bytes) -> dict[str, Any]:
        if len(data) < HEADER_BYTES or data[0] != MAGIC:
            raise DecodeError("bad_framing", "registry framing needs 00 and a 4-byte schema id")
        writer = self.writer(int.from_bytes(data[1:HEADER_BYTES], "big"))
        record = read_avro_body(data, HEADER_BYTES, writer, self._reader)
        if not isinstance(record, dict):
            raise DecodeError("incompatible_schema", "the writer schema is not a record")
        return record
