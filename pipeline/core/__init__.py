"""Pulse's pure event-time core: ``(state, event) -> (state, outputs)``.

Owns: events and their validation, identity stitching, sessions, windows,
traits, segments, trigger rules, timers, caps, dedupe, the processor
(``engine.py``) and the registry of custom predicates and traits
(``extensions.py``).

May import: nothing of Pulse outside ``pipeline/core`` but :mod:`pipeline.errors`
(the exception tree, which imports nothing). No Faust, no Kafka client, and no
wall clock: time arrives as data (``timestamp_ms``, ``watermark_ms``). The
worker (:mod:`pipeline.worker`) and ``pulse replay`` are thin adapters over the
same functions. Checked by the import contracts in pyproject.toml and by ruff's
banned-api rule.

The same modules compiled with mypyc are used instead when a build of exactly
these sources exists (:mod:`pipeline.core.native`; ``PULSE_CORE`` chooses).
"""

from pipeline.core.native import activate as _activate

_activate(__path__)
