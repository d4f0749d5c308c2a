"""The shape of a compiled detection: and/or/not over field tests, each with its closure.

The detection compiler builds this tree alongside the closures; `evaluate` turns it into
compiled objects per rule. Every node keeps its closure (`predicate`), which is what
`rules explain` evaluates and what the compiled objects fall back to for the tests they
do not make themselves (`Opaque`).
"""

# Explicit loops instead of any()/all() over generators: half the cost on the match path.
# ruff: noqa: SIM110

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from detector.rules.values import ScalarTest, TextSpec

Record = Mapping[str, Any]
Predicate = Callable[[Record], bool]


@dataclass(frozen=True, slots=True, eq=False)
class Opaque:
    """A test the compiled evaluation calls as its closure."""

    predicate: Predicate


@dataclass(frozen=True, slots=True, eq=False)
class LowerText:
    """`field` holds a string whose lower-cased text passes `spec` (other values: closure)."""

    field: str
    spec: TextSpec
    predicate: Predicate


@dataclass(frozen=True, slots=True, eq=False)
class TextCheck:
    """`field` holds a string whose text passes `test` (`|re`, `|cidr`; other values:
    closure)."""

    field: str
    #: the value test, called as `test(text, text, None)`
    test: ScalarTest
    predicate: Predicate


@dataclass(frozen=True, slots=True, eq=False)
class NumberIn:
    """`field` holds an integer in `numbers` (other values: closure)."""

    field: str
    numbers: frozenset[int | float]
    predicate: Predicate


@dataclass(frozen=True, slots=True, eq=False)
class Compare:
    """`field` holds an integer for which `value <operator> bound` (others: closure)."""

    field: str
    #: one of < <= > >= != (a fixed symbol, never text from a rule)
    operator: str
    bound: int | float
    predicate: Predicate


@dataclass(frozen=True, slots=True, eq=False)
class Exists:
    """`field|exists: expected`."""

    field: str
    expected: bool
    predicate: Predicate


@dataclass(frozen=True, slots=True, eq=False)
class AllOf:
    children: tuple[Plan, ...]
    predicate: Predicate


@dataclass(frozen=True, slots=True, eq=False)
class AnyOf:
    children: tuple[Plan, ...]
    predicate: Predicate


@dataclass(frozen=True, slots=True, eq=False)
class Not:
    child: Plan
    predicate: Predicate


Plan = Opaque | LowerText | TextCheck | NumberIn | Compare | Exists | AllOf | AnyOf | Not


def plan_all(children: Sequence[Plan]) -> Plan:
    """AND of plans, short-circuiting in order."""
    if len(children) == 1:
        return children[0]
    return AllOf(tuple(children), all_of([child.predicate for child in children]))


def plan_any(children: Sequence[Plan]) -> Plan:
    """OR of plans, short-circuiting in order."""
    if len(children) == 1:
        return children[0]
    return AnyOf(tuple(children), any_of([child.predicate for child in children]))


def plan_not(child: Plan) -> Plan:
    """NOT of a plan."""
    return Not(child, negate(child.predicate))


def all_of(predicates: list[Predicate]) -> Predicate:
    """AND of predicates, short-circuiting in order."""
    if len(predicates) == 1:
        return predicates[0]
    if len(predicates) == 2:
        first, second = predicates
        return lambda record: first(record) and second(record)
    frozen = tuple(predicates)

    def match(record: Record) -> bool:
        for predicate in frozen:
            if not predicate(record):
                return False
        return True

    return match


def any_of(predicates: list[Predicate]) -> Predicate:
    """OR of predicates, short-circuiting in order."""
    if len(predicates) == 1:
        return predicates[0]
    if len(predicates) == 2:
        first, second = predicates
        return lambda record: first(record) or second(record)
    frozen = tuple(predicates)

    def match(record: Record) -> bool:
        for predicate in frozen:
            if predicate(record):
                return True
        return False

    return match


def negate(predicate: Predicate) -> Predicate:
    """NOT of a predicate."""
    return lambda record: not predicate(record)
