"""Pulse's pure event-time core.

Nothing here imports Faust or a Kafka client, and nothing reads the wall clock:
time arrives as data (``timestamp_ms``, ``watermark_ms``). The Faust agents and
``pulse replay`` are thin adapters over the same functions.

The same modules compiled with mypyc are used instead when a build of exactly
these sources exists (:mod:`pipeline.core.native`; ``PULSE_CORE`` chooses).
"""

from pipeline.core.native import activate as _activate

_activate(__path__)
