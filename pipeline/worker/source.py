"""What happens to an event on its source partition, before it reaches its person.

One :class:`SourcePartition` models one ``pulse.events`` partition. The worker
keeps one per assigned partition and ``pulse replay`` keeps one per partition of
the topic (it knows each event's key, so its partition), so both decide the
same things in the same order:

1. **duplicates**: a message id seen before on the partition (within the
   :class:`~pipeline.core.dedupe.DedupeWindow`) is dropped;
2. **lateness**: an event earlier than the partition's own stream time minus
   the allowed lateness is *late*. The partition's stream time is the largest
   event time among its earlier records (offset order), so whether an event is
   late depends on the data alone, never on how partitions interleave;
3. **identity**: the partition's :class:`~pipeline.core.stitching.Stitcher`
   (links keyed by anonymous id, which is how events are keyed) names the
   person and the identity actions (links, conflicts).

Example::

    >>> from pipeline.core.events import Event
    >>> src = SourcePartition(allowed_lateness_ms=1_000)
    >>> e = Event(message_id="m1", type="track", event="page_viewed", user_id="u",
    ...           timestamp_ms=5_000)
    >>> src.accept(e).kind, src.stream_time_ms
    ('route', 5000)
    >>> src.accept(e).kind
    'duplicate'

The class lives in :mod:`pipeline.core.intake`, so that the compiled core runs
it (it is called once per event, in the worker and in replay); ``identity``
defaults to the default :class:`~pipeline.core.identity.IdentityRules` (None:
no stitching, the event names its person).
"""

from __future__ import annotations

from pipeline.core.intake import Accepted, SourcePartition

__all__ = ["Accepted", "SourcePartition"]
