"""Which rules see which events: logsource routing and the rule index.

Routing follows the design contract. A rule whose logsource names a product (and
optionally a service) matches the *raw* record of the sources with that Sigma
logsource, under the vendor's own field names, so SigmaHQ rules run unchanged. A rule
with `product: cicd` matches the *normalized* event; its optional `service` names one
`event.source`. A rule never sees events of another logsource, and rules with a
`category` other than `application` (SigmaHQ's category for application logs) match no
audit source.

The index narrows each route further: per route it picks the field that most rules
pin to plain values (GitHub's `action`, Kubernetes' `verb`...), and an event is checked
only against the rules whose required values contain the event's value, plus the
rules that pin nothing; a second field narrows those the same way. A rule's required
values are derived from its condition tree conservatively (a necessary condition), so
the result always equals checking every rule of the route.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sigma.conditions import (
    ConditionAND,
    ConditionIdentifier,
    ConditionNOT,
    ConditionOR,
    ConditionSelector,
)
from sigma.rule import SigmaDetection, SigmaDetectionItem
from sigma.types import SigmaString

from detector.events import Event
from detector.normalize.base import SourceRoute
from detector.rules.compiled import CompiledRule
from detector.rules.condition import select
from detector.rules.fields import MISSING, Getter, record_getter

#: The Sigma product of rules that match normalized events.
NORMALIZED_PRODUCT = "cicd"

Values = frozenset[str] | None  # None: the rule does not pin the field


#: Rule lists at most this long are checked whole rather than narrowed further.
_NARROW_ABOVE = 4


@dataclass
class _Narrowed:
    """Rules in a fixed order, narrowed by a second field where that pays off.

    Each list it returns keeps the order of `rules`, so matching through it gives the
    same result, in the same order, as checking all of `rules`.
    """

    rules: list[CompiledRule]
    getter: Getter | None = None
    by_value: dict[str, list[CompiledRule]] = field(default_factory=dict)
    unpinned: list[CompiledRule] = field(default_factory=list)

    @classmethod
    def build(
        cls, rules: list[CompiledRule], pins: Mapping[int, dict[str, frozenset[str]]], used: str
    ) -> _Narrowed:
        narrowed = cls(rules)
        if len(rules) <= _NARROW_ABOVE:
            return narrowed
        counts = Counter(name for r in rules for name in pins[id(r)] if name != used)
        if not counts:
            return narrowed
        best = min(counts, key=lambda name: (-counts[name], name))
        narrowed.getter = record_getter(best)
        narrowed.unpinned = [r for r in rules if best not in pins[id(r)]]
        values = {value for r in rules for value in pins[id(r)].get(best, ())}
        for value in values:
            narrowed.by_value[value] = [
                r for r in rules if best not in pins[id(r)] or value in pins[id(r)][best]
            ]
        return narrowed

    def candidates(self, record: Mapping[str, Any]) -> Sequence[CompiledRule]:
        if self.getter is None:
            return self.rules
        value = self.getter(record)
        if value is MISSING or value is None:
            return self.unpinned
        if isinstance(value, str):
            return self.by_value.get(value.lower(), self.unpinned)
        return self.rules  # lists, and numbers Sigma compares loosely: check all


@dataclass
class _RouteIndex:
    """The rules of one route, indexed by one discriminating field (and a second one
    within the rules of each value)."""

    rules: list[CompiledRule]
    discriminator: str | None = None
    getter: Getter | None = None
    by_value: dict[str, list[CompiledRule]] = field(default_factory=dict)
    unpinned: list[CompiledRule] = field(default_factory=list)
    #: per value of the discriminator, its rules and the unpinned ones, narrowed
    narrowed: dict[str, _Narrowed] = field(default_factory=dict)
    #: the unpinned rules (for a record without the field), narrowed
    missing: _Narrowed | None = None

    @classmethod
    def build(cls, rules: list[CompiledRule], indexed: bool) -> _RouteIndex:
        index = cls(rules)
        if not indexed or not rules:
            return index
        pins = [_pinned_fields(rule) for rule in rules]
        counts = Counter(name for pinned in pins for name in pinned)
        if not counts:
            return index
        best = min(counts, key=lambda name: (-counts[name], name))
        index.discriminator, index.getter = best, record_getter(best)
        for rule, pinned in zip(rules, pins, strict=True):
            values = pinned.get(best)
            if values is None:
                index.unpinned.append(rule)
            else:
                for value in values:
                    index.by_value.setdefault(value, []).append(rule)
        by_rule = {id(rule): pinned for rule, pinned in zip(rules, pins, strict=True)}
        index.missing = _Narrowed.build(index.unpinned, by_rule, best)
        for value, pinned_rules in index.by_value.items():
            index.narrowed[value] = _Narrowed.build([*pinned_rules, *index.unpinned], by_rule, best)
        return index

    def candidates(self, record: Mapping[str, Any]) -> Sequence[CompiledRule]:
        if self.getter is None or self.missing is None:
            return self.rules
        value = self.getter(record)
        if value is MISSING or value is None:
            return self.missing.candidates(record)
        if isinstance(value, str):
            narrowed = self.narrowed.get(value.lower(), self.missing)
            return narrowed.candidates(record)
        values = value if isinstance(value, list) else [value]
        if not all(isinstance(v, str) for v in values):
            return self.rules  # Sigma compares numbers and strings loosely: check all
        if len(values) == 1:
            return [*self.by_value.get(values[0].lower(), ()), *self.unpinned]
        seen: dict[int, CompiledRule] = {}
        for v in values:
            for rule in self.by_value.get(v.lower(), ()):
                seen[id(rule)] = rule
        return [*seen.values(), *self.unpinned]


class RuleRouter:
    """Finds the rules an event must be checked against, and checks them."""

    def __init__(
        self,
        rules: Iterable[CompiledRule],
        routes: Mapping[str, SourceRoute],
        *,
        indexed: bool = True,
    ) -> None:
        self.rules = list(rules)
        self.routes = dict(routes)
        self.raw: dict[str, _RouteIndex] = {}
        self.normalized: dict[str, _RouteIndex] = {}
        #: sources with a normalized-event rule that reads `@timestamp`
        self._timestamp_read: set[str] = set()
        for source, route in self.routes.items():
            raw = [r for r in self.rules if _serves(r, route)]
            normalized = [r for r in self.rules if _serves_normalized(r, source)]
            self.raw[source] = _RouteIndex.build(raw, indexed)
            self.normalized[source] = _RouteIndex.build(normalized, indexed)
            if any(_reads_timestamp(rule) for rule in normalized):
                self._timestamp_read.add(source)
        routed = {
            id(r) for index in (*self.raw.values(), *self.normalized.values()) for r in index.rules
        }
        #: rules that no known source feeds (a Windows rule, a typo in a logsource)
        self.unrouted = [r for r in self.rules if id(r) not in routed]

    def match(self, event: Event) -> list[CompiledRule]:
        """The rules that match `event`, raw-record rules first, each once."""
        source, raw = event.event_source, event.raw
        raw_index = self.raw.get(source)
        if raw_index is not None and raw_index.rules and isinstance(raw, dict):
            matched = [r for r in raw_index.candidates(raw) if r.matches(raw)]
        else:
            matched = []
        normalized_index = self.normalized.get(source)
        if normalized_index is not None and normalized_index.rules:
            record = event.to_record(timestamp=source in self._timestamp_read)
            matched += [r for r in normalized_index.candidates(record) if r.matches(record)]
        return matched

    def index_fields(self) -> dict[str, str | None]:
        """The discriminating field of each raw route (for `rules list` and the benchmark)."""
        return {source: index.discriminator for source, index in self.raw.items()}


#: Categories every audit source satisfies: SigmaHQ files audit rules under `application`.
_AUDIT_CATEGORIES = (None, "application")


def _serves(rule: CompiledRule, route: SourceRoute) -> bool:
    logsource = rule.logsource
    return (
        logsource.category in _AUDIT_CATEGORIES
        and logsource.product == route.product
        and logsource.service in (None, route.service)
    )


def _reads_timestamp(rule: CompiledRule) -> bool:
    """Whether the rule can read `@timestamp` (by name, or in a keyword search)."""
    return rule.keyword_search or any(name.startswith("@timestamp") for name in rule.fields)


def _serves_normalized(rule: CompiledRule, source: str) -> bool:
    logsource = rule.logsource
    return (
        logsource.category in _AUDIT_CATEGORIES
        and logsource.product == NORMALIZED_PRODUCT
        and logsource.service in (None, source)
    )


def _pinned_fields(rule: CompiledRule) -> dict[str, frozenset[str]]:
    """Field → the lower-cased values one of which the field must equal for a match."""
    detection = rule.rule.detection
    identifiers = detection.detections
    result: dict[str, frozenset[str]] = {}
    for name in sorted(rule.fields):
        values: Values = None
        for condition in detection.parsed_condition:
            tree = condition.parse(postprocess=False)
            branch = _required(tree, identifiers, name)
            if branch is None:
                values = None
                break
            values = branch if values is None else values | branch
        if values is not None:
            result[name] = values
    return result


def _required(node: object, identifiers: Mapping[str, SigmaDetection], name: str) -> Values:
    if isinstance(node, ConditionIdentifier):
        detection = identifiers.get(node.identifier)
        return _detection_required(detection, name) if detection is not None else None
    if isinstance(node, ConditionSelector):
        names = select(node.pattern, identifiers)
        parts = [_detection_required(identifiers[n], name) for n in names]
        return _and(parts) if node.cond_class is ConditionAND else _or(parts)
    if isinstance(node, ConditionAND):
        return _and([_required(arg, identifiers, name) for arg in node.args])
    if isinstance(node, ConditionOR):
        return _or([_required(arg, identifiers, name) for arg in node.args])
    if isinstance(node, ConditionNOT):
        return None
    return None


def _detection_required(detection: SigmaDetection, name: str) -> Values:
    parts = [
        _detection_required(item, name)
        if isinstance(item, SigmaDetection)
        else _item_required(item, name)
        for item in detection.detection_items
    ]
    return _and(parts) if detection.item_linking is ConditionAND else _or(parts)


def _item_required(item: SigmaDetectionItem, name: str) -> Values:
    if item.field != name or item.negated or item.modifiers or not item.value:
        return None
    if item.value_linking is ConditionAND and len(item.value) > 1:
        return None
    values = []
    for value in item.value:
        if (
            type(value) is not SigmaString
            or value.contains_special()
            or value.contains_placeholder()
        ):
            return None
        values.append(str(value).lower())
    return frozenset(values)


def _and(parts: list[Values]) -> Values:
    """Any operand's requirement is necessary: keep the narrowest."""
    known = [p for p in parts if p is not None]
    return min(known, key=len) if known else None


def _or(parts: list[Values]) -> Values:
    """Every branch must pin the field for the union to be necessary."""
    if not parts or any(p is None for p in parts):
        return None
    return frozenset().union(*parts)  # type: ignore[arg-type]
