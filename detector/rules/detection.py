"""Compiling Sigma search identifiers (detections) into predicates on a record.

Semantics, per the Sigma specification and pySigma's object model:
- a map is the AND of its items, a list of maps the OR of them;
- an item's values are OR-linked, AND-linked with `|all`; values one modifier expanded
  (windash, base64offset, placeholders) stay an OR group inside an `|all` list;
- a field holding a list matches when any element matches; with `|all` each value must
  match some element;
- `null` matches an absent field, a null value or an empty list; `|exists` checks that
  the field is present whatever its value (null included);
- `|neq` negates the item (pySigma's reading), so an absent field satisfies it;
- `|fieldref` compares with another field's value, case-insensitively, whole-value or
  with startswith/endswith/contains when those modifiers precede it;
- a field-less (keyword) value is searched in every scalar leaf of the record, at any
  depth (numbers and booleans by their text); plain keyword strings match as substrings,
  as backends search the whole message, unless the item has its own
  contains/startswith/endswith modifier. With `|all` each keyword may be found in a
  different leaf.
"""

# Explicit loops instead of any()/all() over generators: half the cost on the match path.
# ruff: noqa: SIM110

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

from sigma.conditions import ConditionAND
from sigma.modifiers import (
    SigmaContainsModifier,
    SigmaEndswithModifier,
    SigmaStartswithModifier,
)
from sigma.rule.detection import SigmaDetection, SigmaDetectionItem
from sigma.types import (
    SigmaExists,
    SigmaExpansion,
    SigmaFieldReference,
    SigmaNull,
    SigmaString,
    SigmaType,
    SpecialChars,
)

from detector.rules.errors import RuleCompileError
from detector.rules.fields import (
    MISSING,
    Getter,
    is_null,
    iter_elements,
    iter_leaves,
    record_getter,
    text_of,
)
from detector.rules.placeholders import Placeholders, resolve_placeholders
from detector.rules.plan import (
    Compare,
    Exists,
    LowerText,
    NumberIn,
    Opaque,
    Plan,
    Predicate,
    Record,
    TextCheck,
    plan_all,
    plan_any,
    plan_not,
)
from detector.rules.values import ScalarTest, TextSpec, TextTest, compile_values

# One field value prepared for the value tests: (value, text, lower-cased text or None).
Prepared = tuple[Any, str | None, str | None]

_POSITIONAL: Final = (SigmaContainsModifier, SigmaStartswithModifier, SigmaEndswithModifier)


@dataclass
class DetectionCompiler:
    """Compiles detections of one rule, noting the fields they read."""

    placeholders: Placeholders
    fields: set[str] = field(default_factory=set)
    keyword_search: bool = False

    def detection(self, detection: SigmaDetection) -> Plan:
        """The test of one search identifier (a map, a list of maps or values)."""
        plans = [
            self.detection(item) if isinstance(item, SigmaDetection) else self.item(item)
            for item in detection.detection_items
        ]
        if detection.item_linking is ConditionAND:
            return plan_all(plans)
        return plan_any(plans)

    def item(self, item: SigmaDetectionItem) -> Plan:
        """The test of one `field|modifiers: values` entry (or keyword list)."""
        values = [resolve_placeholders(v, self.placeholders) for v in item.value]
        if item.field is None:
            plan: Plan = Opaque(self._keyword(item, values))
        else:
            plan = self._field(item.field, item, values)
        return plan_not(plan) if item.negated else plan

    def _field(self, name: str, item: SigmaDetectionItem, values: list[SigmaType]) -> Plan:
        self.fields.add(name)
        getter = record_getter(name)
        exists = [v for v in values if isinstance(v, SigmaExists)]
        if exists:
            if len(values) != 1:
                raise RuleCompileError(f"field {name!r}: exists takes a single true/false value")
            expected = exists[0].exists
            return Exists(name, expected, _exists(getter, expected))
        if not values:  # `field: []` is how pySigma spells null
            values = [SigmaNull()]
        groups = self._groups(item, values)
        predicate = _field_predicate(getter, groups)
        if len(groups) == 1:
            (group,) = groups
            if not group.null and not group.references:
                if group.lower_spec is not None:
                    return LowerText(name, group.lower_spec, predicate)
                if group.numbers_only is not None:
                    return NumberIn(name, group.numbers_only, predicate)
                if group.comparison is not None:
                    return Compare(name, *group.comparison, predicate)
                if group.text_only and group.test is not None:
                    return TextCheck(name, group.test, predicate)
        return Opaque(predicate)

    def _keyword(self, item: SigmaDetectionItem, values: list[SigmaType]) -> Predicate:
        self.keyword_search = True
        positional = any(issubclass(m, _POSITIONAL) for m in item.modifiers)
        if not positional:
            values = [_as_substring(v) for v in values]
        for value in _flatten(values):
            if isinstance(value, (SigmaNull, SigmaFieldReference, SigmaExists)):
                raise RuleCompileError(
                    f"keyword search cannot use {type(value).__name__} (it needs a field)"
                )
        return _keyword_predicate(self._groups(item, values))

    def _groups(self, item: SigmaDetectionItem, values: list[SigmaType]) -> list[_Group]:
        """AND-linked OR groups: one per value under `|all`, else a single one."""
        if item.value_linking is ConditionAND and len(values) > 1:
            return [self._group(_flatten([v])) for v in values]
        return [self._group(_flatten(values))]

    def _group(self, values: list[SigmaType]) -> _Group:
        null = any(isinstance(v, SigmaNull) for v in values)
        references = [v for v in values if isinstance(v, SigmaFieldReference)]
        scalars = [v for v in values if not isinstance(v, (SigmaNull, SigmaFieldReference))]
        for reference in references:
            self.fields.add(reference.field)
        compiled = compile_values(scalars) if scalars else None
        return _Group(
            null=null,
            test=compiled.test if compiled else None,
            references=tuple(_reference_test(r) for r in references),
            needs_lower=compiled.needs_lower if compiled else False,
            lower_spec=compiled.lower_spec if compiled else None,
            numbers_only=compiled.numbers_only if compiled else None,
            comparison=compiled.comparison if compiled else None,
            text_only=compiled.text_only if compiled else False,
        )


