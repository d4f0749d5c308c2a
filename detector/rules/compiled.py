"""Compiled Sigma rules and filters: metadata plus a `matches(record) -> bool` closure.

Everything pySigma parsed is turned into closures once, at compile time; matching never
walks pySigma objects. A rule's `matches` is its condition AND the conditions of the
Sigma filters that apply to it (pySigma's reading of the filters specification: an
exclusion filter says `condition: not selection`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sigma.exceptions import SigmaError
from sigma.filters import SigmaFilter
from sigma.rule import SigmaDetections, SigmaLogSource, SigmaRule, SigmaRuleBase

from detector.rules.condition import compile_conditions
from detector.rules.detection import DetectionCompiler
from detector.rules.errors import RuleCompileError, error_reason
from detector.rules.evaluate import evaluator
from detector.rules.placeholders import Placeholders
from detector.rules.plan import Plan, Predicate, Record, plan_all


@dataclass(frozen=True, slots=True)
class LogSource:
    """The Sigma logsource a rule applies to; None where the rule does not narrow it."""

    category: str | None
    product: str | None
    service: str | None

    @classmethod
    def of(cls, logsource: SigmaLogSource) -> LogSource:
        """The three routing attributes of a pySigma logsource."""
        return cls(logsource.category, logsource.product, logsource.service)


@dataclass(frozen=True, slots=True, eq=False)
class CompiledFilter:
    """A Sigma filter: `matches` must hold for a match of a rule it applies to to stand."""

    id: str | None
    title: str
    logsource: LogSource
    #: rule ids or names it names; None for `rules: any`
    rules: tuple[str, ...] | None
    fields: frozenset[str]
    matches: Predicate
    source: Path | None
    filter: SigmaFilter = field(repr=False)
    #: the shape of `matches`, joined into the evaluation of the rules it applies to
    plan: Plan = field(repr=False)

    def applies_to(self, rule: SigmaRule) -> bool:
        """True if the rule's logsource is within the filter's and the filter names it."""
        if rule.logsource not in self.filter.logsource:
            return False
        if self.rules is None:
            return True
        rule_id = str(rule.id) if rule.id is not None else None
        return any(
            reference.lower() == rule_id or reference == rule.name for reference in self.rules
        )


@dataclass(frozen=True, slots=True)
class Explanation:
    """Why a rule did or did not match a record, for `rules explain`."""

    matched: bool
    condition: bool
    identifiers: dict[str, bool]
    #: filter id (or title) -> whether its condition held
    filters: dict[str, bool]


@dataclass(frozen=True, slots=True, eq=False)
class RuleDetection:
    """What compiling a rule's detection gives, beside its metadata."""

    #: the pySigma rule it was compiled from (description, references, custom fields...)
    rule: SigmaRule
    #: field names the detection reads (fieldref targets and filter fields included)
    fields: frozenset[str]
    #: True if some search identifier is a keyword search over the whole record
    keyword_search: bool
    #: search identifier -> its predicate, for explanations
    identifiers: Mapping[str, Predicate]
    #: the rule's own condition, without filters
    condition: Predicate
    #: the filters applied to this rule
    filters: tuple[CompiledFilter, ...]
    #: the full test, condition and applied filters, that `matches` is built from
    plan: Plan


