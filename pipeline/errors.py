"""Pulse's one exception tree.

::

    PulseError
    ├── ConfigError            bad settings, topology or command-line input
    ├── KafkaLauncherError     the local broker cannot be started, stopped or found
    ├── BrokerUnavailable      no Kafka cluster answers at the configured address
    ├── ModelError             a prediction model that cannot be loaded, trained or published
    └── DecodeError            a record that cannot be turned into an event
        (carries a machine-readable ``reason`` for the dead-letter topic)

Errors from Kafka clients and Avro libraries are translated at the edge with
``raise ... from exc`` so callers only ever need to catch :class:`PulseError`.
"""

from __future__ import annotations


class PulseError(Exception):
    """Root of every error Pulse raises on purpose."""


class ConfigError(PulseError):
    """Invalid configuration, topology file or command-line input."""


class KafkaLauncherError(PulseError):
    """The local development broker could not be started, stopped or inspected."""


class BrokerUnavailable(PulseError):
    """No Kafka broker answered at the configured bootstrap servers."""


class ModelError(PulseError):
    """A prediction model that cannot be loaded, trained or published (``pulse train``)."""


class DecodeError(PulseError):
    """A record could not be decoded or failed validation.

    ``reason`` is a short, stable, machine-readable code (``bad_framing``,
    ``missing_id``, ...) used as the dead-letter topic's typed reason; the
    message is for humans.
    """

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
