"""The public surface is what ``pipeline/__init__.py`` re-exports; pin it."""

from __future__ import annotations

import ast
from pathlib import Path

import pipeline
from pipeline.errors import (
    BrokerUnavailable,
    ConfigError,
    DecodeError,
    KafkaLauncherError,
    PulseError,
)

CORE = Path(pipeline.__file__).parent / "core"


def test_all_is_pinned() -> None:
    assert sorted(pipeline.__all__) == [
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
    for name in pipeline.__all__:
        assert hasattr(pipeline, name), name


def test_one_error_tree() -> None:
    for err in (BrokerUnavailable, ConfigError, DecodeError, KafkaLauncherError):
        assert issubclass(err, PulseError)
    assert DecodeError("bad_framing", "x").reason == "bad_framing"


def test_core_imports_no_kafka_client_and_no_faust() -> None:
    banned = {"faust", "confluent_kafka", "aiokafka", "mode"}
    for path in CORE.rglob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            else:
                continue
            for name in names:
                assert name.split(".")[0] not in banned, f"{path.name} imports {name}"
