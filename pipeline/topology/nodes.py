"""A YAML file read node by node, each field's line kept for the errors.

Topology files (:mod:`pipeline.topology.dsl`) and destination files
(:mod:`pipeline.deliver.config`) are read with :class:`NodeReader`: every
value is checked where it is read, and a bad one raises a
:class:`~pipeline.errors.ConfigError` naming the file, the line and the field::

    topologies/commerce.yaml:14: triggers.checkout_abandoned.absence.within:
        expected a duration like 30m, 2h, 7d or 500ms, got 'thirty minutes'
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import yaml

from pipeline.core.caps import DAY_MS
from pipeline.errors import ConfigError

_DURATION = re.compile(r"^\s*(\d+)\s*(ms|s|m|h|d|w)\s*$")
_UNIT_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": DAY_MS, "w": 7 * DAY_MS}


class NodeReader:
    """Walks the YAML node tree, remembering each field's line for errors."""

    def __init__(self, path: str, text: str) -> None:
        self.path = path
        self.warnings: list[str] = []
        try:
            self.root = yaml.compose(text)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            line = mark.line + 1 if mark is not None else 0
            raise ConfigError(f"{path}:{line}: not valid YAML: {exc}") from exc

    def fail(
        self, node: yaml.Node | None, where: str, expected: str, got: Any = None
    ) -> ConfigError:
        line = node.start_mark.line + 1 if node is not None else 0
        got_text = "" if got is None else f", got {got!r}"
        return ConfigError(f"{self.path}:{line}: {where}: expected {expected}{got_text}")

    def mapping(self, node: yaml.Node | None, where: str) -> dict[str, yaml.Node]:
        if node is None:
            return {}
        if not isinstance(node, yaml.MappingNode):
            raise self.fail(node, where, "a mapping")
        out: dict[str, yaml.Node] = {}
        for key, value in node.value:
            out[str(key.value)] = value
        return out

    def scalar(self, node: yaml.Node, where: str) -> Any:
        if not isinstance(node, yaml.ScalarNode):
            raise self.fail(node, where, "a single value")
        return yaml.safe_load(yaml.serialize(node))

    def plain(self, node: yaml.Node) -> Any:
        return yaml.safe_load(yaml.serialize(node))

    def string(self, node: yaml.Node, where: str) -> str:
        value = self.scalar(node, where)
        if not isinstance(value, str) or not value:
            raise self.fail(node, where, "a non-empty string", value)
        return value

    def integer(self, node: yaml.Node, where: str, minimum: int = 0) -> int:
        value = self.scalar(node, where)
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise self.fail(node, where, f"an integer >= {minimum}", value)
        return value

    def duration(self, node: yaml.Node, where: str) -> int:
        value = self.scalar(node, where)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
        match = _DURATION.match(str(value))
        if not match or int(match.group(1)) == 0:
            raise self.fail(node, where, "a duration like 30m, 2h, 7d or 500ms", value)
        return int(match.group(1)) * _UNIT_MS[match.group(2)]

    def strings(self, node: yaml.Node | None, where: str) -> tuple[str, ...]:
        if node is None:
            return ()
        if isinstance(node, yaml.ScalarNode):
            return (self.string(node, where),)
        if not isinstance(node, yaml.SequenceNode):
            raise self.fail(node, where, "a list of names")
        return tuple(self.string(item, f"{where}[{i}]") for i, item in enumerate(node.value))

    def check_keys(self, fields: Mapping[str, yaml.Node], where: str, allowed: set[str]) -> None:
        for key, node in fields.items():
            if key not in allowed:
                raise self.fail(node, f"{where}.{key}", f"one of {', '.join(sorted(allowed))}")

    def _need(
        self, spec: Mapping[str, yaml.Node], key: str, parent: yaml.Node, where: str
    ) -> yaml.Node:
        if key not in spec:
            raise self.fail(parent, f"{where}.{key}", "this field (it is required)")
        return spec[key]

    def _optional(self, spec: Mapping[str, yaml.Node], key: str, where: str) -> str | None:
        return self.string(spec[key], f"{where}.{key}") if key in spec else None

    def _seq(self, node: yaml.Node, where: str) -> list[yaml.Node]:
        if not isinstance(node, yaml.SequenceNode):
            raise self.fail(node, where, "a list")
        return list(node.value)
