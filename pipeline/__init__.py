"""Pulse: turn a Kafka stream of raw behavioral events into triggers, in real time.

The public API is re-exported here; everything else is private to the package
(the layout of the subpackages: docs/architecture.md).
"""

from pipeline.config import Settings
from pipeline.core.absence import AbsenceRule, trigger_id
from pipeline.core.clock import PartitionClock
from pipeline.core.engine import MemoryStore, Processor
from pipeline.core.events import Event, canonical_event_name, event_from_json
from pipeline.core.outputs import Output
from pipeline.errors import (
    BrokerUnavailable,
    ConfigError,
    DecodeError,
    KafkaLauncherError,
    PulseError,
)

__all__ = [
    "AbsenceRule",
    "BrokerUnavailable",
    "ConfigError",
    "DecodeError",
    "Event",
    "KafkaLauncherError",
    "MemoryStore",
    "Output",
    "PartitionClock",
    "Processor",
    "PulseError",
    "Settings",
    "canonical_event_name",
    "event_from_json",
    "trigger_id",
]
