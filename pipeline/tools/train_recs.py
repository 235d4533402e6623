"""``pulse train --task recs``: the item-to-item co-occurrence table of next best product.

Reads the session records the stream emits on ``training.recs``
(:func:`pipeline.core.recommend.session_example`; ``pulse replay --out DIR``
writes ``DIR/pulse.training.recs.jsonl``) and builds model ``recs``
(format in :mod:`pipeline.core.recommend`):

1. **Co-occurrence, per person.** A person's sessions in time order; two
   products in the same session co-occur with weight 1, in two sessions of
   theirs starting within 7 days (``--window-days``) with weight 0.5; a pair
   counts once per person, with its largest weight, so one heavy browser
   does not make a pair. At most :data:`MAX_SESSION_ITEMS` products a session.
2. **Similarity** ``c(a, b) / sqrt(n(a) n(b))`` (``n``: people who had the
   product; cosine, as in Amazon's item-to-item paper), pairs below
   ``--min-count`` dropped; the :data:`MAX_NEIGHBOURS` best neighbours kept per
   product, the :data:`MAX_ITEMS` products most people had: a bounded table.
3. **Evaluation** on a time split (the latest 25 % of sessions): fitted on
   the sessions before the cut, each test session that adds or buys something
   is predicted from the person's earlier sessions (decayed interest, as the
   stream's :class:`~pipeline.core.interest.Interest` computes it) minus what
   they bought; hit rate@k (any added/bought product in the top k) and
   recall@k, against "most popular" and "most recently viewed".
4. The published model is then fitted on **all** the sessions.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pipeline.core.interest import DEFAULT_WEIGHTS
from pipeline.core.localtime import DAY_MS
from pipeline.core.recommend import TASK, RecsModel, load_recs_model, recommend
from pipeline.core.scoring import table_document
from pipeline.errors import ModelError

MAX_SESSION_ITEMS = 30
MAX_NEIGHBOURS = 50
MAX_ITEMS = 20_000
POPULAR = 100
#: ``sim(a, a)``: a product the person keeps looking at counts as a neighbour this close.
SELF_WEIGHT = 0.5
HALF_LIFE_MS = 7 * DAY_MS
#: Least sessions with products to publish a table (below, it is mostly noise).
MIN_SESSIONS = 100


@dataclass(frozen=True, slots=True)
class Basket:
    """One closed session's products (a ``training.recs`` record)."""

    person: str
    start_ms: int
    viewed: tuple[str, ...]
    added: tuple[str, ...]
    purchased: tuple[str, ...]

    @property
    def items(self) -> tuple[str, ...]:
        return tuple(sorted({*self.viewed, *self.added, *self.purchased}))[:MAX_SESSION_ITEMS]


