"""The worker's model reader: the newest model per task from ``pulse.models``, live.

``pulse train --publish`` writes a model to the compacted topic ``pulse.models``
(one partition, key = task, value = the model's JSON; compaction keeps the
newest per task). At start the worker reads the topic to its end before it
processes anything (so a restarted worker scores with the models it had),
logs one warning per rule or segment reading ``score.<task>`` without a model
(:func:`pipeline.core.models.unscored`), then keeps reading on a background
thread and puts each new model into the rule stage's
:class:`~pipeline.core.models.ModelSet`: the next decision scores with it, no
restart. A model that fails validation is logged and skipped (the previous
one stays); an empty value (a tombstone) removes the task's model.

Every worker reads the whole topic (its own consumer, never committing), so
all workers use the same models once each has read the same offsets; which
events are scored with which model is the only thing that depends on timing
(see docs/predictions.md, "Online scores").
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from pipeline.config import Settings
from pipeline.core.models import ModelSet, unscored
from pipeline.errors import ModelError
from pipeline.worker import metrics

log = logging.getLogger(__name__)

MODELS = "models"  # the compacted topic's logical name (pipeline/tools/train.py publishes)


def stage_models(stage: Any) -> ModelSet | None:
    """The rule stage's ModelSet, if the stage has one (the built-in stage has no rules)."""
    models = getattr(stage, "models", None)
    return models if isinstance(models, ModelSet) else None


class ModelReader:
    """Reads ``pulse.models`` into ``models`` (see the module docstring)."""

    def __init__(
        self, settings: Settings, models: ModelSet, *, stage: Any = None, poll_s: float = 0.5
    ) -> None:
        self.settings = settings
        self.models = models
        self.stage = stage
        self.topic = settings.topic(MODELS)
        self.poll_s = poll_s
        self.stopping = threading.Event()
        self.thread: threading.Thread | None = None
        self.consumer: Any = None
        self.applied = 0  # models put (or dropped) since start
        self.loaded_at: dict[str, float] = {}  # task -> wall clock of its last put

    # -- start and stop ----------------------------------------------------------

    def start(self, *, initial_timeout_s: float = 30.0) -> None:
        """Create the topic if needed, read it to its end, warn, then follow it (a thread)."""
        from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

        from pipeline.contract.topics import ensure_compacted_topic

        ensure_compacted_topic(self.settings, self.topic, partitions=1)
        self.consumer = Consumer(
            {
                "bootstrap.servers": self.settings.bootstrap_servers,
                "group.id": f"{self.settings.app_id}-models",  # never commits
                "enable.auto.commit": False,
                "enable.partition.eof": True,
                "fetch.wait.max.ms": 100,
            }
        )
        self.consumer.assign([TopicPartition(self.topic, 0, OFFSET_BEGINNING)])
        self._read_to_end(initial_timeout_s)
        if self.stage is not None:
            for warning in unscored(self.stage, self.models):
                log.warning("%s", warning)
        self.thread = threading.Thread(target=self._follow, name="pulse-models", daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.stopping.set()
        if self.thread is not None:
            self.thread.join(5)
        elif self.consumer is not None:
            self.consumer.close()

    # -- reading -------------------------------------------------------------------

    def _read_to_end(self, timeout_s: float) -> None:
        from confluent_kafka import KafkaError

        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for msg in self.consumer.consume(100, timeout=0.5):
                err = msg.error()
                if err is not None:
                    if err.code() == KafkaError._PARTITION_EOF:
                        log.info("models at start: %s", self.describe())
                        return
                    continue
                self.apply(msg.key(), msg.value())
        log.warning("%s: not read to its end within %.0f s; continuing", self.topic, timeout_s)

    def _follow(self) -> None:
        try:
            while not self.stopping.is_set():
                for msg in self.consumer.consume(100, timeout=self.poll_s):
                    if msg.error() is None:
                        self.apply(msg.key(), msg.value())
                metrics.refresh_models(self.models, self.loaded_at)
        except Exception:
            log.exception("the model reader stopped; the models in use stay")
        finally:
            self.consumer.close()

    def apply(self, key: bytes | None, value: bytes | None) -> str | None:
        """Put one ``pulse.models`` record; returns the task, None if it was refused."""
        task = key.decode(errors="replace") if key else None
        if not value:
            if task is not None and self.models.drop(task):
                self.loaded_at.pop(task, None)
                log.info("model %s removed (tombstone on %s)", task, self.topic)
            metrics.refresh_models(self.models, self.loaded_at)
            return task
        try:
            put = self.models.put_json(value)
        except ModelError as exc:
            log.error("%s: model %s refused, the previous one stays: %s", self.topic, task, exc)
            metrics.MODELS_REFUSED.inc()
            return None
        if task is not None and put != task:
            log.warning("%s: a record keyed %r holds a model of task %r", self.topic, task, put)
        self.applied += 1
        self.loaded_at[put] = time.time()
        log.info("model %s version %s loaded", put, self.models.version(put))
        metrics.refresh_models(self.models, self.loaded_at)
        return put

    def describe(self) -> str:
        tasks = self.models.tasks()
        if not tasks:
            return "none"
        return ", ".join(f"{t} ({self.models.version(t)})" for t in tasks)


def start_model_reader(settings: Settings, stage: Any) -> ModelReader | None:
    """A started :class:`ModelReader` for ``stage``'s models; None when it has none."""
    models = stage_models(stage)
    if models is None:
        return None
    reader = ModelReader(settings, models, stage=stage)
    reader.start()
    return reader
