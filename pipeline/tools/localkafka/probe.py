"""Is a Kafka cluster there? A metadata request answered, not merely an open port."""

from __future__ import annotations

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient

from pipeline.errors import BrokerUnavailable


def wait_for_broker(bootstrap: str, timeout_s: float) -> None:
    """Return once a broker at ``bootstrap`` answers a metadata request.

    Raises :class:`BrokerUnavailable` after ``timeout_s`` seconds, naming the
    address and the client's last connection error.
    """
    probe = BrokerProbe(bootstrap)
    if not probe.answers(timeout_s):
        raise BrokerUnavailable(
            f"no Kafka broker answered at {bootstrap} within {timeout_s:g} s "
            f"({probe.last_error}); start one with `pulse kafka start` "
            "or set KAFKA_BOOTSTRAP_SERVERS"
        )


class BrokerProbe:
    """One admin client, asked for metadata repeatedly; remembers the last error.

    ``answers(timeout_s)`` is True once a metadata request succeeds: the broker
    is ready for clients, which an open port alone does not prove.
    """

    def __init__(self, bootstrap: str) -> None:
        self.last_error = "no error reported"
        try:
            self._client = AdminClient(
                {
                    "bootstrap.servers": bootstrap,
                    "log_level": 0,  # errors reach us via error_cb, not as stderr noise
                    "error_cb": self._on_error,
                    "reconnect.backoff.max.ms": 500,  # default 10 s would delay readiness
                }
            )
        except (KafkaException, ValueError, TypeError) as exc:
            raise BrokerUnavailable(f"bad Kafka bootstrap address {bootstrap!r}: {exc}") from exc

    def _on_error(self, err: KafkaError) -> None:
        if err.code() != KafkaError._ALL_BROKERS_DOWN:  # the transport error says more
            self.last_error = err.str()

    def answers(self, timeout_s: float) -> bool:
        """Ask for metadata, waiting up to ``timeout_s``; False on timeout or refusal."""
        try:
            self._client.list_topics(timeout=max(timeout_s, 0.1))
        except KafkaException:  # timeout or transport failure
            self._client.poll(0)  # runs error_cb with what went wrong
            return False
        return True
