"""Pulse's pure event-time core.

Nothing here imports Faust or a Kafka client, and nothing reads the wall clock:
time arrives as data (``timestamp_ms``, ``watermark_ms``). The Faust agents and
``pulse replay`` are thin adapters over the same functions.
"""
