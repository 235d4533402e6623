"""Reading the RocksDB state a system left behind (after it stopped): keys, values, bytes."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

from rocksdict import AccessType, Options, Rdict


def _db_dirs(root: Path) -> list[Path]:
    """Directories holding a RocksDB database (they contain a CURRENT file)."""
    return sorted({p.parent for p in root.rglob("CURRENT")}) if root.exists() else []


def items(root: Path, cf: str | None = None) -> Iterator[tuple[Path, bytes, bytes]]:
    """Every (db dir, key, value) under ``root`` in column family ``cf`` (default: default)."""
    for path in _db_dirs(root):
        opts = Options(raw_mode=True)
        try:
            names = Rdict.list_cf(str(path), opts)
        except Exception:
            names = ["default"]
        want = cf or "default"
        if want not in names:
            continue
        cfs = dict.fromkeys(names, opts)
        db = Rdict(str(path), options=opts, column_families=cfs, access_type=AccessType.read_only())
        try:
            handle = db if want == "default" else db.get_column_family(want)
            for k, v in handle.items():
                yield path, bytes(k), bytes(v)
        finally:
            db.close()


def faust_counts(root: Path) -> dict[bytes, int]:
    return {k: int(json.loads(v)) for _p, k, v in items(root) if not k.startswith(b"__faust")}


def quix_counts(root: Path) -> dict[bytes, int]:
    """Quix keys are ``<message key>|<json state key>``; values JSON."""
    out: dict[bytes, int] = {}
    for _p, k, v in items(root):
        if k.startswith(b"__") or not k.endswith(b'"count"'):
            continue
        out[k.rsplit(b"|", 1)[0]] = int(json.loads(v))
    return out


def value_sizes(root: Path, skip: tuple[bytes, ...] = (b"\x00", b"__faust")) -> list[int]:
    return [len(v) for _p, k, v in items(root) if not k.startswith(skip)]


def _pulse_stores(root: Path) -> set[Path]:
    """Per partition (``.../p<N>``), the store with the latest changelog checkpoint.

    After a rebalance, a worker keeps its copy of a partition it gave away;
    the current one is the copy that applied the most of the changelog.
    """
    best: dict[str, tuple[int, Path]] = {}
    for path, k, v in items(root):
        if k == b"\x00checkpoint":
            checkpoint = int(v)
            if path.name not in best or checkpoint > best[path.name][0]:
                best[path.name] = (checkpoint, path)
    return {p for _c, p in best.values()}


def pulse_persons(root: Path) -> dict[str, bytes]:
    """Person id -> stored state, from a Pulse worker's stores (keys ``p<person>``)."""
    stores = _pulse_stores(root)
    return {k[1:].decode(): v for p, k, v in items(root) if p in stores and k.startswith(b"p")}


def pulse_counts(root: Path, operator: str = "count") -> dict[str, int]:
    """Person id -> the count operator's state (``bench.pulse_count``)."""
    from pipeline.worker.records import decode_state

    return {
        person: int(decode_state(v).get(operator) or 0) for person, v in pulse_persons(root).items()
    }
