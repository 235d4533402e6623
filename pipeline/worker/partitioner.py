"""Which partition a key lands on: Kafka's default partitioner, in pure Python.

The Java client, aiokafka and librdkafka's ``murmur2_random`` all place a keyed
record on ``(murmur2(key) & 0x7fffffff) % partitions``, with Kafka's 32-bit
murmur2 (seed ``0x9747b28c``). The runtime uses it to decide whether an event
is processed where it lands or re-keyed to its person's partition, and
``pulse replay`` uses it to model the worker's per-partition clocks::

    >>> partition_for(b"user-1", 4) == partition_for(b"user-1", 4)
    True

The functions live in :mod:`pipeline.core.partitioning`, so that the compiled
core runs them (``pulse replay`` asks once per event).
"""

from __future__ import annotations

from pipeline.core.partitioning import murmur2, partition_for

__all__ = ["murmur2", "partition_for"]
