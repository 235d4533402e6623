"""Custom predicates and traits, registered by name and used from topology files.

::

    from pipeline.extensions import predicate, trait

    @predicate("is_vip")
    def is_vip(facts):                       # facts: pipeline.core.predicates.Facts
        return facts.traits.get("monetary_value", 0) > 1_000

Then ``where: {custom: is_vip}`` in a topology file. This is the import path
for users; the registry itself is :mod:`pipeline.core.extensions`, inside the
core, which reads it when a topology's rules are planned (and the core imports
nothing outside ``pipeline/core`` but :mod:`pipeline.errors`).
"""

from pipeline.core.extensions import PREDICATES, TRAITS, predicate, trait

__all__ = ["PREDICATES", "TRAITS", "predicate", "trait"]
