"""Faust records and codecs for Pulse's outputs, for faust-streaming apps downstream.

Pulse writes its outputs as Avro single-object encoded records; these codecs
decode them (resolving older writer schemas) into typed ``faust.Record``
models, and encode them back, so a Faust app reads Pulse's topics like its own::

    import faust
    from pipeline.faust import Trigger, pulse_triggers

    app = faust.App("crm-sync", broker="kafka://localhost:9092")

    @app.agent(pulse_triggers(app))
    async def on_trigger(triggers):
        async for trigger in triggers:          # trigger: Trigger
            if trigger.rule == "checkout_abandoned":
                ...

``pulse_segments(app)`` and ``pulse_activations(app, "crm")`` do the same for
segment changes and a destination's activations. Topic names take the prefix
from ``PULSE_TOPIC_PREFIX`` (``pulse.`` by default) unless ``settings`` is
given. Keys are person ids (``str``). The codecs are registered under
``pulse-trigger``, ``pulse-segment-change`` and ``pulse-activation``.

``examples/faust_checkout_abandoned.py`` is a complete app (tested on the
broker in ``tests/integration/test_faust_example.py``).
"""

from typing import Any

import faust
from faust.serializers import codecs

from pipeline.config import Settings
from pipeline.contract.avro import decode_single_object, encode_single_object, load_schema

__all__ = [
    "Activation",
    "PulseAvroCodec",
    "SegmentChange",
    "Trigger",
    "pulse_activations",
    "pulse_segments",
    "pulse_triggers",
]


class PulseAvroCodec(codecs.Codec):
    """Avro single-object encoding with one of Pulse's schemas (``schemas/<name>.avsc``)."""

    def __init__(self, schema_name: str, **kwargs: Any) -> None:
        self.schema_name = schema_name
        super().__init__(schema_name=schema_name, **kwargs)

    def _loads(self, s: bytes) -> Any:
        return decode_single_object(s, self.schema_name)

    def _dumps(self, obj: Any) -> bytes:
        return encode_single_object(load_schema(self.schema_name), obj)


TRIGGER_CODEC = "pulse-trigger"
SEGMENT_CODEC = "pulse-segment-change"
ACTIVATION_CODEC = "pulse-activation"
codecs.register(TRIGGER_CODEC, PulseAvroCodec("trigger"))
codecs.register(SEGMENT_CODEC, PulseAvroCodec("segment_change"))
codecs.register(ACTIVATION_CODEC, PulseAvroCodec("activation"))


class Trigger(faust.Record, serializer=TRIGGER_CODEC, include_metadata=False):
    """A fired trigger rule (``schemas/trigger.avsc``)."""

    trigger_id: str
    rule: str
    person_id: str
    event_ids: list[str]
    event_time_ms: int
    context: dict[str, Any] = {}  # noqa: RUF012 - Faust copies field defaults per record


class SegmentChange(faust.Record, serializer=SEGMENT_CODEC, include_metadata=False):
    """A person entered or exited a segment (``schemas/segment_change.avsc``)."""

    change_id: str
    segment: str
    person_id: str
    change: str
    event_time_ms: int
    cause: str | None = None


class Activation(faust.Record, serializer=ACTIVATION_CODEC, include_metadata=False):
    """What a destination takes as is (``schemas/activation.avsc``)."""

    activation_id: str
    destination: str
    kind: str
    name: str
    person_id: str
    channel: str | None
    event_time_ms: int
    source_id: str
    payload: dict[str, Any] = {}  # noqa: RUF012 - Faust copies field defaults per record


def _topic(app: Any, name: str, model: type[Any], codec: str, settings: Settings | None) -> Any:
    settings = settings or Settings.from_env()
    return app.topic(settings.topic(name), key_type=str, value_type=model, value_serializer=codec)


def pulse_triggers(app: Any, settings: Settings | None = None) -> Any:
    """``pulse.triggers`` as a Faust topic of :class:`Trigger`."""
    return _topic(app, "triggers", Trigger, TRIGGER_CODEC, settings)


def pulse_segments(app: Any, settings: Settings | None = None) -> Any:
    """``pulse.segments`` as a Faust topic of :class:`SegmentChange`."""
    return _topic(app, "segments", SegmentChange, SEGMENT_CODEC, settings)


def pulse_activations(app: Any, destination: str, settings: Settings | None = None) -> Any:
    """``pulse.activations.<destination>`` as a Faust topic of :class:`Activation`."""
    return _topic(app, f"activations.{destination}", Activation, ACTIVATION_CODEC, settings)
