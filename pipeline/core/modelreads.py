"""Readers of the paths that read models: ``score.*``, ``recs``, ``best_hour.*``.

See :mod:`pipeline.core.lookup` (what a reader is, when it is re-checked) and
:mod:`pipeline.core.models` (the stage's models, replaced while it runs).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pipeline.core.models import ModelSet, score_path
from pipeline.core.predicates import MISSING
from pipeline.core.reads import ANY, TraitRead, TraitsOf
from pipeline.core.scoring import Score, score


def score_reader(path: str, traits_of: TraitsOf, models: ModelSet | None) -> TraitRead:
    """Compile ``score.<task>[.percentile]`` (see the module doc) into a :class:`TraitRead`."""
    parsed = score_path(path)
    if parsed is None or models is None:

        def read_nothing(person: Mapping[str, Any], as_of: int, cache: dict[str, Any]) -> Any:
            return MISSING

        return TraitRead(path, read_nothing, frozenset(), False, None, False)
    task, field = parsed
    percentile = field == "percentile"
    key = "score." + task
    model_set = models

    def read_score(person: Mapping[str, Any], as_of: int, cache: dict[str, Any]) -> Any:
        model = model_set.get(task)
        if model is None:
            return MISSING
        scored = cache.get(key)
        if scored is None or scored[0] is not model:
            features = cache.get("features")
            if features is None:
                traits = cache.get("*")
                if traits is None:
                    traits = cache["*"] = traits_of(person, as_of)
                if not traits:
                    return MISSING
                features = cache["features"] = model_set.features(traits, as_of)
            scored = cache[key] = (model, score(model, features))
        s: Score = scored[1]
        return s.percentile if percentile else s.probability

    return TraitRead(path, read_score, ANY, True, None, True)


def _traits(person: Mapping[str, Any], as_of: int, cache: dict[str, Any], of: TraitsOf) -> Any:
    traits = cache.get("*")
    if traits is None:
        traits = cache["*"] = of(person, as_of)
    return traits


def recs_reader(path: str, traits_of: TraitsOf, models: ModelSet, k: int) -> TraitRead:
    """``recs``: the person's top ``k`` products (MISSING without a ``recs`` model)."""

    def read_recs(person: Mapping[str, Any], as_of: int, cache: dict[str, Any]) -> Any:
        model = models.parsed("recs")
        if model is None or k <= 0:
            return MISSING
        traits = _traits(person, as_of, cache, traits_of)
        if not traits:
            return MISSING
        from pipeline.core.recommend import recs_of

        recs = recs_of(model, traits, k)
        return MISSING if recs is None else recs

    return TraitRead(path, read_recs, ANY, True, None, True)


#: ``best_hour.<channel>.<field>``: what a field reads of a BestHour (none: ``hour``).
BEST_HOUR_FIELDS = ("hour", "confidence", "how", "weekday", "how_confidence", "events")


def best_hour_reader(
    path: str, traits_of: TraitsOf, models: ModelSet, min_events: int
) -> TraitRead:
    """``best_hour.<channel>[.<field>]``: the person's best local hour on a channel.

    From their engagement hours shrunk toward model ``send_time`` (no model:
    uniform prior); MISSING with fewer than ``min_events`` engagements and no model.
    """
    _, _, rest = path.partition(".")
    channel, _, field = rest.partition(".")
    field = field or "hour"

    def read_best(person: Mapping[str, Any], as_of: int, cache: dict[str, Any]) -> Any:
        if field not in BEST_HOUR_FIELDS or not channel:
            return MISSING
        traits = _traits(person, as_of, cache, traits_of)
        if not traits:
            return MISSING
        from pipeline.core.sendtime import best_hour_of

        best = best_hour_of(models.parsed("send_time"), traits, channel, min_events)
        if best is None:
            return MISSING
        values = {"hour": best.hour, "confidence": best.confidence, "how": best.how,
                  "weekday": best.weekday, "how_confidence": best.how_confidence,
                  "events": best.events}  # fmt: skip
        return values[field]

    return TraitRead(path, read_best, ANY, True, None, False)
