"""Record keys and the partition a key lands on (Kafka's default partitioner).

:func:`partition_key` is the key ``pulse produce`` and the SDK give an event
(re-exported as :func:`pipeline.contract.produce.partition_key`);
:func:`partition_for` is the partition of a key, as the Java client, aiokafka
and librdkafka's ``murmur2_random`` place it (re-exported by
:mod:`pipeline.worker.partitioner`, which documents it). In the core so that
the compiled core runs them: ``pulse replay`` asks both once per event.
"""

from __future__ import annotations

from pipeline.core.events import Event

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


def partition_key(event: Event) -> bytes:
    """Key of a raw event: the device's anonymous id when there is one.

    Keying by anonymous id keeps everything a device does, including the
    identify that links it to a user, in order on one partition; events with
    only a user id are keyed by it.
    """
    return (event.anonymous_id or event.user_id or "").encode()
