"""One RocksDB store per assigned partition, backed by a compacted changelog.

A :class:`PartitionStore` holds everything partition ``p`` knows: person state
(keys ``p<person id>``), identity links of the source partition (``l<anonymous
id>``), its duplicate window (``d<seq>``, ``seen.py``) and the partition's clocks
(``m<name>``). Writes go to a **write cache**
first; at a commit the cache is sent to the changelog (``<app>-state-changelog``,
partition ``p``) inside the Kafka transaction that also carries the batch's
outputs and input offsets, and only once that transaction committed is it
written to RocksDB, in one write batch together with the changelog offset it
reflects (the *checkpoint*). So the local database never holds a write that
Kafka did not commit, and a person is written once per commit however many
events changed them.

**Restore.** On assignment the store reads its changelog partition from the
checkpoint on (``read_committed``: aborted writes are never seen) up to its
end. A store that never saw the partition reads it all; one that was closed
cleanly reads nothing.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Iterator, MutableMapping
from pathlib import Path
from typing import Any, cast

from rocksdict import Options, Rdict, WriteBatch

from pipeline.core.engine import PersonState
from pipeline.worker.records import decode_state, encode_state

log = logging.getLogger(__name__)

PERSON, LINK, META = b"p", b"l", b"m"
#: A source partition's duplicate-window journal (``seen.py``: ``d<seq>``).
SEEN = b"d"
#: The profile API's per-person history (``pipeline/profiles/history.py``).
HISTORY = b"h"
#: Decoded person states kept between commits (beyond it they are read again).
MAX_DECODED = 20_000
_CHECKPOINT = b"\x00checkpoint"


def _options() -> Options:
    opts = Options(raw_mode=True)
    opts.create_if_missing(True)
    return opts


class PartitionStore:
    """RocksDB for one partition, with a write cache flushed at each commit."""

    def __init__(self, path: Path, partition: int) -> None:
        path.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.partition = partition
        self.db = Rdict(str(path), _options())
        self.cache: dict[bytes, bytes | None] = {}

    # -- reads and writes ------------------------------------------------------------

    def get(self, key: bytes) -> bytes | None:
        cache = self.cache  # once: the profile API may read while a commit swaps it (applied)
        if key in cache:
            return cache[key]
        value = self.db.get(key)
        return None if value is None else bytes(value)

    def read_committed(self, keys: list[bytes]) -> list[bytes | None]:
        """The last commit's values of ``keys``, in one consistent multi-get (any thread)."""
        return cast(list[bytes | None], self.db.get(cast(Any, keys)))

    def put(self, key: bytes, value: bytes | None) -> None:
        """Write (``None`` deletes) in the cache, until the next commit."""
        self.cache[key] = value

    def scan(self, prefix: bytes) -> Iterator[tuple[bytes, bytes]]:
        """Committed and cached entries whose key starts with ``prefix`` (key without it)."""
        seen = set()
        for key, value in self.cache.items():
            if key.startswith(prefix):
                seen.add(key)
                if value is not None:
                    yield key[len(prefix) :], value
        for raw_key, raw_value in cast(Any, self.db).items(from_key=prefix):
            name = bytes(raw_key)
            if not name.startswith(prefix):
                break
            if name not in seen:
                yield name[len(prefix) :], bytes(raw_value)

    # -- commits -------------------------------------------------------------------

    @property
    def checkpoint(self) -> int:
        """The changelog offset the database reflects (-1: none)."""
        raw = self.db.get(_CHECKPOINT)
        return -1 if raw is None else int(bytes(raw))

    def take_cache(self) -> dict[bytes, bytes | None]:
        """The writes since the last commit (kept until :meth:`applied` or :meth:`discard`)."""
        return self.cache

    def applied(self, changelog_offset: int | None) -> None:
        """The cache's transaction committed: write it to RocksDB with the checkpoint."""
        batch = WriteBatch(raw_mode=True)
        for key, value in self.cache.items():
            if value is None:
                batch.delete(key)
            else:
                batch.put(key, value)
        if changelog_offset is not None:
            batch.put(_CHECKPOINT, str(changelog_offset).encode())
        self.db.write(batch)
        self.cache = {}

    def discard(self) -> None:
        """The transaction aborted: forget the cache (RocksDB holds the last commit)."""
        self.cache = {}

    def restore_records(self, records: list[tuple[int, bytes, bytes | None]]) -> None:
        """Changelog records ``(offset, key, value)`` read back on assignment, in one write."""
        if not records:
            return
        batch = WriteBatch(raw_mode=True)
        for _offset, key, value in records:
            if value is None:
                batch.delete(key)
            else:
                batch.put(key, value)
        batch.put(_CHECKPOINT, str(records[-1][0]).encode())
        self.db.write(batch)

    def wipe(self) -> None:
        """Drop the local copy (it is ahead of the changelog: restore from scratch)."""
        self.db.close()
        shutil.rmtree(self.path, ignore_errors=True)
        self.path.mkdir(parents=True, exist_ok=True)
        self.db = Rdict(str(self.path), _options())
        self.cache = {}

    def close(self) -> None:
        self.cache = {}
        self.db.close()


