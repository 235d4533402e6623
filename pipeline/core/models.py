"""The models a stage scores with: the newest model per task, replaced while it runs.

A :class:`ModelSet` holds, per task name, the newest model published for it
(``pulse train --publish`` writes it to the compacted ``pulse.models`` topic,
key = task; ``pulse replay --models FILE ...`` reads the same JSON from
files). The rule stage holds one ModelSet for its whole life; the worker's
model reader puts each model in it (:meth:`~ModelSet.put`) as it arrives, so a new
model is used from the next evaluation on, without a restart. A stage's
outputs are a function of the events and of the models in use.

Kinds:

* ``gbdt`` and ``logistic`` (:mod:`pipeline.core.scoring`): a probability and
  a percentile, read in predicates as ``score.<task>`` and
  ``score.<task>.percentile``;
* any other kind (``recs``: next best product, ``send_time``: the
  population's engagement prior, see :mod:`pipeline.core.recommend` and
  :mod:`pipeline.core.sendtime`) is validated and parsed by its module
  (:meth:`ModelSet.parsed`) and kept as its JSON document
  (:meth:`ModelSet.document`); another kind is kept as its document only.

A model's **version** is the first 16 hex digits of the blake2b digest of its
canonical JSON (sorted keys, no spaces): the same model published twice has
the same version, a retrained one another.

Features come from :func:`pipeline.core.predictions.features_of` (the same
function that snapshots training examples, so online and offline features
agree); a ModelSet may be given another one (tests).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from pipeline.core.scoring import FORMAT, KINDS, Model, Score, load_model, score
from pipeline.errors import ModelError

#: ``(traits as of at_ms, at_ms) -> feature name -> number`` (``None``: missing)
FeaturesOf = Callable[[Mapping[str, Any], int], Mapping[str, float | None]]

#: The predicate path of a score: ``score.<task>`` / ``score.<task>.percentile``.
SCORE = "score"
#: The fields a ``score.<task>.<field>`` path may read (none: the probability).
SCORE_FIELDS = ("probability", "percentile")
#: The tasks of the non-scoring kinds (validated and parsed by their own modules).
RECS, SEND_TIME = "recs", "send_time"


def version_of(doc: Mapping[str, Any]) -> str:
    """The model's version: a digest of its canonical JSON (see the module doc)."""
    text = json.dumps(doc, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.blake2b(text.encode(), digest_size=8).hexdigest()


def _default_features(traits: Mapping[str, Any], at_ms: int) -> Mapping[str, float | None]:
    # the "stream/1" features, the same as the training examples'
    from pipeline.core.predictions import features_of

    result: Mapping[str, float | None] = features_of(traits, at_ms)
    return result


class ModelSet:
    """The newest model per task (see the module docstring).

    :meth:`put` may run on another thread than the readers: it replaces one
    dict entry at a time, so a reader sees the old model or the new one.
    """

    def __init__(self, features: FeaturesOf | None = None) -> None:
        self._models: dict[str, Model] = {}
        self._documents: dict[str, dict[str, Any]] = {}
        self._versions: dict[str, str] = {}
        self._parsed: dict[str, Any] = {}  # recs / send_time models, parsed by their modules
        self._features: FeaturesOf = _default_features if features is None else features

    # -- loading -------------------------------------------------------------------

    def put(self, doc: Mapping[str, Any]) -> str:
        """Load ``doc`` (a model's parsed JSON) as its task's model; returns the task.

        A scoring model (``gbdt``, ``logistic``) is validated by
        :func:`~pipeline.core.scoring.load_model`; another kind needs the
        format, a task and a kind. Raises :class:`~pipeline.errors.ModelError`
        (the set is unchanged then).
        """
        kind = doc.get("kind")
        task = doc.get("task")
        if kind in KINDS:
            model = load_model(doc)
            version = version_of(doc)
            self._documents[model.task] = dict(doc)
            self._versions[model.task] = version
            self._models[model.task] = model
            return model.task
        if doc.get("format") != FORMAT:
            raise ModelError(f"not a {FORMAT} document")
        if not isinstance(task, str) or not task:
            raise ModelError("the model has no task")
        if not isinstance(kind, str) or not kind:
            raise ModelError(f"{task}: the model has no kind")
        parsed: Any = None
        if RECS in (task, kind):
            from pipeline.core.recommend import load_recs_model

            parsed = load_recs_model(doc)
        elif SEND_TIME in (task, kind):
            from pipeline.core.sendtime import load_send_time_model

            parsed = load_send_time_model(doc)
        self._models.pop(task, None)
        self._parsed[task] = parsed
        self._documents[task] = dict(doc)
        self._versions[task] = version_of(doc)
        return task

    def put_json(self, raw: bytes | str) -> str:
        """:meth:`put` of a model's JSON text (a ``pulse.models`` value, a model file)."""
        try:
            doc = json.loads(raw)
        except ValueError as exc:
            raise ModelError(f"a model is not JSON: {exc}") from None
        if not isinstance(doc, dict):
            raise ModelError("a model is not a JSON object")
        return self.put(doc)

    def drop(self, task: str) -> bool:
        """Forget ``task``'s model (a tombstone on ``pulse.models``); whether there was one."""
        self._models.pop(task, None)
        self._parsed.pop(task, None)
        had = self._documents.pop(task, None) is not None
        self._versions.pop(task, None)
        return had

    # -- reading -------------------------------------------------------------------

    def get(self, task: str) -> Model | None:
        """The scoring model of ``task`` (``gbdt``/``logistic``), or None."""
        return self._models.get(task)

    def document(self, task: str) -> dict[str, Any] | None:
        """The JSON document of ``task``'s model, whatever its kind, or None."""
        return self._documents.get(task)

    def parsed(self, task: str) -> Any:
        """The parsed ``recs`` (``RecsModel``) or ``send_time`` (``SendTimePrior``), or None."""
        return self._parsed.get(task)

    def version(self, task: str) -> str | None:
        """The version (see the module doc) of ``task``'s model, or None."""
        return self._versions.get(task)

    def tasks(self) -> tuple[str, ...]:
        """The tasks with a model, sorted (every kind)."""
        return tuple(sorted(self._documents))

    def scoring_tasks(self) -> tuple[str, ...]:
        """The tasks with a scoring model (``gbdt``/``logistic``), sorted."""
        return tuple(sorted(self._models))

    def in_payload(self) -> bool:
        """Whether activations carry anything from these models (a scoring model or recs)."""
        return bool(self._models) or self._parsed.get(RECS) is not None

    def __len__(self) -> int:
        return len(self._documents)

    def __contains__(self, task: object) -> bool:
        return task in self._documents

    # -- scoring -------------------------------------------------------------------

    def features(self, traits: Mapping[str, Any], at_ms: int) -> Mapping[str, float | None]:
        """The features a model reads of a person whose ``traits`` are as of ``at_ms``."""
        return self._features(traits, at_ms)

    def score(self, task: str, traits: Mapping[str, Any], at_ms: int) -> Score | None:
        """``task``'s score of a person (``traits`` as of ``at_ms``), or None.

        None without a model, or without traits (no event folded yet: no score).
        """
        model = self._models.get(task)
        if model is None or not traits:
            return None
        return score(model, self._features(traits, at_ms))

    def scores(self, traits: Mapping[str, Any], at_ms: int) -> dict[str, dict[str, Any]]:
        """Every scoring task's score: ``{task: {"probability", "percentile", "version"}}``.

        The features are computed once; ``{}`` without models or traits.
        """
        models = self._models
        if not models or not traits:
            return {}
        return self.scores_of_features(self._features(traits, at_ms))

    def scores_of_features(self, features: Mapping[str, float | None]) -> dict[str, dict[str, Any]]:
        """:meth:`scores` from features already computed (a label's snapshot at a close)."""
        models = self._models
        out: dict[str, dict[str, Any]] = {}
        for task in sorted(models):
            s = score(models[task], features)
            out[task] = {
                "probability": s.probability,
                "percentile": s.percentile,
                "version": self._versions.get(task),
            }
        return out


def score_path(path: str) -> tuple[str, str] | None:
    """``score.<task>[.<field>]`` -> ``(task, field)``; None if ``path`` is not one."""
    head, _, rest = path.partition(".")
    if head != SCORE or not rest:
        return None
    task, _, field = rest.partition(".")
    if not task:
        return None
    field = field or "probability"
    if field not in SCORE_FIELDS:
        return None
    return task, field


def score_reads(stage: Any) -> list[tuple[str, str, str]]:
    """``(kind, name, task)`` of each trigger (``rule``) or ``segment`` reading ``score.<task>``."""
    reads: list[tuple[str, str, str]] = []
    specs: Iterable[tuple[str, str, Any]] = [
        *(("rule", spec.name, spec.where) for spec in stage.triggers),
        *(("segment", spec.name, spec.where) for spec in stage.segments),
    ]
    for kind, name, where in specs:
        seen: set[str] = set()
        for path, _, _ in where.conditions:
            parsed = score_path(path)
            if parsed is not None and parsed[0] not in seen:
                seen.add(parsed[0])
                reads.append((kind, name, parsed[0]))
    return reads


def unscored(stage: Any, models: ModelSet | None) -> list[str]:
    """One warning per rule or segment reading ``score.<task>`` with no model of the task."""
    out: list[str] = []
    for kind, name, task in score_reads(stage):
        if models is None or models.get(task) is None:
            out.append(
                f"{kind} {name!r} reads score.{task} but no model for {task!r} is loaded: "
                f"its conditions on score.{task} are false until one is published "
                f"(pulse train --task {task} --publish)"
            )
    return out


def warn_unscored(stage: Any, models: ModelSet | None, log: Any) -> list[str]:
    """Log :func:`unscored`'s warnings on ``log`` (a :class:`logging.Logger`); returns them."""
    warnings = unscored(stage, models)
    for text in warnings:
        log.warning("%s", text)
    return warnings
