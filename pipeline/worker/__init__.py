"""The Faust adapters: thin agents over :mod:`pipeline.core`."""
