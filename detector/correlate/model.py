"""Correlation rules compiled for the engine: references resolved, fields bound, conditions read.

pySigma parses the rules (`load_rules` keeps them unresolved); this module resolves their
references (by id or name, to Sigma rules or to other correlations), orders chains so
that a correlation comes after those it references, binds each group-by and value field
to a reader per referenced rule (through `aliases`), and reads the parts pySigma does not
model: conditions with several operators (ranges: every operator must hold), fractional
thresholds, and this engine's extensions (`first_seen`, `absence`, `suppression`).

Which record a referenced rule's fields are read from follows routing: the raw record
for a rule of a vendor logsource, the normalized event for `product: cicd`, and for a
referenced correlation its detection's `group` (field name → value) plus the fields it
carries: a correlation that groups by a field its referenced correlation does not group
by (the specification allows it: each uses its own group-by) reads it from the events
behind that correlation's detection, which keep the values of such fields (`carry`).
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import orjson
from sigma.correlations import (
    SigmaCorrelationRule,
    SigmaCorrelationTimespan,
    SigmaExtendedCorrelationCondition,
)
from sigma.exceptions import SigmaError

from detector.detections import Level, RuleRef, detection_id
from detector.rules.compiled import CompiledRule
from detector.rules.errors import error_reason
from detector.rules.fields import Getter, as_number, compile_getter
from detector.rules.loader import EXTENSION_CORRELATION_TYPES, LoadResult, RuleError
from detector.rules.loader import correlation_section as written_section
from detector.rules.routing import NORMALIZED_PRODUCT

from .keys import event_getter

MICROSECONDS = 1_000_000

#: Aggregates that only grow as events arrive: with lower bounds only they are decided
#: on arrival; anything else is decided when the window ends.
GROWING = frozenset({"event_count", "value_count", "temporal", "temporal_ordered", "value_sum"})
#: Types that aggregate a value field (`condition.field`).
VALUED = frozenset(
    {"value_count", "value_sum", "value_avg", "value_percentile", "value_median", "first_seen"}
)
NUMERIC = frozenset({"value_sum", "value_avg", "value_percentile", "value_median"})
TEMPORAL = frozenset({"temporal", "temporal_ordered"})

_OPERATORS: dict[str, Callable[[float, float], bool]] = {
    "gt": operator.gt,
    "gte": operator.ge,
    "lt": operator.lt,
    "lte": operator.le,
    "eq": operator.eq,
    "neq": operator.ne,
}
_CONDITION_KEYS = frozenset({*_OPERATORS, "field", "percentile"})
#: Default size of a `first_seen` group's history (values kept per group).
DEFAULT_MAX_VALUES = 1000


class CorrelationCompileError(ValueError):
    """A correlation rule the engine cannot run; the message is the reason."""


@dataclass(frozen=True, slots=True)
class Condition:
    """Operator/threshold pairs that must all hold (one pair, or a range)."""

    bounds: tuple[tuple[str, int | float], ...]
    _checks: tuple[tuple[Callable[[float, float], bool], int | float], ...] = field(
        init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        checks = tuple((_OPERATORS[name], threshold) for name, threshold in self.bounds)
        object.__setattr__(self, "_checks", checks)

    def holds(self, metric: float) -> bool:
        # an explicit loop rather than all() over a generator: this runs for every event
        for check, threshold in self._checks:  # noqa: SIM110
            if not check(metric, threshold):
                return False
        return True

    @property
    def lower_bounds_only(self) -> bool:
        """True when more events can only make the condition hold, never break it."""
        return all(name in ("gt", "gte") for name, _ in self.bounds)

    def __str__(self) -> str:
        return " and ".join(f"{name} {number_text(value)}" for name, value in self.bounds)


@dataclass(frozen=True, slots=True)
class Slot:
    """One referenced rule of a correlation, with the readers of its fields."""

    reference: str
    target: CompiledRule | CorrelationRule
    #: reads the group-by fields, in group-by order (aliases applied)
    group: tuple[Getter, ...]
    #: reads the value field(s); empty when the type has none
    value: tuple[Getter, ...]
    #: True if the target rule sees the normalized event rather than the raw record
    normalized: bool
    #: the names this slot's record calls the correlation's fields (aliases applied)
    names: Mapping[str, str] = field(repr=False)
    #: reads the fields the correlation carries for those that reference it
    carry: tuple[Getter, ...] = ()

    @property
    def title(self) -> str:
        return self.target.title


@dataclass(eq=False)
class CorrelationRule:
    """A correlation ready for the engine (compared and hashed by identity)."""

    #: stable name in detections and checkpoints: the id, else the name, else the title
    key: str
    ref: RuleRef
    type: str
    name: str | None
    title: str
    slots: tuple[Slot, ...]
    group_by: tuple[str, ...]
    #: window length in microseconds, and as written
    timespan: int
    timespan_text: str
    #: None for the extensions, which have no operator condition
    condition: Condition | None
    value_field: tuple[str, ...]
    percentile: float | None
    generate: bool
    #: at most one detection per group per this many microseconds (None: no suppression)
    suppression: int | None
    suppression_text: str | None
    #: first_seen: history size per group, and the learning period (microseconds)
    max_values: int
    learn: int
    source: Path | None
    #: the section as written, for checkpoint fingerprints
    section: dict[str, Any] = field(repr=False)
    sigma: SigmaCorrelationRule = field(repr=False)
    #: fields (besides the group-by) the correlations referencing this one read
    carry: tuple[str, ...] = ()

    @property
    def decided_on_arrival(self) -> bool:
        """True if a detection is made when an event arrives; else when its window ends."""
        if self.condition is None:
            return True
        return self.type in GROWING and self.condition.lower_bounds_only


@dataclass
class CorrelationSet:
    """The outcome of `compile_correlations`."""

    #: in dependency order: a correlation comes after every correlation it references
    rules: list[CorrelationRule] = field(default_factory=list)
    errors: list[RuleError] = field(default_factory=list)
    #: rules and correlations whose own detections are not emitted (`generate: false`)
    silenced: frozenset[CompiledRule | CorrelationRule] = frozenset()

    def fingerprint(self) -> str:
        """Changes when any correlation changes: a checkpoint belongs to one rule set."""
        parts = [
            [rule.key, rule.section, [slot.reference for slot in rule.slots]] for rule in self.rules
        ]
        options = orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS
        return detection_id(orjson.dumps(parts, option=options, default=str).decode())


def compile_correlations(loaded: LoadResult) -> CorrelationSet:
    """Resolve and compile the correlations of `loaded`; a failure is a RuleError, never raised."""
    result = CorrelationSet()
    targets = _Targets(loaded.rules, loaded.correlations)
    order, cycles = _dependency_order(loaded.correlations, targets)
    for rule in cycles:
        result.errors.append(_error(rule, "its chain of references leads back to itself"))
    compiled: dict[int, CorrelationRule] = {}
    keys: set[str] = set()
    for rule in order:
        try:
            correlation = _compile(rule, targets, compiled)
            if correlation.key in keys:
                raise CorrelationCompileError(
                    f"another correlation is also named {correlation.key!r}; give each an id"
                )
        except CorrelationCompileError as exc:
            result.errors.append(_error(rule, str(exc)))
            continue
        except SigmaError as exc:
            result.errors.append(_error(rule, error_reason(exc)))
            continue
        keys.add(correlation.key)
        compiled[id(rule)] = correlation
        result.rules.append(correlation)
    result.silenced = frozenset(
        slot.target for rule in result.rules if not rule.generate for slot in rule.slots
    )
    _plan_carry(result.rules)
    return result


def _plan_carry(rules: Sequence[CorrelationRule]) -> None:
    """Set what each referenced correlation must carry for those referencing it (their
    group-by, value and carried fields, under the names its own record uses); parents
    come first, so a chain carries through every link."""
    needed: dict[int, set[str]] = {}
    for rule in reversed(rules):
        wanted = needed.get(id(rule), set()) - set(rule.group_by)
        rule.carry = tuple(sorted(wanted))
        if rule.carry:
            rule.slots = tuple(
                replace(
                    slot, carry=tuple(_reader(slot.normalized)(slot.names[n]) for n in rule.carry)
                )
                for slot in rule.slots
            )
        for slot in rule.slots:
            if isinstance(slot.target, CorrelationRule):
                reads = (*rule.group_by, *rule.value_field, *rule.carry)
                needed.setdefault(id(slot.target), set()).update(slot.names[n] for n in reads)


def parse_timespan(text: Any) -> int | None:
    """Seconds of a Sigma timespan (`30s`, `5m`, `1h`, `7d`), or None if it is not one."""
    try:
        return int(SigmaCorrelationTimespan(str(text)).seconds)
    except SigmaError:
        return None


def number_text(value: float) -> str:
    """A number as people write it: 5, 2.5, 1e+20."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return repr(value) if isinstance(value, float) else str(value)


