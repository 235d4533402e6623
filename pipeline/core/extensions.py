"""Custom predicates and traits, registered by name and used from topology files.

::

    from pipeline.extensions import predicate, trait

    @predicate("is_vip")
    def is_vip(facts):                       # facts: pipeline.core.predicates.Facts
        return facts.traits.get("monetary_value", 0) > 1_000

    @trait("cart_to_order_ratio")
    def cart_to_order_ratio(traits):         # the person's built-in traits (a dict)
        carts = traits.get("count_product_added_30d", 0)
        return traits.get("count_order_completed_30d", 0) / carts if carts else 0.0

Then ``where: {custom: is_vip}`` or ``where: {trait.cart_to_order_ratio: {lt: 0.1}}``.
Register them before the topology is loaded (e.g. in a module named by
``pulse worker --plugin my_module``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from pipeline.core.predicates import CustomPredicate

PREDICATES: dict[str, CustomPredicate] = {}
TRAITS: dict[str, Callable[[Mapping[str, Any]], Any]] = {}

F = TypeVar("F", bound=Callable[..., Any])


def predicate(name: str) -> Callable[[F], F]:
    """Register ``fn(facts) -> bool`` as the custom predicate ``name``."""

    def register(fn: F) -> F:
        PREDICATES[name] = fn
        return fn

    return register


def trait(name: str) -> Callable[[F], F]:
    """Register ``fn(traits) -> value`` as the derived trait ``name``."""

    def register(fn: F) -> F:
        TRAITS[name] = fn
        return fn

    return register
