"""The ``pulse`` command line: a thin layer over the packages below it."""

from pipeline.cli.main import main

__all__ = ["main"]
