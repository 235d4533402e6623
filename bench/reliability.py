"""The reliability half of the harness: live ≡ replay, bad input, kills, a broker outage.

``Reliability(args).run(parts)`` builds the data sets and their oracles, runs the
scenarios and returns plain data for ``bench.report``. Sizes come from the command line
(``bench/README.md``); a quick run and the full one differ only in sizes.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from bench.common import log
from bench.crash import LocalBroker, killer, outage
from bench.dataset import DataSet, interleaved, synthetic, with_bad_records
from bench.oracle import Diff, compare, replay_oracle
from bench.outputs import Outputs
from bench.scenario import Context, RunResult, live_run


def summarize(diff: Diff) -> dict[str, Any]:
    keys = ("trigger ids", "sessions", "segments")
    out: dict[str, Any] = {k: diff.topics[k].__dict__ for k in keys if k in diff.topics}
    out["all outputs"] = {
        w: diff.total(w) for w in ("expected", "got", "missing", "extra", "duplicates", "differing")
    }
    return out


class Reliability:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.ctx = Context(args.bootstrap, args.topology or None, keep=args.keep)
        self.results: list[RunResult] = []
        self.data: dict[str, Any] = {}

    def oracle(self, ds: DataSet) -> Outputs:
        return replay_oracle(ds, self.ctx.topology, self.ctx.lateness_ms)

    def run(self, parts: set[str]) -> dict[str, Any]:
        a = self.args
        try:
            if parts & {"live", "live2", "shuffle", "bad"}:
                self.live(parts)
            if parts & {"crash", "alo", "rebalance", "broker"}:
                self.crashes(parts)
        finally:
            self.ctx.cleanup()
        return {
            "data": self.data,
            "runs": [r.as_dict() for r in self.results],
            "sizes": {"live_events": a.live_events, "crash_events": a.crash_events},
        }

    def _run(self, *args: Any, **kwargs: Any) -> RunResult:
        """A run whose failure to finish is recorded, not fatal to the others."""
        try:
            result = live_run(self.ctx, *args, **kwargs)
        except Exception as exc:
            log(f"{args[0]}: did not finish: {exc}")
            result = RunResult(args[0], len(args[1]), extra={"error": str(exc)[:500]})
        self.results.append(result)
        return result

    # -- live ≡ replay, bad input ----------------------------------------------------------

    def live(self, parts: set[str]) -> None:
        a = self.args
        ds = synthetic(a.live_events, days=a.days, seed=a.seed)
        log(f"live data set: {ds.describe()}")
        self.data["live"] = ds.describe()
        oracle = self.oracle(ds)
        if "live" in parts:
            self._run("live x1", ds, oracle, workers=1)
        if "live2" in parts:
            self._run("live x2", ds, oracle, workers=2)
        if "shuffle" in parts:
            shuffled = interleaved(ds, seed=a.seed)
            oracle_shuffled = self.oracle(shuffled)
            # the core itself: does replay depend on how partitions interleave?
            self.data["replay_vs_replay"] = summarize(compare(oracle, oracle_shuffled))
            self._run("live x2, partitions interleaved", shuffled, oracle_shuffled, workers=2)
        if "bad" in parts:
            bad = with_bad_records(ds, every=a.bad_every, seed=a.seed)
            self.data["bad"] = bad.describe()
            self._run("bad input x1", bad, oracle, workers=1)

    # -- kills, rebalances, a broker outage ------------------------------------------------

    def crashes(self, parts: set[str]) -> None:
        a = self.args
        started = time.monotonic()
        ds = synthetic(a.crash_events, days=a.days, seed=a.seed + 1)
        log(f"crash data set ({time.monotonic() - started:.0f} s): {ds.describe()}")
        self.data["crash"] = ds.describe()
        oracle = self.oracle(ds)
        # the floor: what the core alone changes when partitions interleave otherwise
        other = self.oracle(interleaved(ds, seed=a.seed))
        self.data["crash_replay_vs_replay"] = summarize(compare(oracle, other))
        del other
        if "crash" in parts:
            self._run("kill -9 x1, exactly_once", ds, oracle, during=killer(a.kills, seed=1))
        if "alo" in parts:
            self._run(
                "kill -9 x1, at_least_once",
                ds,
                oracle,
                guarantee="at_least_once",
                at_least_once=True,
                during=killer(a.kills, seed=2),
            )
        if "rebalance" in parts:
            self._run(
                "kill -9 1 of 2, exactly_once",
                ds,
                oracle,
                workers=2,
                during=killer(a.kills, victims=(1,), seed=3, slow_every=3),
            )
        if "broker" in parts:
            self.broker_outage(ds, oracle)

    def broker_outage(self, ds: DataSet, oracle: Outputs) -> None:
        a = self.args
        kafka = LocalBroker(Path(a.harness_home), a.harness_port, a.harness_port + 1)
        kafka.start()
        try:
            self._run(
                "broker stop/start, exactly_once",
                ds,
                oracle,
                bootstrap=kafka.bootstrap,
                during=outage(kafka, a.outage_seconds),
            )
        finally:
            self.ctx.cleanup_on(kafka.bootstrap)
            if kafka.started_here:
                kafka.stop()
