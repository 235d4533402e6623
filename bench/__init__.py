"""Pulse benchmarks: one workload through raw Kafka, Faust, Quix Streams and Pulse.

Run ``python -m bench.run`` (see ``bench/README.md``); results go to ``bench/RESULTS.md``.
"""
