"""The runtime: consumer loop, partition stores, transactions, watermarks, the re-key hop.

Owns: ``loop.py`` the consumer loop and assignment; ``partition.py`` one
partition number's work; ``source.py`` what happens to an event on its source
partition (also modelled by ``pulse replay``); ``persons.py`` the by-person
side (re-keyed records, merges, hand-over); ``clocks.py`` watermarks across
partitions; ``store.py``, ``records.py`` and ``restore.py`` the RocksDB stores,
the stored encoding and the changelog; ``commit.py`` transactions and commits;
``metrics.py`` the worker's Prometheus series. ``pulse worker``'s process is
:mod:`pipeline.cli.worker`.

May import: :mod:`pipeline.core`, :mod:`pipeline.contract`,
:mod:`pipeline.topology`, :mod:`pipeline.config`, :mod:`pipeline.errors`.
Imported by the profile API, the tools and the CLI; never by the core.
"""