class _Targets:
    """Rules and correlations by id and by name."""

    def __init__(
        self, rules: Sequence[CompiledRule], correlations: Sequence[SigmaCorrelationRule]
    ) -> None:
        self.by_id: dict[str, CompiledRule | SigmaCorrelationRule] = {}
        self.by_name: dict[str, list[CompiledRule | SigmaCorrelationRule]] = {}
        items: list[CompiledRule | SigmaCorrelationRule] = [*rules, *correlations]
        for item in items:
            if item.id is not None:
                self.by_id[str(item.id).lower()] = item
            if item.name:
                self.by_name.setdefault(item.name, []).append(item)

    def find(self, reference: str) -> CompiledRule | SigmaCorrelationRule:
        found = self.by_id.get(reference.lower())
        if found is not None:
            return found
        named = self.by_name.get(reference, [])
        if len(named) > 1:
            raise CorrelationCompileError(f"{len(named)} rules are named {reference!r}")
        if not named:
            raise CorrelationCompileError(
                f"references {reference!r}, which is no loaded rule's id or name"
            )
        return named[0]


def _references(rule: SigmaCorrelationRule) -> list[str]:
    return [reference.reference for reference in rule.rules or []]


def _dependency_order(
    correlations: Sequence[SigmaCorrelationRule], targets: _Targets
) -> tuple[list[SigmaCorrelationRule], list[SigmaCorrelationRule]]:
    """Correlations with referenced correlations first (load order otherwise), and those
    whose references loop."""
    order: list[SigmaCorrelationRule] = []
    state: dict[int, str] = {}
    cyclic: list[SigmaCorrelationRule] = []

    def visit(rule: SigmaCorrelationRule) -> bool:
        mark = state.get(id(rule))
        if mark == "done":
            return True
        if mark == "active":
            return False
        state[id(rule)] = "active"
        acyclic = True
        for reference in _references(rule):
            try:
                target = targets.find(reference)
            except CorrelationCompileError:
                continue  # reported when the rule is compiled
            if isinstance(target, SigmaCorrelationRule) and not visit(target):
                acyclic = False
        state[id(rule)] = "done"
        if acyclic:
            order.append(rule)
        else:
            cyclic.append(rule)
        return acyclic

    for rule in correlations:
        visit(rule)
    return order, cyclic


