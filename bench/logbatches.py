"""Records per record batch in a topic's log segments (local broker only).

Each produce request carries at most one batch per partition, so records/batch
bounds how many table updates (changelog records) share one produce request.
``python -m bench.logbatches DATA_DIR TOPIC [TOPIC ...]`` (DATA_DIR: the broker's log.dirs).
"""

from __future__ import annotations

import struct
import sys
from pathlib import Path


def batches(data_dir: Path, topic: str) -> tuple[int, int]:
    """(records, batches) over every partition of ``topic``."""
    records = count = 0
    for part in data_dir.glob(f"{topic}-*"):
        if not part.name[len(topic) + 1 :].isdigit():
            continue
        for seg in sorted(part.glob("*.log")):
            buf = seg.read_bytes()
            pos = 0
            while pos + 61 <= len(buf):
                _base, length = struct.unpack_from(">qi", buf, pos)
                if length <= 0:
                    break
                records += struct.unpack_from(">i", buf, pos + 57)[0]
                count += 1
                pos += 12 + length
    return records, count


def main() -> None:
    data = Path(sys.argv[1])
    for topic in sys.argv[2:]:
        r, b = batches(data, topic)
        print(f"{topic}: {r} records in {b} batches, {r / max(b, 1):.2f} records/batch")


if __name__ == "__main__":
    main()
