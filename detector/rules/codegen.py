"""One generated Python function per rule, from its plan: fewer calls per record.

The closures cost 4-5 Python calls per field test (condition, identifier, getter, value
test, string method). The generated function reads each field once into a local,
lower-cases a string once, and tests it inline: `in` a frozenset for equality,
`str.startswith`/`str.endswith` with a tuple, `in` for substrings, a precompiled
`fullmatch` for wildcard patterns, `in` a frozenset for an integer among numbers, a
comparison operator for `|gt` and the like, `is` MISSING for `exists`. Everything else
(lists, numeric text, regular expressions, CIDR, field references, keyword searches...)
calls the node's closure, so the semantics stay those of `detection`.

The source text holds only names this module makes up (`v0`, `k3`...) and fixed syntax:
rule-provided strings, field names and patterns reach the function as constants of its
globals, never as code.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from types import CodeType
from typing import Any

from detector.rules.fields import MISSING, record_getter
from detector.rules.plan import (
    AllOf,
    AnyOf,
    Compare,
    Exists,
    LowerText,
    Not,
    NumberIn,
    Opaque,
    Plan,
    Predicate,
)
from detector.rules.values import TextSpec

_NAME = "match"
_OPERATORS = {symbol: symbol for symbol in ("<", "<=", ">", ">=", "!=")}


def generate(plan: Plan) -> Predicate:
    """The plan as one compiled function, equal to `plan.predicate` on every record."""
    if isinstance(plan, Opaque):
        return plan.predicate  # nothing to inline: the closure is already one call
    writer = _Writer()
    lines = [f"def {_NAME}(record):"]
    for conjunct, positive in _conjuncts(plan, True):
        lines.extend(writer.require(conjunct, positive, "    "))
    lines.append("    return True")
    namespace = dict(writer.constants)
    exec(_code("\n".join(lines)), namespace)
    function: Predicate = namespace[_NAME]
    return function


@cache
def _code(source: str) -> CodeType:
    """Compiled once per shape: the text names constants, so rules alike share it."""
    return compile(source, "<rule>", "exec")


def _conjuncts(plan: Plan, positive: bool) -> list[tuple[Plan, bool]]:
    """The plan (negated unless `positive`) as an AND of tests, each tested in turn.

    `a and b` and `not (a or b)` split into their terms, so a field is read only
    once the tests before it passed, the way the closures short-circuit.
    """
    if isinstance(plan, Not):
        return _conjuncts(plan.child, not positive)
    if (positive and isinstance(plan, AllOf)) or (not positive and isinstance(plan, AnyOf)):
        return [term for child in plan.children for term in _conjuncts(child, positive)]
    return [(plan, positive)]


def _and_terms(plan: Plan) -> list[Plan]:
    if isinstance(plan, AllOf):
        return [term for child in plan.children for term in _and_terms(child)]
    return [plan]


@dataclass
class _Writer:
    """Names the constants and field locals of one generated function."""

    constants: dict[str, Any] = field(default_factory=lambda: {"MISSING": MISSING})
    #: field name -> index of its locals set on every path to the current line:
    #: `v<i>` the value, and `l<i>` its lower-cased text if `i` is in `lowered`
    fields: dict[str, int] = field(default_factory=dict)
    lowered: set[int] = field(default_factory=set)
    reads: int = 0

    def constant(self, value: Any) -> str:
        name = f"k{len(self.constants)}"
        self.constants[name] = value
        return name

    def require(self, plan: Plan, positive: bool, indent: str) -> list[str]:
        """Statements returning False unless `plan` holds (is false if not `positive`)."""
        if positive:
            return [
                *self.read_fields(plan, indent),
                f"{indent}if not {self.expression(plan)}:",
                f"{indent}    return False",
            ]
        # not (a and b): nested ifs, each term's fields read once the ones before held
        first, *rest = _and_terms(plan)
        lines = self.read_fields(first, indent)
        lines.append(f"{indent}if {self.expression(first)}:")
        # reads below hold only inside their block
        outer, outer_lowered = dict(self.fields), set(self.lowered)
        inner = indent + "    "
        for term in rest:
            lines.extend(self.read_fields(term, inner))
            lines.append(f"{inner}if {self.expression(term)}:")
            inner += "    "
        lines.append(f"{inner}return False")
        self.fields, self.lowered = outer, outer_lowered
        return lines

    def read_fields(self, plan: Plan, indent: str) -> list[str]:
        """Statements reading the fields `plan` tests that are not read yet."""
        lines: list[str] = []
        for name, lower in _fields_of(plan):
            index = self.fields.get(name)
            if index is None:
                index = self.fields[name] = self.reads
                self.reads += 1
                if "." in name:  # a path: the shared getter remembers it per record
                    getter = self.constant(record_getter(name))
                    lines.append(f"{indent}v{index} = {getter}(record)")
                else:
                    key = self.constant(name)
                    lines.append(f"{indent}v{index} = record.get({key}, MISSING)")
            if lower and index not in self.lowered:
                self.lowered.add(index)
                value = f"v{index}"
                # an integer's text is its digits: the closures test str(value) too
                lowered = (
                    f"{value}.lower() if type({value}) is str"
                    f" else str({value}) if type({value}) is int else None"
                )
                lines.append(f"{indent}l{index} = {lowered}")
        return lines

    def expression(self, plan: Plan) -> str:
        if isinstance(plan, AllOf):
            return "(" + " and ".join(self.expression(c) for c in plan.children) + ")"
        if isinstance(plan, AnyOf):
            return "(" + " or ".join(self.expression(c) for c in plan.children) + ")"
        if isinstance(plan, Not):
            return f"(not {self.expression(plan.child)})"
        if isinstance(plan, Exists):
            test = "is not" if plan.expected else "is"
            return f"(v{self.fields[plan.field]} {test} MISSING)"
        if isinstance(plan, LowerText):
            text = f"l{self.fields[plan.field]}"
            test = self._text_test(plan.spec, text)
            return f"({test} if {text} is not None else {self._other_value(plan)})"
        if isinstance(plan, NumberIn):
            value = f"v{self.fields[plan.field]}"
            numbers = self.constant(plan.numbers)
            return f"({value} in {numbers} if type({value}) is int else {self._other_value(plan)})"
        if isinstance(plan, Compare):
            value = f"v{self.fields[plan.field]}"
            operator = _OPERATORS[plan.operator]  # a fixed symbol of this module's table
            test = f"{value} {operator} {self.constant(plan.bound)}"
            return f"({test} if type({value}) is int else {self._other_value(plan)})"
        return f"{self.constant(plan.predicate)}(record)"

    def _other_value(self, plan: LowerText | NumberIn | Compare) -> str:
        """An absent or null field fails; a list, a number... goes to the closure."""
        value = f"v{self.fields[plan.field]}"
        fallback = self.constant(plan.predicate)
        return f"({value} is not MISSING and {value} is not None and {fallback}(record))"

    def _text_test(self, spec: TextSpec, text: str) -> str:
        if spec.any:
            return "True"
        tests: list[str] = []
        if len(spec.equal) == 1:
            tests.append(f"{text} == {self.constant(next(iter(spec.equal)))}")
        elif spec.equal:
            tests.append(f"{text} in {self.constant(spec.equal)}")
        if spec.prefixes:
            tests.append(f"{text}.startswith({self.constant(spec.prefixes)})")
        if spec.suffixes:
            tests.append(f"{text}.endswith({self.constant(spec.suffixes)})")
        tests.extend(f"{self.constant(needle)} in {text}" for needle in spec.substrings)
        if spec.pattern is not None:
            tests.append(f"{self.constant(spec.pattern.fullmatch)}({text}) is not None")
        return "(" + " or ".join(tests) + ")"


def _fields_of(plan: Plan) -> list[tuple[str, bool]]:
    """(field, needs its lower-cased text) for each inlined test of `plan`, in order."""
    if isinstance(plan, AllOf | AnyOf):
        return [pair for child in plan.children for pair in _fields_of(child)]
    if isinstance(plan, Not):
        return _fields_of(plan.child)
    if isinstance(plan, LowerText):
        return [(plan.field, True)]
    if isinstance(plan, Exists | NumberIn | Compare):
        return [(plan.field, False)]
    return []