def _compile(
    rule: SigmaCorrelationRule, targets: _Targets, compiled: Mapping[int, CorrelationRule]
) -> CorrelationRule:
    section = written_section(rule)
    if isinstance(rule.condition, SigmaExtendedCorrelationCondition):
        raise CorrelationCompileError("boolean correlation conditions are not supported")
    written_type = section.get("type")
    kind = (
        str(written_type) if written_type in EXTENSION_CORRELATION_TYPES else rule.type.name.lower()
    )
    references = _references(rule)
    if not references:
        raise CorrelationCompileError("references no rules")
    if kind == "absence" and len(references) != 2:
        raise CorrelationCompileError(
            "absence takes two rules: the one that must be followed, then the one that follows"
        )
    raw_condition = section.get("condition")
    condition, value_field, percentile = _condition(kind, raw_condition, len(references))
    group_by = tuple(rule.group_by or ())
    aliases = {
        alias.alias: {reference.reference: name for reference, name in alias.mapping.items()}
        for alias in rule.aliases
    }
    resolved: list[CompiledRule | CorrelationRule] = []
    for reference in references:
        target = targets.find(reference)
        if isinstance(target, SigmaCorrelationRule):
            child = compiled.get(id(target))
            if child is None:
                raise CorrelationCompileError(f"references correlation {reference!r}, not loaded")
            resolved.append(child)
        else:
            resolved.append(target)
    slots = tuple(
        _slot(reference, target, group_by, value_field, aliases)
        for reference, target in zip(references, resolved, strict=True)
    )
    _check_aliases(aliases, slots)
    suppression = _optional_timespan(section, "suppression")
    learn = _optional_timespan(section, "learn")
    if learn is not None and kind != "first_seen":
        raise CorrelationCompileError("`learn` applies to first_seen only")
    max_values = section.get("max-values", DEFAULT_MAX_VALUES)
    if kind != "first_seen" and "max-values" in section:
        raise CorrelationCompileError("`max-values` applies to first_seen only")
    if type(max_values) is not int or max_values < 1:
        raise CorrelationCompileError("`max-values` must be a whole number of at least 1")
    key = str(rule.id) if rule.id is not None else rule.name or f"title:{rule.title}"
    return CorrelationRule(
        key=key,
        ref=RuleRef(id=key, title=rule.title, level=_level(rule), tags=[str(t) for t in rule.tags]),
        type=kind,
        name=rule.name,
        title=rule.title,
        slots=slots,
        group_by=group_by,
        timespan=rule.timespan.seconds * MICROSECONDS,
        timespan_text=rule.timespan.spec,
        condition=condition,
        value_field=value_field,
        percentile=percentile,
        generate=rule.generate,
        suppression=suppression[0] if suppression else None,
        suppression_text=suppression[1] if suppression else None,
        max_values=max_values,
        learn=learn[0] if learn else 0,
        source=rule.source.path if rule.source is not None else None,
        section=section,
        sigma=rule,
    )


