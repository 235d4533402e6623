"""The topology language: topology files parsed, validated and compiled into operators.

Owns: ``nodes.py`` reading YAML node by node with file:line: field errors
(the destinations file uses it too); ``dsl.py`` topology files: triggers,
segments, caps, identity rules, checked on load into a :class:`Topology` (the
core's rule stage plus operators); ``operators.py`` the built-in operators and
the traits predicates read.

May import: :mod:`pipeline.core`, :mod:`pipeline.errors`. Custom predicates
and traits are registered in :mod:`pipeline.core.extensions` (users import
:mod:`pipeline.extensions`).
"""
