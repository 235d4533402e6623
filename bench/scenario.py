"""One reliability run: fresh topics, workers started on them, data produced, outputs judged.

:class:`Context` holds what every run of a harness invocation shares (broker,
work dir, topology, the topics to delete at the end). :func:`live_run` is the
plain run (live ≡ replay, bad input); ``crash.py`` adds kills and outages to
the same steps through the ``during`` hook.
"""

from __future__ import annotations

import re
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.common import log
from bench.dataset import DataSet, Production
from bench.kafkautil import Broker
from bench.oracle import Diff, compare, with_trigger_ids
from bench.outputs import Outputs, control_counts, live_outputs, read_topic
from bench.workers import Workers, wait_settled


@dataclass
class Context:
    bootstrap: str
    topology: str | None
    lateness_ms: int = 5000
    keep: bool = False
    timeout_s: float = 3600
    run_id: str = field(
        default_factory=lambda: f"rel{datetime.now(UTC):%m%d%H%M%S}{uuid.uuid4().hex[:4]}"
    )
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="pulse-rel-")))
    prefixes: dict[str, list[str]] = field(default_factory=dict)  # bootstrap -> prefixes used

    def prefix(self, label: str, bootstrap: str | None = None) -> str:
        p = f"{self.run_id}{label}."
        self.prefixes.setdefault(bootstrap or self.bootstrap, []).append(p)
        return p

    def workers(self, prefix: str, *, guarantee: str, bootstrap: str | None = None) -> Workers:
        return Workers(
            bootstrap or self.bootstrap,
            prefix,
            self.workdir,
            topology=self.topology,
            guarantee=guarantee,
            lateness_ms=self.lateness_ms,
        )

    def cleanup_on(self, bootstrap: str) -> None:
        """Delete the topics this run made on ``bootstrap`` (unless ``keep``)."""
        prefixes = self.prefixes.pop(bootstrap, [])
        if self.keep or not prefixes:
            return
        try:
            broker = Broker(bootstrap)
            names = [t for t in broker.topics() if t.startswith(tuple(prefixes))]
            names += [f"{p.rstrip('._-')}-state-changelog" for p in prefixes]
            broker.delete_topics(set(names) & broker.topics())
            broker.close()
        except Exception as exc:  # a stopped broker: nothing to delete there
            log(f"could not delete topics on {bootstrap}: {exc}")

    def cleanup(self) -> None:
        if self.keep:
            log(f"kept {self.workdir} and the {self.run_id}* topics")
            return
        for bootstrap in list(self.prefixes):
            self.cleanup_on(bootstrap)
        shutil.rmtree(self.workdir, ignore_errors=True)


@dataclass
class RunResult:
    name: str
    records: int
    seconds: float = 0.0  # first produce -> inputs fully committed
    diff: Diff | None = None
    control: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    ok: bool = False

    def as_dict(self) -> dict[str, Any]:
        out = {k: v for k, v in self.__dict__.items() if k != "diff"}
        out["diff"] = self.diff.as_dict() if self.diff else None
        return out


def live_run(
    ctx: Context,
    name: str,
    ds: DataSet,
    oracle: Outputs,
    *,
    workers: int = 1,
    guarantee: str = "exactly_once",
    bootstrap: str | None = None,
    during: Callable[[Workers, Production, Broker], dict[str, Any]] | None = None,
    at_least_once: bool = False,
) -> RunResult:
    """Start ``workers`` on empty topics, produce ``ds`` at full speed, compare with ``oracle``.

    ``during(pool, production, broker)`` runs once production has started (kills,
    outages) and returns figures for the result; the run then waits until the
    workers are done and every topic is quiet.
    """
    bootstrap = bootstrap or ctx.bootstrap
    label = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:24]
    prefix = ctx.prefix(f"{label}{uuid.uuid4().hex[:3]}", bootstrap)
    broker = Broker(bootstrap)
    pool = ctx.workers(prefix, guarantee=guarantee, bootstrap=bootstrap)
    result = RunResult(name, len(ds))
    try:
        broker.create_topic(prefix + "events")
        pool.start(workers)
        pool.wait_assigned()
        log(f"{name}: {workers} worker(s) assigned on {prefix}*; producing {len(ds):,} records")
        production = Production(bootstrap, prefix + "events", ds).start()
        if during is not None:
            result.extra.update(during(pool, production, broker))
            if "abort" in result.extra:
                result.extra["error"] = result.extra["abort"]
                return result
        production.join()
        caught_up = wait_settled(broker, pool, timeout_s=ctx.timeout_s)
        result.seconds = caught_up - production.started
        result.extra["produce_s"] = round(production.finished - production.started, 1)
        result.extra["alive"] = pool.alive()
        result.extra["rebalances"] = pool.log_count("assigned partitions")
        got = with_trigger_ids(live_outputs(bootstrap, prefix))
        result.diff = compare(oracle, got)
        until_ms = int((time.time() - (time.monotonic() - caught_up)) * 1000)
        by_person = read_topic(bootstrap, prefix + "events.by-person")
        result.control = {
            "under_load": control_counts(by_person, until_ms),
            "whole_run": control_counts(by_person),
        }
        if ds.bad_reasons:
            result.extra["dlq"] = check_dlq(bootstrap, prefix, ds)
        result.ok = result.diff.at_least_once if at_least_once else result.diff.exact
        result.ok = result.ok and bool(result.extra["alive"])
        if ds.bad_reasons:
            result.ok = result.ok and result.extra["dlq"]["ok"]
        log(f"{name}: {'OK' if result.ok else 'FAILED'} in {result.seconds:.0f} s; "
            f"{result.diff.summary()}")  # fmt: skip
    except Exception:
        log(f"{name} failed; worker logs:\n{pool.tails()}")
        raise
    finally:
        pool.stop()
        broker.close()
    return result


def check_dlq(bootstrap: str, prefix: str, ds: DataSet) -> dict[str, Any]:
    """Every bad record on ``<prefix>events.dlq``, byte for byte, with its expected reason."""
    from collections import Counter

    expected = Counter((reason, ds.values[i] or b"") for i, reason in ds.bad_reasons.items())
    got: Counter[tuple[str, bytes]] = Counter()
    missing_header = 0
    for m in read_topic(bootstrap, prefix + "events.dlq"):
        reason = dict(m.headers).get("pulse-dlq-reason")
        if reason is None:
            missing_header += 1
            continue
        got[(reason.decode(), m.value or b"")] += 1
    missing = sum((expected - got).values())
    unexpected = sum((got - expected).values())
    by_reason = Counter(r for r, _ in expected.elements())
    return {
        "bad_records": sum(expected.values()),
        "in_dlq": sum(got.values()) + missing_header,
        "missing": missing,
        "unexpected": unexpected,
        "without_reason": missing_header,
        "reasons": dict(sorted(by_reason.items())),
        "ok": missing == 0 and unexpected == 0 and missing_header == 0,
    }
