"""The person page: one HTML document, rendered on the server, no script.

Traits, segments (with their entry time), scores, the open session, pending
timers, recent triggers and suppressions, and an hour-of-week heat map of the
last 7 days' events in the person's time zone. Every value is escaped.
"""

from __future__ import annotations

import datetime as dt
import json
from html import escape
from typing import Any

DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
STYLE = """
body{font:14px/1.4 system-ui,sans-serif;margin:2em;color:#222;max-width:70em}
h1{font-size:1.4em}h2{font-size:1.1em;margin-top:1.6em;border-bottom:1px solid #ddd}
table{border-collapse:collapse}td,th{padding:2px 8px;text-align:left;vertical-align:top}
tr:nth-child(even){background:#f6f6f6}.muted{color:#888}
#heatmap td{width:1.4em;height:1.4em;padding:0;border:1px solid #fff}
#heatmap th{font-weight:normal;font-size:11px;color:#666}
"""


def _ms(value: Any) -> str:
    if not isinstance(value, int) or isinstance(value, bool):
        return "—"
    return dt.datetime.fromtimestamp(value / 1000, dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False, separators=(", ", ": "))
    return "—" if value is None else str(value)


def _rows(pairs: list[tuple[str, str]], section: str) -> str:
    if not pairs:
        return f'<p class="muted" id="{section}-empty">none</p>'
    body = "".join(f"<tr><th>{escape(k)}</th><td>{escape(v)}</td></tr>" for k, v in pairs)
    return f'<table id="{section}">{body}</table>'


def _table(head: list[str], rows: list[list[str]], section: str) -> str:
    if not rows:
        return f'<p class="muted" id="{section}-empty">none</p>'
    th = "".join(f"<th>{escape(h)}</th>" for h in head)
    trs = "".join("<tr>" + "".join(f"<td>{escape(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f'<table id="{section}"><tr>{th}</tr>{trs}</table>'


def heatmap(data: dict[str, Any]) -> str:
    cells = data.get("cells") or [[0] * 24 for _ in range(7)]
    top = max((max(row) for row in cells), default=0) or 1
    head = "<tr><th></th>" + "".join(f"<th>{h}</th>" for h in range(24)) + "</tr>"
    rows = []
    for day, row in zip(DAYS, cells, strict=True):
        tds = []
        for hour, n in enumerate(row):
            alpha = 0.08 + 0.92 * n / top if n else 0.0
            tds.append(f'<td data-day="{day}" data-hour="{hour}" data-count="{n}" '
                       f'title="{day} {hour:02d}:00: {n}" '
                       f'style="background:rgba(33,102,172,{alpha:.2f})"></td>')  # fmt: skip
        rows.append(f"<tr><th>{day}</th>{''.join(tds)}</tr>")
    zone = escape(str(data.get("timezone") or "UTC"))
    total = int(data.get("total", 0))
    note = f'<p class="muted">events of the last 7 days by local hour ({zone})</p>'
    return f'<table id="heatmap" data-total="{total}">{head}{"".join(rows)}</table>{note}'


PREDICTED = ["task", "probability", "percentile", "model"]


def render(profile: dict[str, Any], recent: list[dict[str, Any]]) -> str:
    person = str(profile.get("person_id", ""))
    ids = profile.get("identities") or {}
    anon = ", ".join(ids.get("anonymous_ids") or []) or "—"
    traits = sorted((k, _value(v)) for k, v in (profile.get("traits") or {}).items())
    scores = []
    for kind, table in sorted((profile.get("scores") or {}).items()):
        for name, score in sorted((table or {}).items(), key=lambda kv: -float(kv[1] or 0))[:10]:
            scores.append([kind, str(name), _value(score)])
    predicted = [
        [task, _value(s.get("probability")), str(s.get("percentile")), str(s.get("version") or "—")]
        for task, s in sorted((profile.get("predictions") or {}).items())
    ]
    segments = [[s["segment"], _ms(s.get("entered_ms"))] for s in profile.get("segments") or []]
    timers = [
        [
            t["rule"],
            _ms(t.get("deadline_ms")),
            str((t.get("caused_by") or {}).get("message_id") or "—"),
        ]
        for t in profile.get("pending_timers") or []
    ]
    triggers = [
        [r.get("kind", ""), r.get("rule", ""), _ms(r.get("event_time_ms")), r.get("reason") or "—"]
        for r in recent
    ]
    session = profile.get("open_session")
    session_rows = []
    if session:
        session_rows = [
            ("started", _ms(session.get("start_ms"))),
            ("last event", _ms(session.get("end_ms"))),
            ("events", str(session.get("event_count"))),
            ("closes at", _ms(session.get("closes_at_ms"))),
        ]
    as_of = escape(_ms(profile.get("as_of_ms")))
    resolved = profile.get("resolved_from")
    via = f" · resolved from {escape(str(resolved))}" if resolved else ""
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{escape(person)} · Pulse</title>
<style>{STYLE}</style></head><body>
<h1 id="person">{escape(person)}</h1>
<p>anonymous ids: <span id="anonymous-ids">{escape(anon)}</span> · as of {as_of}{via}</p>
<h2>Segments</h2>{_table(["segment", "entered"], segments, "segments")}
<h2>Predictions</h2>{_table(PREDICTED, predicted, "predictions")}
<h2>Pending timers</h2>{_table(["rule", "deadline", "caused by"], timers, "timers")}
<h2>Recent triggers</h2>{_table(["kind", "rule", "event time", "reason"], triggers, "triggers")}
<h2>Open session</h2>{_rows(session_rows, "session")}
<h2>Activity</h2>{heatmap(profile.get("activity_heatmap") or {})}
<h2>Scores</h2>{_table(["kind", "name", "score"], scores, "scores")}
<h2>Traits</h2>{_rows(traits, "traits")}
</body></html>
"""


def error_page(person_id: str, status: int, body: dict[str, Any]) -> str:
    message = str((body.get("error") or {}).get("message", "error"))
    return (f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{status} · Pulse'
            f'</title></head><body><h1 id="error">{status}</h1><p>{escape(person_id)}: '
            f"{escape(message)}</p></body></html>\n")  # fmt: skip