def parse_record(obj: Any) -> Basket:
    """A ``training.recs`` record (parsed JSON) as a :class:`Basket`; ModelError if malformed."""
    if not isinstance(obj, Mapping) or obj.get("task") != TASK:
        raise ModelError(f"not a {TASK} record: {str(obj)[:80]}")
    try:
        return Basket(
            str(obj["person"]),
            int(obj.get("start_ms", obj["scored_at_ms"])),
            tuple(str(p) for p in obj.get("viewed") or ()),
            tuple(str(p) for p in obj.get("added") or ()),
            tuple(str(p) for p in obj.get("purchased") or ()),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelError(f"a {TASK} record without person or times: {str(obj)[:80]}") from exc


def parse_lines(lines: Iterable[bytes | str]) -> list[Basket]:
    return [parse_record(json.loads(line)) for line in lines if line.strip()]


def _by_person(baskets: Sequence[Basket]) -> dict[str, list[Basket]]:
    out: dict[str, list[Basket]] = defaultdict(list)
    for b in sorted(baskets, key=lambda b: (b.person, b.start_ms)):
        out[b.person].append(b)
    return out


def fit(
    baskets: Sequence[Basket],
    *,
    window_ms: int = 7 * DAY_MS,
    min_count: float = 1.0,
    max_neighbours: int = MAX_NEIGHBOURS,
    max_items: int = MAX_ITEMS,
) -> dict[str, Any]:
    """The ``recs`` section of the model (module docstring, steps 1-2)."""
    people: dict[str, int] = defaultdict(int)
    pairs: dict[tuple[str, str], float] = defaultdict(float)
    for sessions in _by_person(baskets).values():
        mine: dict[tuple[str, str], float] = {}
        had: set[str] = set()
        for i, s in enumerate(sessions):
            items = s.items
            had.update(items)
            for a in items:
                for b in items:
                    if a < b:
                        mine[a, b] = 1.0
            j = i - 1
            while j >= 0 and s.start_ms - sessions[j].start_ms <= window_ms:
                for a in items:
                    for b in sessions[j].items:
                        if a != b:
                            key = (a, b) if a < b else (b, a)
                            if mine.get(key, 0.0) < 0.5:
                                mine[key] = 0.5
                j -= 1
        for product in had:
            people[product] += 1
        for key, w in mine.items():
            pairs[key] += w
    kept = set(sorted(people, key=lambda p: (-people[p], p))[:max_items])
    neighbours: dict[str, list[tuple[float, str]]] = defaultdict(list)
    for (a, b), c in pairs.items():
        if c < min_count or a not in kept or b not in kept:
            continue
        sim = c / math.sqrt(people[a] * people[b])
        neighbours[a].append((sim, b))
        neighbours[b].append((sim, a))
    table = {
        a: [
            [b, round(sim, 6)]
            for sim, b in sorted(found, key=lambda x: (-x[0], x[1]))[:max_neighbours]
        ]
        for a, found in sorted(neighbours.items())
    }
    popular = sorted(people, key=lambda p: (-people[p], p))[:POPULAR]
    return {"neighbours": table, "popular": popular, "self_weight": SELF_WEIGHT}


def _weight(kind: str) -> float:
    name = {"v": "product_viewed", "a": "product_added", "o": "order_completed"}[kind]
    return DEFAULT_WEIGHTS[name]


def evaluate(
    model: RecsModel, test: Sequence[Basket], history: Sequence[Basket], k: int = 10
) -> dict[str, Any]:
    """Hit rate and recall @k of the model and two baselines on the test sessions (step 3).

    The target is what a test session added or bought; when no record says
    (records made without the recent-products state), every product it had.
    """
    by_person = _by_person([*history, *test])
    kinds = any(b.added or b.purchased for b in (*history, *test))
    test_keys = {(b.person, b.start_ms) for b in test}
    stats = {name: [0, 0.0] for name in ("model", "most_popular", "most_recently_viewed")}
    n = 0
    for sessions in by_person.values():
        for i, s in enumerate(sessions):
            target = set(s.added) | set(s.purchased) if kinds else set(s.items)
            if (s.person, s.start_ms) not in test_keys or not target or i == 0:
                continue
            interest: dict[str, float] = {}
            last_seen: dict[str, int] = {}
            bought: set[str] = set()
            for past in sessions[:i]:
                decay = 2.0 ** (-(s.start_ms - past.start_ms) / HALF_LIFE_MS)
                for kind, products in (
                    ("v", past.viewed),
                    ("a", past.added),
                    ("o", past.purchased),
                ):
                    for p in products:
                        interest[p] = interest.get(p, 0.0) + _weight(kind) * decay
                        last_seen[p] = max(last_seen.get(p, 0), past.start_ms)
                bought.update(past.purchased)
            n += 1
            ranked = {
                "model": recommend(model, interest, bought, k),
                "most_popular": [p for p in model.popular if p not in bought][:k],
                "most_recently_viewed": [
                    p
                    for p in sorted(last_seen, key=lambda p: (-last_seen[p], p))
                    if p not in bought
                ][:k],
            }
            for name, top in ranked.items():
                found = len(target & set(top))
                stats[name][0] += found > 0
                stats[name][1] += found / len(target)
    return {
        "test_sessions": n,
        "target": "added or purchased" if kinds else "any product (no kinds in the records)",
        "k": k,
        **{
            name: {
                "hit_rate": round(h / n, 4) if n else None,
                "recall": round(r / n, 4) if n else None,
            }
            for name, (h, r) in stats.items()
        },
    }


def train(
    baskets: Sequence[Basket],
    *,
    test_share: float = 0.25,
    window_ms: int = 7 * DAY_MS,
    min_count: float = 1.0,
    k: int = 10,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(model document, report)`` (module docstring)."""
    baskets = [b for b in baskets if b.items]
    if not baskets:
        raise ModelError(f"{TASK}: no sessions with products")
    if not 0.0 < test_share < 1.0:
        raise ModelError("the test share must be between 0 and 1")
    times = sorted(b.start_ms for b in baskets)
    cut = times[min(len(times) - 1, math.floor(len(times) * (1.0 - test_share)))]
    before = [b for b in baskets if b.start_ms < cut]
    after = [b for b in baskets if b.start_ms >= cut]
    early = load_recs_model(
        table_document(TASK, fit(before, window_ms=window_ms, min_count=min_count), {})
    )
    evaluation = evaluate(early, after, before, k)
    section = fit(baskets, window_ms=window_ms, min_count=min_count)
    report = {
        "task": TASK,
        "sessions": len(baskets),
        "people": len({b.person for b in baskets}),
        "products": len({p for b in baskets for p in b.items}),
        "products_with_neighbours": len(section["neighbours"]),
        "pairs_kept": sum(len(v) for v in section["neighbours"].values()),
        "split": {"cut_ms": cut, "train_sessions": len(before), "test_sessions": len(after)},
        "evaluation": evaluation,
        "window_days": window_ms / DAY_MS,
        "min_count": min_count,
    }
    trained = {k2: report[k2] for k2 in ("sessions", "people", "split", "window_days")}
    trained["evaluation"] = evaluation
    doc = table_document(TASK, section, trained)
    load_recs_model(doc)  # what a worker will do
    return doc, report


def publish_problem(report: dict[str, Any], min_sessions: int = MIN_SESSIONS) -> str | None:
    """Why the table may not be published (too few sessions), or None."""
    if report["sessions"] >= min_sessions:
        return None
    return (
        f"{TASK}: not publishing: {report['sessions']} session(s) with products; "
        f"at least {min_sessions} are needed (--min-sessions)"
    )


def fmt(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.3f}"


def format_report(report: dict[str, Any]) -> str:
    ev = report["evaluation"]
    lines = [
        f"task recs: {report['sessions']} sessions of {report['people']} people, "
        f"{report['products']} products; {report['products_with_neighbours']} with neighbours, "
        f"{report['pairs_kept']} neighbour entries kept",
        f"test: {ev['test_sessions']} sessions after the cut; target: {ev['target']}",
        f"{'ranking':<22} {'hit@' + str(ev['k']):>8} {'recall@' + str(ev['k']):>10}",
    ]
    for name in ("model", "most_popular", "most_recently_viewed"):
        row = ev[name]
        lines.append(f"{name:<22} {fmt(row['hit_rate']):>8} {fmt(row['recall']):>10}")
    return "\n".join(lines)
