"""Which partition a key lands on: Kafka's default partitioner, in pure Python.

The Java client, aiokafka and librdkafka's ``murmur2_random`` all place a keyed
record on ``(murmur2(key) & 0x7fffffff) % partitions``, with Kafka's 32-bit
murmur2 (seed ``0x9747b28c``). The runtime uses it to decide whether an event
is processed where it lands or re-keyed to its person's partition, and
``pulse replay`` uses it to model the worker's per-partition clocks::

    >>> partition_for(b"user-1", 4) == partition_for(b"user-1", 4)
    True
"""

from __future__ import annotations

_M = 0x5BD1E995
_SEED = 0x9747B28C
_MASK = 0xFFFFFFFF


def murmur2(data: bytes) -> int:
    """Kafka's murmur2 hash of ``data`` as an unsigned 32-bit integer."""
    length = len(data)
    h = (_SEED ^ length) & _MASK
    end = length - length % 4
    for i in range(0, end, 4):
        k = int.from_bytes(data[i : i + 4], "little")
        k = (k * _M) & _MASK
        k ^= k >> 24
        k = (k * _M) & _MASK
        h = ((h * _M) & _MASK) ^ k
    rest = length % 4
    if rest == 3:
        h ^= data[end + 2] << 16
    if rest >= 2:
        h ^= data[end + 1] << 8
    if rest >= 1:
        h ^= data[end]
        h = (h * _M) & _MASK
    h ^= h >> 13
    h = (h * _M) & _MASK
    h ^= h >> 15
    return h


_HASHES: dict[bytes, int] = {}
#: Keys whose hash is remembered (persons repeat: a dict lookup beats hashing again).
_REMEMBERED = 200_000


def partition_for(key: bytes, partitions: int) -> int:
    """The partition of ``key`` among ``partitions`` (Kafka's default for keyed records)."""
    h = _HASHES.get(key)
    if h is None:
        if len(_HASHES) >= _REMEMBERED:
            _HASHES.clear()
        h = _HASHES[key] = murmur2(key) & 0x7FFFFFFF
    return h % partitions
