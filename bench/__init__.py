"""Pulse's harness: its runtime's speed beside raw Kafka and Quix Streams, and its reliability.

Run ``python -m bench.run`` (see ``bench/README.md``); results go to ``bench/RESULTS.md``.
"""
