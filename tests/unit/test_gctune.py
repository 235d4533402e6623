"""The first Processor of a process tunes the garbage collector (pipeline.core.gctune)."""

from __future__ import annotations

import gc

from pipeline.core import gctune
from pipeline.core.engine import MemoryStore, Processor


def test_a_processor_raises_the_young_generation_threshold() -> None:
    Processor([], allowed_lateness_ms=0, store=MemoryStore())
    young, middle, old = gc.get_threshold()
    assert young >= gctune.YOUNG_THRESHOLD
    assert middle >= 20
    assert old >= 100
    assert gc.isenabled()


def test_tuning_runs_once_per_process() -> None:
    gctune.tune()
    frozen = gc.get_freeze_count()
    Processor([], allowed_lateness_ms=0, store=MemoryStore())
    assert gc.get_freeze_count() == frozen  # no second freeze