def _condition(
    kind: str, raw: Any, rule_count: int
) -> tuple[Condition | None, tuple[str, ...], float | None]:
    """The operator condition, the value field(s) and the percentile of a condition section."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise CorrelationCompileError("the condition must be a mapping")
    unknown = sorted(str(key) for key in raw if key not in _CONDITION_KEYS)
    if unknown:
        raise CorrelationCompileError(f"unknown condition key(s): {', '.join(unknown)}")
    bounds = []
    for name in _OPERATORS:
        if name in raw:
            number = raw[name] if not isinstance(raw[name], str) else as_number(raw[name])
            if isinstance(number, bool) or not isinstance(number, (int, float)):
                raise CorrelationCompileError(f"condition {name}: {raw[name]!r} is not a number")
            bounds.append((name, number))
    value_field = _fields(raw.get("field"))
    if kind in VALUED and not value_field:
        raise CorrelationCompileError(f"{kind} needs the value field in `condition: field:`")
    if kind in NUMERIC and len(value_field) > 1:
        raise CorrelationCompileError(f"{kind} aggregates one field")
    percentile = None
    if kind == "value_percentile":
        percentile = as_number(raw.get("percentile"))
        if isinstance(raw.get("percentile"), bool) or percentile is None:
            raise CorrelationCompileError(
                "value_percentile needs `percentile` (0-100) in the condition: the field's "
                "percentile is compared with the operators"
            )
        if not 0 <= percentile <= 100:
            raise CorrelationCompileError("percentile must be between 0 and 100")
    elif kind == "value_median":
        percentile = 50
    if kind in EXTENSION_CORRELATION_TYPES:
        if bounds:
            raise CorrelationCompileError(f"{kind} takes no condition operator")
        return None, value_field, None
    if not bounds:
        if kind not in TEMPORAL:
            raise CorrelationCompileError("the condition needs an operator (gt, gte, lt, ...)")
        bounds = [("gte", rule_count)]
    return Condition(tuple(bounds)), value_field, percentile


def _fields(raw: Any) -> tuple[str, ...]:
    if raw is None:
        return ()
    if isinstance(raw, str):
        return (raw,)
    if isinstance(raw, list) and raw and all(isinstance(item, str) for item in raw):
        return tuple(raw)
    raise CorrelationCompileError("condition field must be a field name or a list of them")


def _optional_timespan(section: Mapping[str, Any], key: str) -> tuple[int, str] | None:
    raw = section.get(key)
    if raw is None:
        return None
    seconds = parse_timespan(raw)
    if seconds is None or seconds <= 0:
        raise CorrelationCompileError(f"`{key}`: {raw!r} is not a timespan such as 30m or 1h")
    return seconds * MICROSECONDS, str(raw)


class _Names(dict[str, str]):
    """Field name in the correlation → name in one referenced rule's record (aliases)."""

    def __init__(self, aliases: Mapping[str, Mapping[str, str]], target_names: set[str]):
        super().__init__()
        for alias, mapping in aliases.items():
            for written, field_name in mapping.items():
                if written in target_names or written.lower() in target_names:
                    self[alias] = field_name

    def __missing__(self, name: str) -> str:
        return name


