"""The oracle (``pulse replay`` of the produced events) and the comparison with live outputs.

The oracle is :func:`pipeline.tools.replay.replay_events`, the function ``pulse replay``
runs, over the good events in the order they were produced, with the workers'
partition count and allowed lateness. One difference from the command: at the
end, stream time moves to where a live system's ends once every source is idle
(:meth:`bench.dataset.DataSet.end_ms`), not to infinity: with
``PULSE_IDLE_ADVANCE_MS=0`` the workers' clocks never pass the data.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.common import log
from bench.dataset import PARTITIONS, DataSet
from bench.outputs import Outputs, record_id
from pipeline.contract.topics import encode_output


def replay_oracle(
    ds: DataSet, topology: str | None, lateness_ms: int, partitions: int = PARTITIONS
) -> Outputs:
    """Replay's outputs for ``ds`` as (id, Avro bytes) per logical topic."""
    from pipeline.tools.replay import replay_events
    from pipeline.topology.dsl import load

    topo = load(topology)
    started = time.monotonic()
    outputs = replay_events(
        ds.good,
        topo.operators,
        allowed_lateness_ms=lateness_ms,
        stage=topo.stage,
        identity=topo.identity,
        partitions=partitions,
        end_ms=ds.end_ms(),
    )
    out: Outputs = {}
    for o in outputs:
        out.setdefault(o.topic, []).append(
            (record_id(o.topic, o.record), encode_output(o.topic, o.record))
        )
    log(
        f"oracle: replay of {len(ds.good):,} events ({ds.order}) gave {len(outputs):,} outputs "
        f"in {time.monotonic() - started:.0f} s"
    )
    return with_trigger_ids(out)


TRIGGER_TOPICS = ("triggers", "triggers.suppressed")


def with_trigger_ids(out: Outputs) -> Outputs:
    """``out`` plus a ``trigger ids`` pseudo-topic: the ids of both trigger topics as one set.

    A trigger held back by a cap is the same decision with another outcome; the
    issue's first criterion is this set.
    """
    ids = [(i, b"") for t in TRIGGER_TOPICS for i, _ in out.get(t, [])]
    return {**out, "trigger ids": ids}


@dataclass
class TopicDiff:
    expected: int = 0
    got: int = 0
    missing: int = 0  # expected records (by id) that never arrived
    extra: int = 0  # records whose id the oracle does not have
    duplicates: int = 0  # records with an expected id, beyond the expected count
    differing: int = 0  # ids whose record bytes differ from the oracle's
    examples: list[str] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not (self.missing or self.extra or self.duplicates or self.differing)


@dataclass
class Diff:
    topics: dict[str, TopicDiff]

    def total(self, what: str) -> int:
        """Over every real topic (the ``trigger ids`` pseudo-topic counts nothing twice)."""
        return sum(getattr(t, what) for n, t in self.topics.items() if n != "trigger ids")

    @property
    def exact(self) -> bool:
        """Same records, same number of times: what exactly-once must give."""
        return all(t.clean for t in self.topics.values())

    @property
    def at_least_once(self) -> bool:
        """Nothing missing, nothing unknown; repeats only of expected records, byte for byte."""
        return not (self.total("missing") or self.total("extra") or self.total("differing"))

    def summary(self, only: tuple[str, ...] = ()) -> str:
        parts = []
        for name, t in sorted(self.topics.items()):
            if only and name not in only:
                continue
            flag = "" if t.clean else " !"
            parts.append(
                f"{name} {t.got}/{t.expected} (missing {t.missing}, extra {t.extra}, "
                f"dup {t.duplicates}, differing {t.differing}){flag}"
            )
        return "; ".join(parts)

    def as_dict(self) -> dict[str, Any]:
        return {name: dict(t.__dict__) for name, t in sorted(self.topics.items())}


def compare(expected: Outputs, got: Outputs) -> Diff:
    topics: dict[str, TopicDiff] = {}
    for name in sorted(set(expected) | set(got)):
        exp, live = expected.get(name, []), got.get(name, [])
        e_ids, g_ids = Counter(i for i, _ in exp), Counter(i for i, _ in live)
        e_bytes: dict[str, set[bytes]] = {}
        for i, b in exp:
            e_bytes.setdefault(i, set()).add(b)
        g_bytes: dict[str, set[bytes]] = {}
        for i, b in live:
            g_bytes.setdefault(i, set()).add(b)
        t = TopicDiff(expected=len(exp), got=len(live))
        for i, n in e_ids.items():
            have = g_ids.get(i, 0)
            if have < n:
                t.missing += n - have
                if len(t.examples) < 5:
                    t.examples.append(f"missing {i}")
            elif have > n:
                t.duplicates += have - n
            if have and g_bytes[i] != e_bytes[i]:
                t.differing += 1
                if len(t.examples) < 5:
                    t.examples.append(f"differing {i}")
        for i, n in g_ids.items():
            if i not in e_ids:
                t.extra += n
                if len(t.examples) < 5:
                    t.examples.append(f"extra {i}")
        topics[name] = t
    return Diff(topics)


def dump(out: Outputs, path: Path) -> None:
    """Each topic's records as JSON lines (for reading a failed comparison)."""
    from pipeline.contract.topics import decode_output

    path.mkdir(parents=True, exist_ok=True)
    for name, records in out.items():
        with (path / f"{name}.jsonl").open("w") as fh:
            for _i, value in records:
                fh.write(repr(decode_output(name, value)) + "\n")