def _flatten(values: list[SigmaType]) -> list[SigmaType]:
    flat: list[SigmaType] = []
    for value in values:
        if isinstance(value, SigmaExpansion):
            flat.extend(_flatten(value.values))
        else:
            flat.append(value)
    return flat


def _as_substring(value: SigmaType) -> SigmaType:
    if isinstance(value, SigmaExpansion):
        return SigmaExpansion([_as_substring(v) for v in value.values])
    if not isinstance(value, SigmaString):
        return value
    if not value.startswith(SpecialChars.WILDCARD_MULTI):
        value = SpecialChars.WILDCARD_MULTI + value
    if not value.endswith(SpecialChars.WILDCARD_MULTI):
        value = value + SpecialChars.WILDCARD_MULTI
    return value


def _prepare(values: Any, lower: bool) -> list[Prepared]:
    """Each element of a field value with its text (and lower-cased text if `lower`)."""
    prepared: list[Prepared] = []
    for element in iter_elements(values):
        text = text_of(element)
        prepared.append((element, text, text.lower() if lower and text is not None else None))
    return prepared


@dataclass(frozen=True, slots=True)
class _Group:
    """One OR group of an item's values, tested against a prepared field value."""

    null: bool
    test: ScalarTest | None
    references: tuple[Callable[[list[Prepared], Record], bool], ...]
    needs_lower: bool
    lower_spec: TextSpec | None
    numbers_only: frozenset[int | float] | None
    comparison: tuple[str, int | float] | None
    text_only: bool

    def matches(self, value: Any, prepared: list[Prepared], record: Record) -> bool:
        if self.null and is_null(value):
            return True
        test = self.test
        if test is not None:
            for element, text, lower in prepared:
                if test(element, text, lower):
                    return True
        for reference in self.references:
            if reference(prepared, record):
                return True
        return False


def _field_predicate(getter: Getter, groups: list[_Group]) -> Predicate:
    lower = any(group.needs_lower for group in groups)
    if len(groups) == 1:
        (group,) = groups
        if group.lower_spec is not None and not group.null and not group.references:
            return _lower_predicate(getter, group.lower_spec.holds)
        if group.test is not None and not group.null and not group.references:
            return _scalar_predicate(getter, group.test, lower)
        single = group.matches

        def match_any(record: Record) -> bool:
            value = getter(record)
            return single(value, _prepare(value, lower), record)

        return match_any

    def match_all(record: Record) -> bool:
        value = getter(record)
        prepared = _prepare(value, lower)
        for group in groups:
            if not group.matches(value, prepared, record):
                return False
        return True

    return match_all


def _lower_predicate(getter: Getter, test: TextTest) -> Predicate:
    """The most common case: case-insensitive strings only, OR-linked."""

    def match(record: Record) -> bool:
        value = getter(record)
        if type(value) is str:
            return test(value.lower())
        if value is MISSING or value is None:
            return False
        if type(value) is list:  # most lists hold strings: tested as they are
            for item in value:
                if type(item) is str:
                    if test(item.lower()):
                        return True
                elif match_elements(item):
                    return True
            return False
        return match_elements(value)

    def match_elements(value: Any) -> bool:
        for element in iter_elements(value):
            text = text_of(element)
            if text is not None and test(text.lower()):
                return True
        return False

    return match


def _scalar_predicate(getter: Getter, test: ScalarTest, lower: bool) -> Predicate:
    """The common case: plain values, OR-linked; a string field value takes a fast path."""

    def match(record: Record) -> bool:
        value = getter(record)
        if type(value) is str:
            return test(value, value, value.lower() if lower else None)
        if value is MISSING or value is None:
            return False
        if type(value) is list:  # most lists hold strings: tested without `_prepare`
            for item in value:
                if type(item) is str:
                    if test(item, item, item.lower() if lower else None):
                        return True
                elif match_prepared(item):
                    return True
            return False
        return match_prepared(value)

    def match_prepared(value: Any) -> bool:
        for element, text, folded in _prepare(value, lower):
            if test(element, text, folded):
                return True
        return False

    return match


def _keyword_predicate(groups: list[_Group]) -> Predicate:
    lower = any(group.needs_lower for group in groups)

    def match(record: Record) -> bool:
        prepared = _prepare(list(iter_leaves(record)), lower)
        for group in groups:
            if not group.matches(MISSING, prepared, record):
                return False
        return True

    return match


def _exists(getter: Getter, expected: bool) -> Predicate:
    def match(record: Record) -> bool:
        return (getter(record) is not MISSING) is expected

    return match


def _reference_test(
    reference: SigmaFieldReference,
) -> Callable[[list[Prepared], Record], bool]:
    getter = record_getter(reference.field)
    relation: Callable[[str, str], bool]
    if reference.starts_with and reference.ends_with:
        relation = _contains
    elif reference.starts_with:
        relation = str.startswith
    elif reference.ends_with:
        relation = str.endswith
    else:
        relation = str.__eq__

    def test(prepared: list[Prepared], record: Record) -> bool:
        others = [t.lower() for t in map(text_of, iter_elements(getter(record))) if t is not None]
        for _, text, _ in prepared:
            if text is None:
                continue
            own = text.lower()
            for other in others:
                if relation(own, other):
                    return True
        return False

    return test


def _contains(own: str, other: str) -> bool:
    return other in own