@dataclass(frozen=True, slots=True, eq=False)
class CompiledRule:
    """A Sigma rule ready to match JSON records (compared and hashed by identity).

    The metadata is there from the start. The detection is either compiled already or,
    for a rule loaded from the rule cache, compiled when first needed (`detection` and
    the properties below, or the first call of `matches`): most of a large rule set is
    never routed to any source, so it is never parsed nor compiled.
    """

    id: str | None
    name: str | None
    title: str
    level: str | None
    status: str | None
    tags: tuple[str, ...]
    logsource: LogSource
    source: Path | None
    #: the full test, condition and applied filters, as compiled objects (see `evaluate`),
    #: made on the first call
    matches: Callable[[dict[str, Any]], bool] = field(init=False, repr=False)
    #: the compiled detection, or what compiles it
    compiled: RuleDetection | Callable[[], RuleDetection] = field(repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "matches", self._build_on_first_call)

    def _build_on_first_call(self, record: dict[str, Any]) -> bool:
        """Builds the rule's test and puts it in the place of `matches`: a large rule set
        loads without compiling the rules no record ever reaches."""
        test = evaluator(self.detection.plan).holds
        object.__setattr__(self, "matches", test)
        return test(record)

    @property
    def detection(self) -> RuleDetection:
        """The compiled detection (compiling it now if the rule came from the cache)."""
        compiled = self.compiled
        if not isinstance(compiled, RuleDetection):
            compiled = compiled()
            object.__setattr__(self, "compiled", compiled)
        return compiled

    @property
    def rule(self) -> SigmaRule:
        """The pySigma rule it was compiled from (description, references...)."""
        return self.detection.rule

    @property
    def fields(self) -> frozenset[str]:
        """Field names the detection reads (fieldref targets and filter fields included)."""
        return self.detection.fields

    @property
    def keyword_search(self) -> bool:
        """True if some search identifier is a keyword search over the whole record."""
        return self.detection.keyword_search

    @property
    def identifiers(self) -> Mapping[str, Predicate]:
        """Search identifier -> its predicate, for explanations."""
        return self.detection.identifiers

    @property
    def condition(self) -> Predicate:
        """The rule's own condition, without filters."""
        return self.detection.condition

    @property
    def filters(self) -> tuple[CompiledFilter, ...]:
        """The filters applied to this rule."""
        return self.detection.filters

    def explain(self, record: Record) -> Explanation:
        """Each search identifier's and filter's result on `record`."""
        identifiers = {name: test(record) for name, test in self.identifiers.items()}
        filters = {(f.id or f.title): f.matches(record) for f in self.filters}
        condition = self.condition(record)
        return Explanation(
            matched=condition and all(filters.values()),
            condition=condition,
            identifiers=identifiers,
            filters=filters,
        )


def compile_rule(
    rule: SigmaRule,
    placeholders: Placeholders | None = None,
    filters: Sequence[CompiledFilter] = (),
) -> CompiledRule:
    """Compile a parsed rule; the filters given are applied where they name the rule.

    Raises RuleCompileError with the reason when the rule cannot be evaluated.
    """
    detection = compile_detection(rule, placeholders, filters)
    return CompiledRule(
        id=_id(rule),
        name=rule.name,
        title=rule.title,
        level=rule.level.name.lower() if rule.level is not None else None,
        status=rule.status.name.lower() if rule.status is not None else None,
        tags=tuple(str(tag) for tag in rule.tags),
        logsource=LogSource.of(rule.logsource),
        source=_path(rule),
        compiled=detection,
    )


def compile_detection(
    rule: SigmaRule,
    placeholders: Placeholders | None = None,
    filters: Sequence[CompiledFilter] = (),
) -> RuleDetection:
    """The detection part of `compile_rule` (raises RuleCompileError likewise)."""
    if rule.errors:
        raise RuleCompileError(error_reason(rule.errors[0]))
    compiler = DetectionCompiler(placeholders or {})
    identifiers, condition = _compile_detections(compiler, rule.detection)
    applied = tuple(f for f in filters if f.applies_to(rule))
    return RuleDetection(
        rule=rule,
        fields=frozenset(compiler.fields).union(*(f.fields for f in applied)),
        keyword_search=compiler.keyword_search,
        identifiers={name: plan.predicate for name, plan in identifiers.items()},
        condition=condition.predicate,
        filters=applied,
        plan=plan_all([condition, *(f.plan for f in applied)]),
    )


def compile_filter(
    sigma_filter: SigmaFilter, placeholders: Placeholders | None = None
) -> CompiledFilter:
    """Compile a parsed Sigma filter; raises RuleCompileError with the reason."""
    if sigma_filter.errors:
        raise RuleCompileError(error_reason(sigma_filter.errors[0]))
    compiler = DetectionCompiler(placeholders or {})
    _, condition = _compile_detections(compiler, sigma_filter.filter)
    references = sigma_filter.filter.rules
    return CompiledFilter(
        id=_id(sigma_filter),
        title=sigma_filter.title,
        logsource=LogSource.of(sigma_filter.logsource),
        rules=None if isinstance(references, str) else tuple(r.reference for r in references),
        fields=frozenset(compiler.fields),
        matches=condition.predicate,
        source=_path(sigma_filter),
        filter=sigma_filter,
        plan=condition,
    )


def _compile_detections(
    compiler: DetectionCompiler, detections: SigmaDetections
) -> tuple[dict[str, Plan], Plan]:
    try:
        identifiers = {
            name: compiler.detection(detection) for name, detection in detections.detections.items()
        }
        return identifiers, compile_conditions(detections.parsed_condition, identifiers)
    except SigmaError as exc:
        raise RuleCompileError(error_reason(exc)) from exc


def _id(rule: SigmaRuleBase) -> str | None:
    return str(rule.id) if rule.id is not None else None


def _path(rule: SigmaRuleBase) -> Path | None:
    return rule.source.path if rule.source is not None else None
