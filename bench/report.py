"""The harness's results as a dated Markdown section for ``bench/RESULTS.md``."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from typing import Any

from bench.common import git_commit, kafka_version
from bench.procstat import machine

TARGETS = {
    "p/c": 1.5,  # Pulse count >= 1.5x Quix Streams
    "d/a": 0.5,  # commerce with identity >= 0.5x raw consume + decode
    "p-x2/p": 1.7,  # 2 workers on 4 partitions >= 1.7x one
}


def render(result: dict[str, Any], args: argparse.Namespace) -> str:
    m = machine()
    lines = [
        f"## {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, commit {git_commit()}: runtime harness"
        + (f" ({args.label})" if args.label else ""),
        "",
        f"`python -m bench.run {' '.join(args.argv)}`".replace(" `", "`"),
        "",
        f"Machine: {m['cores']} cores, {m['ram']} RAM, {m['cpu']}; Python {m['python']}; "
        f"broker {kafka_version(args.bootstrap)} at {args.bootstrap} (shares the cores with "
        "the workers and with other engineers' runs: compare ratios within this run).",
    ]
    if "speed" in result:
        lines += speed_section(result["speed"])
    if "reliability" in result:
        lines += reliability_section(result["reliability"])
    return "\n".join(lines) + "\n"


# -- speed --------------------------------------------------------------------------------


def speed_section(sp: dict[str, Any]) -> list[str]:
    wl = sp.get("workload", {})
    lines = [
        "",
        "### Speed",
        "",
        f"Workload: {wl.get('events'):,} synthetic events, {wl.get('keys'):,} record keys / "
        f"{wl.get('persons'):,} persons, {wl.get('avg_bytes')} B/record Avro, 4 partitions, "
        "produced before each system starts.",
        "",
        "| system | events/s | seconds | counted / expected | peak RSS MB | "
        "state B/person | value B | CPU cores (workers; broker) | note |",
        "|---|---:|---:|---:|---:|---:|---:|---|---|",
    ]
    rows = sp.get("rows", [])
    for r in rows:
        worker_cpu = sum(v for k, v in r["cpu"].items() if k != "broker")
        cpu = f"{worker_cpu:.2f}; {r['cpu'].get('broker', float('nan')):.2f}"
        sb = r["state_bytes_per_person"]
        vb = r["value_bytes"]
        lines.append(
            f"| {r['system']} | {r['events_per_s']:,.0f} | {r['seconds']:.1f} | "
            f"{r['counted']}/{r['expected']} | {' + '.join(f'{x:.0f}' for x in r['rss_mb'])} | "
            f"{'' if sb is None else f'{sb:,.0f}'} | {'' if vb is None else f'{vb:.0f}'} | "
            f"{cpu} | {r['note']} |"
        )
    by = {r["key"]: r["events_per_s"] for r in rows if r["key"]}
    ratios = []
    for label, num, den in (
        ("Pulse count / Quix (defaults: exactly_once vs at-least-once)", "p", "c"),
        ("Pulse count / Quix, both exactly-once", "p", "c-eos"),
        ("Pulse count / Quix, both at-least-once", "p-alo", "c"),
        ("commerce with identity / raw consume + fastavro", "d", "a"),
        ("commerce with identity / raw consume + decode_event", "d", "a-wire"),
        ("count, 2 workers / 1 (4 partitions)", "p-x2", "p"),
        ("commerce, 2 workers / 1", "d-x2", "d"),
    ):
        if num in by and den in by:
            value = by[num] / by[den]
            target = TARGETS.get(f"{num}/{den}")
            met = (
                ""
                if target is None
                else f" (target >= {target}: {'met' if value >= target else 'NOT met'})"
            )
            ratios.append(f"* {label}: **{value:.2f}**{met}")
    if ratios:
        lines += ["", "Ratios (same run):", "", *ratios]
    for lat in sp.get("latency", []):
        target = 50 if lat["guarantee"] == "at_least_once" else 250
        p99 = lat.get("immediate_p99_ms")
        met = "met" if isinstance(p99, float) and p99 < target else "NOT met"
        tried = ", ".join(f"`{k}={v}`" for k, v in (lat.get("settings") or {}).items())
        lines += [
            "",
            f"Latency, {lat['guarantee']}{', ' + tried if tried else ''}, commerce topology, "
            f"at {lat['rate']:,} ev/s (half of d "
            f"x1) for {lat['produced']:,} records: produce -> immediate trigger (`first_login`) "
            f"p50 {lat.get('immediate_p50_ms')} ms, **p99 {p99} ms** over "
            f"{lat.get('immediate_measured')} of {lat.get('immediate_probes')} probes (target "
            f"< {target} ms: {met}); produce of the record that moves the last source past the "
            f"deadline -> absence trigger (`checkout_abandoned`) p50 {lat['p50_ms']} ms, p99 "
            f"{lat['p99_ms']} ms over {lat['measured']} of {lat['probes']} probes. Slowest "
            f"warm-up trigger {lat.get('warmup_max_ms')} ms.",
        ]
    return lines


# -- reliability --------------------------------------------------------------------------


def _me(t: dict[str, Any] | None) -> str:
    if not t:
        return ""
    return f"{t['got']}/{t['expected']}: {t['missing']} / {t['extra']}"


def _verdict(run: dict[str, Any]) -> str:
    if "error" in run.get("extra", {}):
        return f"did not finish: {run['extra']['error'][:120]}"
    return "**pass**" if run["ok"] else "**FAIL**"


def _share(c: dict[str, Any]) -> str:
    if not c or not c.get("data"):
        return ""
    return f"{c['clock'] / c['data']:.2%} ({c['clock']:,} / {c['data']:,})"


def reliability_section(rel: dict[str, Any]) -> list[str]:
    data = rel.get("data", {})
    runs = rel.get("runs", [])
    lines: list[str] = []
    live = [r for r in runs if r["name"].startswith(("live", "bad"))]
    if "live" in data:
        lines += [
            "",
            "### Live ≡ replay",
            "",
            f"Data set: {data['live']}. The oracle is `pipeline.tools.replay.replay_events` (what "
            "`pulse replay` runs) over the events in the order they were produced, 4 "
            "partitions, allowed lateness 5 s, ended where live stops once every source is "
            "idle (`PULSE_IDLE_ADVANCE_MS=0`: the smallest of the partitions' largest event "
            "times). Workers start on "
            "empty topics, then one producer sends the file at full speed. Cells: live/oracle "
            "records: missing / extra (by deterministic id).",
            "",
            "| run | seconds | trigger ids | sessions | segment changes | all outputs: "
            "missing / extra / duplicates / differing bytes | verdict |",
            "|---|---:|---|---|---|---|---|",
        ]
        rvr = data.get("replay_vs_replay")
        if rvr:
            allo = rvr["all outputs"]
            same = not (allo["missing"] or allo["extra"] or allo["differing"])
            verdict = "**same**" if same else "**differ**: the core depends on the interleaving"
            lines.append(
                f"| replay (as produced) vs replay (partitions interleaved at random) | | "
                f"{_me(rvr.get('trigger ids'))} | {_me(rvr.get('sessions'))} | "
                f"{_me(rvr.get('segments'))} | {allo['missing']} / {allo['extra']} / "
                f"{allo['duplicates']} / {allo['differing']} | {verdict} |"
            )
        for r in live:
            lines.append(_live_row(r))
    bad = next((r for r in runs if r["name"].startswith("bad")), None)
    if bad and "dlq" in bad.get("extra", {}):
        d = bad["extra"]["dlq"]
        reasons = ", ".join(f"{k} {v}" for k, v in d["reasons"].items())
        lines += [
            "",
            f"Bad input ({data.get('bad', '')}): {d['bad_records']} bad records ({reasons}); "
            f"{d['in_dlq']} on the DLQ, {d['missing']} missing, {d['unexpected']} unexpected, "
            f"{d['without_reason']} without a reason header; worker alive at the end: "
            f"{bad['extra'].get('alive')}; good records' outputs vs replay of the good ones: "
            "the `bad input x1` row above.",
        ]
    crash = [r for r in runs if r["name"].startswith(("kill", "broker"))]
    if crash:
        lines += [
            "",
            "### Crashes, rebalances, a broker outage",
            "",
            f"Data set: {data.get('crash', '')}. Outputs read with `read_committed` after the "
            "last worker finished, compared with the oracle by id. exactly_once passes with 0 "
            "missing, 0 extra, 0 duplicates, 0 differing; at_least_once with 0 missing, 0 "
            "extra, 0 differing (repeats of expected records allowed).",
            "",
            "| run | seconds | kills (with backlog; while starting; with rebalance) | "
            "restart -> processing p50 / max s | kill -> processing p50 / max s (immediate "
            "restarts) | missing | "
            "extra | duplicates | differing | verdict |",
            "|---|---:|---|---|---|---:|---:|---:|---:|---|",
        ]
        floor = data.get("crash_replay_vs_replay")
        if floor:
            allo = floor["all outputs"]
            same = not (allo["missing"] or allo["extra"] or allo["differing"])
            lines.append(
                "| replay (as produced) vs replay (partitions interleaved at random): the "
                f"core's own order dependence | | | | | {allo['missing']} | {allo['extra']} | "
                f"{allo['duplicates']} | {allo['differing']} | "
                f"{'same' if same else 'differ'} |"
            )
        for r in crash:
            lines.append(_crash_row(r))
        for r in crash:
            o = r.get("extra", {})
            if "outage_s" in o:
                lines += [
                    "",
                    f"Broker outage (a separate broker, `pulse kafka stop`/`start`): stopped "
                    f"at {o['stopped_at_committed']:,} committed records for "
                    f"{o['outage_s']} s; the worker wrote {o['log_lines_during_outage']} log "
                    f"lines meanwhile ({o['lines_per_minute']}/min), stayed alive: "
                    f"{o['alive_during_outage']}; commits resumed "
                    f"{o['resumed_after_start_s']} s after the broker was back, without a "
                    "restart.",
                ]
    lines += _control_lines(runs)
    return lines


def _live_row(r: dict[str, Any]) -> str:
    diff = r.get("diff") or {}
    totals = {w: sum(t[w] for n, t in diff.items() if n != "trigger ids") for w in (
        "missing", "extra", "duplicates", "differing")}  # fmt: skip
    return (
        f"| {r['name']} | {r['seconds']:.0f} | {_me(diff.get('trigger ids'))} | "
        f"{_me(diff.get('sessions'))} | {_me(diff.get('segments'))} | "
        f"{totals['missing']} / {totals['extra']} / {totals['duplicates']} / "
        f"{totals['differing']} | {_verdict(r)} |"
    )


def _crash_row(r: dict[str, Any]) -> str:
    o = r.get("extra", {})
    diff = r.get("diff") or {}
    tot = {w: sum(t[w] for n, t in diff.items() if n != "trigger ids") for w in (
        "missing", "extra", "duplicates", "differing")}  # fmt: skip
    kills = ""
    if "kills" in o:
        kills = (
            f"{o['kills']} ({o['kills_with_backlog']}; {o['kills_while_starting']}; "
            f"{o['kills_with_rebalance']})"
        )
    elif "outage_s" in o:
        kills = f"broker down {o['outage_s']} s"

    def spread(key: str) -> str:
        s = o.get(key) or {}
        return f"{s['p50']} / {s['max']}" if s.get("n") else ""

    return (
        f"| {r['name']} | {r['seconds']:.0f} | {kills} | {spread('restart_to_processing_s')} | "
        f"{spread('kill_to_processing_s')} | {tot['missing']} | {tot['extra']} | "
        f"{tot['duplicates']} | {tot['differing']} | {_verdict(r)} |"
    )


def _control_lines(runs: list[dict[str, Any]]) -> list[str]:
    rows = [r for r in runs if r.get("control")]
    if not rows:
        return []
    lines = [
        "",
        "### Control traffic on `events.by-person`",
        "",
        "Clock records (`pulse-control: clock`) per data record (target <= 5% under load: "
        "until the inputs were fully committed; the whole run adds the idle tail).",
        "",
        "| run | under load | whole run | other control records (merges) |",
        "|---|---:|---:|---|",
    ]
    for r in rows:
        c = r["control"]
        other = c["whole_run"].get("other_control") or {}
        lines.append(
            f"| {r['name']} | {_share(c['under_load'])} | {_share(c['whole_run'])} | "
            f"{', '.join(f'{k} {v:,}' for k, v in other.items())} |"
        )
    return lines