def _slot(
    reference: str,
    target: CompiledRule | CorrelationRule,
    group_by: Iterable[str],
    value_field: Iterable[str],
    aliases: Mapping[str, Mapping[str, str]],
) -> Slot:
    names = _Names(aliases, {n for n in (reference, target.name, _target_id(target)) if n})
    normalized = isinstance(target, CompiledRule) and target.logsource.product == NORMALIZED_PRODUCT
    read = _reader(normalized)
    return Slot(
        reference=reference,
        target=target,
        group=tuple(read(names[name]) for name in group_by),
        value=tuple(read(names[name]) for name in value_field),
        normalized=normalized,
        names=names,
    )


def _reader(normalized: bool) -> Callable[[str], Getter]:
    """How a slot reads a field: from a normalized event's attribute values, or from the
    raw record (or a detection's group)."""
    return event_getter if normalized else compile_getter


def _target_id(target: CompiledRule | CorrelationRule) -> str | None:
    if isinstance(target, CorrelationRule):
        return str(target.sigma.id) if target.sigma.id is not None else None
    return target.id


def _check_aliases(aliases: Mapping[str, Mapping[str, str]], slots: Sequence[Slot]) -> None:
    known: set[str | None] = set()
    for slot in slots:
        known |= {slot.reference, slot.target.name, _target_id(slot.target)} - {None}
    for alias, mapping in aliases.items():
        for written in mapping:
            if written not in known and written.lower() not in known:
                raise CorrelationCompileError(
                    f"alias {alias!r} names {written!r}, which the correlation does not reference"
                )


def _level(rule: SigmaCorrelationRule) -> Level | None:
    levels: dict[str, Level] = {
        "informational": "informational",
        "low": "low",
        "medium": "medium",
        "high": "high",
        "critical": "critical",
    }
    return levels.get(rule.level.name.lower()) if rule.level is not None else None


def _error(rule: SigmaCorrelationRule, reason: str) -> RuleError:
    path = rule.source.path if rule.source is not None else Path()
    rule_id = str(rule.id) if rule.id is not None else None
    return RuleError(path, rule_id, rule.title or None, "correlation", reason)
