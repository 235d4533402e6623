"""The runtime: consumer loop, partition stores, transactions, watermarks, the re-key hop.

``run.py`` is ``pulse worker``; ``loop.py`` the consumer loop and assignment;
``partition.py`` one partition number's work; ``source.py`` what happens to an
event on its source partition (also modelled by ``pulse replay``);
``clocks.py`` watermarks across partitions; ``store.py`` and ``restore.py`` the
RocksDB stores and their changelog; ``commit.py`` transactions and commits.
Nothing here is imported by :mod:`pipeline.core`.
"""
