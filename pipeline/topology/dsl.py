"""Topology files: triggers, segments and caps in YAML, validated on load.

Errors name the file, the line and the field, and say what was expected::

    topologies/commerce.yaml:14: triggers.checkout_abandoned.absence.within:
        expected a duration like 30m, 2h, 7d or 500ms, got 'thirty minutes'

An event name that neither the built-in catalog, the topology's own ``events:``
list nor any rule knows is a *warning* (likely a typo), not an error.
See README.md ("Topology files") for every construct with an example.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from pipeline.core.absence import AbsenceRule
from pipeline.core.caps import DAY_MS, Cap, CapPolicy, Fatigue
from pipeline.core.engine import Operator
from pipeline.core.events import canonical_event_name
from pipeline.core.extensions import PREDICATES
from pipeline.core.identity import ID_TYPES, IdentityRules
from pipeline.core.models import score_path
from pipeline.core.predicates import OPERATORS, CustomPredicate, Predicate
from pipeline.core.rules import Rule, RuleStage, SegmentSpec, TraitsOf, TriggerSpec
from pipeline.core.triggers import DeliverAt, ImmediateRule, MilestoneRule, RepetitionRule
from pipeline.errors import ConfigError
from pipeline.topology.nodes import NodeReader
from pipeline.topology.operators import (
    TraitsReader,
    base_operators,
    default_operators,
    person_traits,
    predictive_operators,
    predictive_traits,
)
from pipeline.topology.predictions import read_predictions

#: Event names Pulse understands for commerce and lifecycle (see docs/events.md).
KNOWN_EVENTS = frozenset({
    "page_viewed", "screen_viewed", "products_searched", "search", "product_list_viewed",
    "product_viewed", "product_clicked", "product_added", "product_removed", "cart_viewed",
    "checkout_started", "checkout_step_completed", "payment_info_entered", "order_completed",
    "order_refunded", "payment_failed", "coupon_applied", "signed_up", "logged_in",
    "logged_out", "push_delivered", "push_opened", "push_dismissed", "email_delivered",
    "email_opened", "email_clicked", "email_dismissed", "identify",
})  # fmt: skip


@dataclass(frozen=True)
class Topology:
    """A loaded topology: what the worker and ``pulse replay`` run."""

    name: str
    operators: tuple[Operator, ...]
    stage: RuleStage
    warnings: tuple[str, ...] = ()
    destinations: tuple[str, ...] = ()
    source: str = "<built-in>"
    identity: IdentityRules = field(default_factory=IdentityRules)


PATH_HEADS = ("properties", "context", "trait", "score", "best_hour")  # + "." + the rest
WHOLE_PATHS = ("event", "local_hour", "local_weekday", "recs")


class _Loader(NodeReader):
    """The node reader, plus the topology's constructs: events, predicates, rules, caps."""

    def __init__(self, path: str, text: str) -> None:
        super().__init__(path, text)
        self.mentioned_events: list[tuple[str, str, int]] = []

    def event(self, node: yaml.Node, where: str) -> str:
        name = canonical_event_name(self.string(node, where))
        self.mentioned_events.append((name, where, node.start_mark.line + 1))
        return name

    def predicate(self, node: yaml.Node | None, where: str) -> Predicate:
        conditions: list[tuple[str, str, Any]] = []
        segments: list[str] = []
        custom: list[CustomPredicate] = []
        for path, value in self.mapping(node, where).items():
            here = f"{where}.{path}"
            if path == "segment":
                segments.extend(self.strings(value, here))
                continue
            if path == "custom":
                for name in self.strings(value, here):
                    if name not in PREDICATES:
                        known = ", ".join(sorted(PREDICATES)) or "none registered"
                        raise self.fail(value, here, f"a registered predicate ({known})", name)
                    custom.append(PREDICATES[name])
                continue
            head = path.split(".", 1)[0]
            if head == "score" and score_path(path) is None:
                raise self.fail(value, here, "score.<task> or score.<task>.percentile")
            if head not in PATH_HEADS and path not in WHOLE_PATHS:
                raise self.fail(
                    value, here, "a path: properties.<name>, context.<name>, trait.<name>, "
                    "score.<task>[.percentile], recs, best_hour.<channel>[.confidence], "
                    "event, local_hour, local_weekday, segment or custom",
                )  # fmt: skip
            if isinstance(value, yaml.MappingNode):
                for op, arg in self.mapping(value, here).items():
                    if op not in OPERATORS:
                        raise self.fail(arg, f"{here}.{op}", f"one of {', '.join(OPERATORS)}")
                    expected = self.plain(arg)
                    if op in ("in", "not_in") and not isinstance(expected, list):
                        raise self.fail(arg, f"{here}.{op}", "a list", expected)
                    conditions.append((path, op, expected))
            else:
                conditions.append((path, "eq", self.plain(value)))
        return Predicate(tuple(conditions), tuple(segments), tuple(custom))

    def rule(self, name: str, fields: Mapping[str, yaml.Node], where: str) -> Rule:
        kinds = [k for k in ("absence", "repetition", "milestone", "immediate") if k in fields]
        if len(kinds) != 1:
            raise self.fail(
                None if not fields else next(iter(fields.values())), where,
                "exactly one of absence, repetition, milestone, immediate",
            )  # fmt: skip
        kind = kinds[0]
        node = fields[kind]
        here = f"{where}.{kind}"
        try:
            if kind in ("milestone", "immediate"):
                event = self.event(node, here)
                return (
                    MilestoneRule(name, event)
                    if kind == "milestone"
                    else ImmediateRule(name, event)
                )
            spec = self.mapping(node, here)
            if kind == "absence":
                self.check_keys(spec, here, {"start", "missing", "within", "on_repeat"})
                on_repeat = "ignore"
                if "on_repeat" in spec:
                    on_repeat = self.string(spec["on_repeat"], f"{here}.on_repeat")
                    if on_repeat not in ("ignore", "restart"):
                        raise self.fail(
                            spec["on_repeat"], f"{here}.on_repeat", "ignore or restart", on_repeat
                        )
                return AbsenceRule(
                    name,
                    self.event(self._need(spec, "start", node, here), f"{here}.start"),
                    self.event(self._need(spec, "missing", node, here), f"{here}.missing"),
                    self.duration(self._need(spec, "within", node, here), f"{here}.within"),
                    restart_on_repeat=on_repeat == "restart",
                )
            self.check_keys(spec, here, {"event", "at_least", "within", "unless", "same"})
            return RepetitionRule(
                name,
                self.event(self._need(spec, "event", node, here), f"{here}.event"),
                self.integer(self._need(spec, "at_least", node, here), f"{here}.at_least", 2),
                self.duration(self._need(spec, "within", node, here), f"{here}.within"),
                unless=self.event(spec["unless"], f"{here}.unless") if "unless" in spec else None,
                same=self.string(spec["same"], f"{here}.same") if "same" in spec else None,
            )
        except ValueError as exc:
            raise self.fail(node, here, f"a valid rule ({exc})") from exc

    def deliver_at(self, fields: Mapping[str, yaml.Node], where: str) -> DeliverAt | None:
        """``deliver_at: best_hour`` with ``max_delay: 12h`` (both, or neither)."""
        if "deliver_at" not in fields:
            if "max_delay" in fields:
                raise self.fail(fields["max_delay"], f"{where}.max_delay", "deliver_at with it")
            return None
        node = fields["deliver_at"]
        mode = self.string(node, f"{where}.deliver_at")
        delay = self.duration(self._need(fields, "max_delay", node, where), f"{where}.max_delay")
        try:
            return DeliverAt(mode, delay)
        except ValueError as exc:
            raise self.fail(node, f"{where}.deliver_at", f"a valid timing ({exc})") from exc

    def caps(self, node: yaml.Node | None) -> CapPolicy:
        fields = self.mapping(node, "caps")
        self.check_keys(fields, "caps", {"limits", "quiet_hours", "fatigue"})
        caps: list[Cap] = []
        limits = fields.get("limits")
        if limits is not None:
            if not isinstance(limits, yaml.SequenceNode):
                raise self.fail(limits, "caps.limits", "a list of limits")
            for i, item in enumerate(limits.value):
                here = f"caps.limits[{i}]"
                spec = self.mapping(item, here)
                self.check_keys(spec, here, {"name", "max", "per", "channel", "rule"})
                per = spec.get("per")
                calendar = per is not None and self.scalar(per, f"{here}.per") == "calendar_day"
                window = DAY_MS
                if per is not None and not calendar:
                    window = self.duration(per, f"{here}.per")
                caps.append(
                    Cap(
                        name=self.string(self._need(spec, "name", item, here), f"{here}.name"),
                        max=self.integer(self._need(spec, "max", item, here), f"{here}.max"),
                        window_ms=window,
                        calendar_day=calendar,
                        channel=self._optional(spec, "channel", here),
                        rule=self._optional(spec, "rule", here),
                    )
                )
        quiet_start = quiet_end = None
        if "quiet_hours" in fields:
            q = self.mapping(fields["quiet_hours"], "caps.quiet_hours")
            self.check_keys(q, "caps.quiet_hours", {"from", "to"})
            quiet_start = self.integer(
                self._need(q, "from", fields["quiet_hours"], "caps.quiet_hours"),
                "caps.quiet_hours.from",
            )
            quiet_end = self.integer(
                self._need(q, "to", fields["quiet_hours"], "caps.quiet_hours"),
                "caps.quiet_hours.to",
            )
            for value, key in ((quiet_start, "from"), (quiet_end, "to")):
                if value > 23:
                    raise self.fail(q[key], f"caps.quiet_hours.{key}", "an hour 0-23", value)
        fatigue = None
        if "fatigue" in fields:
            f = self.mapping(fields["fatigue"], "caps.fatigue")
            here = "caps.fatigue"
            self.check_keys(f, here, {"events", "at_least", "within", "factor"})
            events = [
                self.event(n, f"{here}.events")
                for n in self._seq(
                    self._need(f, "events", fields["fatigue"], here), f"{here}.events"
                )
            ]
            factor = float(self.scalar(f["factor"], f"{here}.factor")) if "factor" in f else 0.5
            if not 0 <= factor <= 1:
                raise self.fail(f["factor"], f"{here}.factor", "a number between 0 and 1", factor)
            fatigue = Fatigue.of(
                events,
                self.integer(
                    self._need(f, "at_least", fields["fatigue"], here), f"{here}.at_least", 1
                ),
                self.duration(self._need(f, "within", fields["fatigue"], here), f"{here}.within"),
                factor,
            )
        return CapPolicy(tuple(caps), quiet_start, quiet_end, fatigue)

    def identity(self, node: yaml.Node | None) -> IdentityRules:
        fields = self.mapping(node, "identity")
        self.check_keys(fields, "identity", {"max_anonymous_per_user", "blocked", "priority"})
        kwargs: dict[str, Any] = {}
        if "max_anonymous_per_user" in fields:
            kwargs["max_anonymous_per_user"] = self.integer(
                fields["max_anonymous_per_user"], "identity.max_anonymous_per_user", 1
            )
        blocked: list[str] = []
        if "blocked" in fields:
            for i, item in enumerate(self._seq(fields["blocked"], "identity.blocked")):
                value = self.scalar(item, f"identity.blocked[{i}]")
                if isinstance(value, bool) or not isinstance(value, str | int | float):
                    raise self.fail(item, f"identity.blocked[{i}]", "an id value", value)
                blocked.append(str(item.value))  # as written: `0` and `"0"` are the same id
        if "priority" in fields:
            node_p = fields["priority"]
            priority = tuple(
                self.string(item, f"identity.priority[{i}]")
                for i, item in enumerate(self._seq(node_p, "identity.priority"))
            )
            if sorted(priority) != sorted(ID_TYPES):
                raise self.fail(
                    node_p, "identity.priority", "user_id and anonymous_id, once each", priority
                )
            kwargs["priority"] = priority
        try:
            return IdentityRules.with_blocked(blocked, **kwargs)
        except ValueError as exc:  # pragma: no cover - every field is checked above
            raise self.fail(node, "identity", f"valid identity rules ({exc})") from exc


