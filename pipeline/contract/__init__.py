"""The event contract and the ways in: what is on the wire, and putting events there.

Owns: ``avro.py`` the schemas in ``schemas/`` (every version), the
single-object encoding and fingerprints; ``registry.py`` Confluent Schema
Registry framing; ``wire.py`` decoding ``pulse.events`` records (three wire
formats, detected per record); ``topics.py`` every topic's name, key and
schema, and creating them; ``produce.py`` ``pulse produce`` (JSON lines, CSV,
synthetic) and the producer settings the SDK shares.

May import: :mod:`pipeline.core` (the event type and its validation, the
core's Avro body reader), :mod:`pipeline.config`, :mod:`pipeline.errors`.
Users reach it through :mod:`pipeline.sdk`, :mod:`pipeline.consume` and
:mod:`pipeline.faust`.
"""