class PersonStates:
    """Person state in a :class:`PartitionStore`: the core's ``PersonStore``.

    Between commits a person's state is kept decoded and is encoded once, at
    the commit (:meth:`flush`): decoding and encoding on every event would cost
    more than the event. The core changes a loaded state in place, so an event
    that fails half-way could leave part of its change behind: then the worker
    aborts the transaction, goes back to the last commit and processes the
    records again with ``careful`` on, which encodes at every save so a load
    sees exactly what the last save stored (``loop.py``).
    """

    def __init__(self, store: PartitionStore) -> None:
        self.store = store
        self.careful = False
        self.objects: dict[str, PersonState | None] = {}
        self.dirty: set[str] = set()

    def load(self, person_id: str) -> PersonState | None:
        if person_id in self.objects:
            return self.objects[person_id]
        raw = self.store.get(PERSON + person_id.encode())
        state = None if raw is None else decode_state(raw)
        if not self.careful:
            self.objects[person_id] = state
        return state

    def save(self, person_id: str, state: PersonState | None) -> None:
        if self.careful:
            key = PERSON + person_id.encode()
            self.store.put(key, None if state is None else encode_state(state))
        else:
            self.objects[person_id] = state
            self.dirty.add(person_id)

    def flush(self) -> None:
        """Encode what changed since the last commit into the store's write cache."""
        for person_id in self.dirty:
            state = self.objects[person_id]
            key = PERSON + person_id.encode()
            self.store.put(key, None if state is None else encode_state(state))
        self.dirty.clear()
        if len(self.objects) > MAX_DECODED:
            self.objects.clear()

    def items(self) -> list[tuple[str, PersonState]]:
        return [(k.decode(), decode_state(v)) for k, v in self.store.scan(PERSON)]

    def peek(self, person_id: str) -> PersonState | None:
        """The person's current state, not cached (the profile API reads it; do not change it)."""
        objects = self.objects
        if person_id in objects:
            return objects[person_id]
        raw = self.store.get(PERSON + person_id.encode())
        return None if raw is None else decode_state(raw)


class Links(MutableMapping[str, str]):
    """The source partition's identity links (anonymous id -> user id) for the Stitcher."""

    def __init__(self, store: PartitionStore) -> None:
        self.store = store

    def __getitem__(self, key: str) -> str:
        raw = self.store.get(LINK + key.encode())
        if raw is None:
            raise KeyError(key)
        return raw.decode()

    def __setitem__(self, key: str, value: str) -> None:
        self.store.put(LINK + key.encode(), value.encode())

    def __delitem__(self, key: str) -> None:
        if self.store.get(LINK + key.encode()) is None:
            raise KeyError(key)
        self.store.put(LINK + key.encode(), None)

    def __iter__(self) -> Iterator[str]:
        return (k.decode() for k, _ in self.store.scan(LINK))

    def items(self) -> Iterator[tuple[str, str]]:  # type: ignore[override]
        return ((k.decode(), v.decode()) for k, v in self.store.scan(LINK))

    def __len__(self) -> int:
        return sum(1 for _ in self.store.scan(LINK))


def meta_key(name: str) -> bytes:
    return META + name.encode()


def changelog_key_ok(key: Any) -> bool:
    """A changelog record's key is one of the store's namespaces."""
    return isinstance(key, bytes) and key[:1] in (PERSON, LINK, META, SEEN, HISTORY)