def load_topology(path: str | Path, text: str | None = None) -> Topology:
    """Load and validate a topology file (raises :class:`ConfigError`)."""
    path = str(path)
    if text is None:
        try:
            text = Path(path).read_text()
        except OSError as exc:
            raise ConfigError(f"{path}: cannot read topology file: {exc.strerror}") from exc
    ld = _Loader(path, text)
    top = ld.mapping(ld.root, "topology")
    ld.check_keys(
        top,
        "topology",
        {
            "version", "name", "description", "events", "triggers", "segments", "caps",
            "identity", "predictions",
        },
    )  # fmt: skip
    if "version" in top and ld.scalar(top["version"], "version") != 1:
        raise ld.fail(top["version"], "version", "1")
    name = ld.string(top["name"], "name") if "name" in top else Path(path).stem
    declared = {canonical_event_name(n) for n in ld.strings(top.get("events"), "events")}

    triggers: list[TriggerSpec] = []
    destinations: set[str] = set()
    for rule_name, node in ld.mapping(top.get("triggers"), "triggers").items():
        where = f"triggers.{rule_name}"
        fields = ld.mapping(node, where)
        ld.check_keys(
            fields,
            where,
            {
                "absence",
                "repetition",
                "milestone",
                "immediate",
                "where",
                "channel",
                "destinations",
                "description",
                "deliver_at",
                "max_delay",
            },
        )
        dests = ld.strings(fields.get("destinations"), f"{where}.destinations")
        destinations.update(dests)
        triggers.append(TriggerSpec(
            rule=ld.rule(rule_name, fields, where),
            where=ld.predicate(fields.get("where"), f"{where}.where"),
            channel=ld._optional(fields, "channel", where),
            destinations=dests,
            deliver_at=ld.deliver_at(fields, where),
        ))  # fmt: skip

    segments: list[SegmentSpec] = []
    for seg_name, node in ld.mapping(top.get("segments"), "segments").items():
        where = f"segments.{seg_name}"
        fields = ld.mapping(node, where)
        ld.check_keys(fields, where, {"where", "destinations", "description"})
        if "where" not in fields:
            raise ld.fail(node, f"{where}.where", "this field (it is required)")
        dests = ld.strings(fields.get("destinations"), f"{where}.destinations")
        destinations.update(dests)
        segments.append(
            SegmentSpec(seg_name, ld.predicate(fields["where"], f"{where}.where"), dests)
        )

    predictions = None
    if "predictions" in top:
        predictions = read_predictions(ld, top["predictions"], ld.event)

    seg_names = {s.name for s in segments}
    wheres = [(t.name, t.where) for t in triggers] + [(s.name, s.where) for s in segments]
    for owner, predicate in wheres:
        for seg in predicate.segments:
            if seg not in seg_names:
                raise ConfigError(f"{path}: {owner}: where.segment names unknown segment {seg!r}")

    known = KNOWN_EVENTS | declared
    for event, where, line in ld.mentioned_events:
        if event not in known:
            ld.warnings.append(
                f"{path}:{line}: {where}: event {event!r} is not a known event name "
                "(typo? declare it under `events:` to silence this)"
            )
    if predictions is None or not predictions.send_channels:
        for spec in triggers:
            if spec.deliver_at is not None:
                ld.warnings.append(
                    f"{path}: triggers.{spec.name}.deliver_at: no predictions.send_time "
                    "section, so no engagement hours are kept: sent at the first allowed hour"
                )
    operators = tuple(base_operators())
    traits_of: TraitsOf = person_traits
    if predictions is not None:  # the folds best send time and next best product read
        traits = predictive_traits(predictions.send_channels, predictions.recs_k > 0)
        operators = tuple(predictive_operators(traits))
        traits_of = TraitsReader(traits)
    stage = RuleStage(
        tuple(triggers),
        tuple(segments),
        ld.caps(top.get("caps")),
        traits_of,
        predictions=predictions,
    )
    return Topology(
        name=name,
        operators=operators,
        stage=stage,
        warnings=tuple(ld.warnings),
        destinations=tuple(sorted(destinations)),
        source=path,
        identity=ld.identity(top.get("identity")),
    )


def load(path: str | None) -> Topology:
    """The topology file at ``path``, or the built-in one (checkout abandonment)."""
    if path is not None:
        return load_topology(path)
    return Topology(name="builtin", operators=tuple(default_operators()), stage=RuleStage())
