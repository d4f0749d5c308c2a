"""A rule's plan as compiled objects: one native test per and/or/not and field test.

The closures cost 4-5 Python calls per field test (condition, identifier, getter, value
test, string method). Here a rule is a tree of native objects, evaluated without the
interpreter: a field test reads its field (a key or an `outer.inner` path inline),
lower-cases a string and tests it with its `TextSpec` (`in` a frozenset,
`str.startswith`/`str.endswith` with a tuple, `in` for substrings, a precompiled
`fullmatch`); an integer among numbers is `in` a frozenset, `|gt` and the like are one
comparison, `exists` is `is` MISSING; a string's regular expressions or networks
(`|re`, `|cidr`) are the value test itself, its answers remembered per text; a list of
strings passes a string test by any element. Everything else (other lists, numeric
text, field references, keyword searches...) calls the node's closure, so the
semantics stay those of `detection`. Nothing is generated as source: rule-provided
strings are only ever data.
"""

# Explicit loops instead of any()/all(): no generator in compiled code.
# ruff: noqa: SIM110

from __future__ import annotations

from typing import Any, Final

from detector.memo import remember_text
from detector.rules.fields import MISSING, FieldReader
from detector.rules.plan import (
    AllOf,
    AnyOf,
    Compare,
    Exists,
    LowerText,
    Not,
    NumberIn,
    Plan,
    Predicate,
    TextCheck,
)
from detector.rules.values import ScalarTest, TextSpec

#: `Compare.operator` symbol -> the code `_Compare` branches on
_OPERATORS: Final = {"<": 0, "<=": 1, ">": 2, ">=": 3, "!=": 4}
#: an AND is put in the order of its children's failures after this many records
REORDER_EVERY: Final = 1024
#: field texts lower-cased: rules read the same user names and verbs over and over
_LOWERED: Final[dict[str, str]] = {}
_LOWERED_LIMIT: Final = 4096


class Test:
    """One node of a rule's plan."""

    def holds(self, record: dict[str, Any]) -> bool:
        raise NotImplementedError


def evaluator(plan: Plan) -> Test:
    """The plan as native objects, equal to `plan.predicate` on every record."""
    if isinstance(plan, AllOf):
        return _All([evaluator(child) for child in plan.children])
    if isinstance(plan, AnyOf):
        return _Any([evaluator(child) for child in plan.children])
    if isinstance(plan, Not):
        return _Not(evaluator(plan.child))
    if isinstance(plan, Exists):
        return _Exists(FieldReader(plan.field), plan.expected)
    if isinstance(plan, LowerText):
        return _Text(FieldReader(plan.field), plan.spec, plan.predicate)
    if isinstance(plan, TextCheck):
        return _TextCheck(FieldReader(plan.field), plan.test, plan.predicate)
    if isinstance(plan, NumberIn):
        return _Numbers(FieldReader(plan.field), plan.numbers, plan.predicate)
    if isinstance(plan, Compare):
        return _Compare(FieldReader(plan.field), plan.operator, plan.bound, plan.predicate)
    return _Closure(plan.predicate)


class _All(Test):
    """AND of the children, tried in the order in which they failed most often so far.

    The order changes the cost, never the answer (the tests have no effects): a rule is
    tried on many records that meet its index clauses and fail one other test (a system
    identity, yes; from a public address, almost never), and that test goes first.
    """

    def __init__(self, children: list[Test]) -> None:
        self.children = children
        #: per child, in `children` order: how often it was the one that failed
        self.failures = [0] * len(children)
        self.until_reorder = REORDER_EVERY

    def holds(self, record: dict[str, Any]) -> bool:
        self.until_reorder -= 1
        if self.until_reorder == 0:
            self._reorder()
        for position, child in enumerate(self.children):
            if not child.holds(record):
                self.failures[position] += 1
                return False
        return True

    def _reorder(self) -> None:
        """Most failures first (ties keep their order); the counts start over at half,
        so that a change in the stream shows."""
        ranked = sorted(zip(self.failures, self.children, strict=True), key=_failures, reverse=True)
        self.children = [child for _, child in ranked]
        self.failures = [count // 2 for count, _ in ranked]
        self.until_reorder = REORDER_EVERY


def _failures(entry: tuple[int, Test]) -> int:
    return entry[0]


class _Any(Test):
    def __init__(self, children: list[Test]) -> None:
        self.children = children

    def holds(self, record: dict[str, Any]) -> bool:
        for child in self.children:
            if child.holds(record):
                return True
        return False


class _Not(Test):
    def __init__(self, child: Test) -> None:
        self.child = child

    def holds(self, record: dict[str, Any]) -> bool:
        return not self.child.holds(record)


class _Closure(Test):
    """A test only the closure knows (`Opaque`)."""

    def __init__(self, predicate: Predicate) -> None:
        self.predicate = predicate

    def holds(self, record: dict[str, Any]) -> bool:
        return bool(self.predicate(record))


class _Exists(Test):
    def __init__(self, field: FieldReader, expected: bool) -> None:
        self.field = field
        self.expected = expected

    def holds(self, record: dict[str, Any]) -> bool:
        return (self.field.read(record) is not MISSING) == self.expected


class _FieldTest(Test):
    """A test of one field's value that makes the common shapes itself and leaves the
    others to the node's closure (`otherwise`)."""

    def __init__(self, field: FieldReader, fallback: Predicate) -> None:
        self.field = field
        self.fallback = fallback

    def otherwise(self, value: object, record: dict[str, Any]) -> bool:
        """An absent or null field fails; a list, a float, a boolean... the closure decides."""
        if value is MISSING or value is None:
            return False
        return bool(self.fallback(record))


class _StringTest(_FieldTest):
    """A test of a string value (`passes`), which a list of strings passes by any
    element; other values go to the closure."""

    def passes(self, text: str) -> bool:
        raise NotImplementedError

    def holds(self, record: dict[str, Any]) -> bool:
        value = self.field.read(record)
        if type(value) is str:
            return self.passes(value)
        if type(value) is list:
            return self._any_string(value, record)
        return self.other_value(value, record)

    def other_value(self, value: object, record: dict[str, Any]) -> bool:
        return self.otherwise(value, record)

    def _any_string(self, values: list[Any], record: dict[str, Any]) -> bool:
        """A list of strings, the common list (a Kubernetes user's groups, its client
        addresses), is tested here; any other goes to the closure."""
        for item in values:
            if type(item) is not str:
                return self.otherwise(values, record)
        for item in values:
            if self.passes(item):
                return True
        return False


class _Text(_StringTest):
    """A string's lower-cased text (an integer's digits) passes `spec`."""

    def __init__(self, field: FieldReader, spec: TextSpec, fallback: Predicate) -> None:
        super().__init__(field, fallback)
        self.spec = spec

    def passes(self, text: str) -> bool:
        return self.spec.holds(_lowered(text))

    def other_value(self, value: object, record: dict[str, Any]) -> bool:
        if type(value) is int:
            return self.spec.holds(str(value))
        return self.otherwise(value, record)


class _TextCheck(_StringTest):
    """A string's text passes the value test (`|re`, `|cidr`, answers remembered per
    text): the closure's test, without its field read and calls around it."""

    def __init__(self, field: FieldReader, check: ScalarTest, fallback: Predicate) -> None:
        super().__init__(field, fallback)
        self.check = check

    def passes(self, text: str) -> bool:
        return bool(self.check(text, text, None))


def _lowered(text: str) -> str:
    """`text.lower()`, remembered."""
    lowered = _LOWERED.get(text)
    if lowered is None:
        lowered = remember_text(_LOWERED, text, text.lower(), _LOWERED_LIMIT)
    return lowered


class _Numbers(_FieldTest):
    """An integer among `numbers`."""

    def __init__(
        self, field: FieldReader, numbers: frozenset[int | float], fallback: Predicate
    ) -> None:
        super().__init__(field, fallback)
        self.numbers = numbers

    def holds(self, record: dict[str, Any]) -> bool:
        value = self.field.read(record)
        if type(value) is int:
            return value in self.numbers
        return self.otherwise(value, record)


class _Compare(_FieldTest):
    """An integer for which `value <operator> bound`."""

    def __init__(
        self, field: FieldReader, operator: str, bound: int | float, fallback: Predicate
    ) -> None:
        super().__init__(field, fallback)
        self.operator = _OPERATORS[operator]
        self.bound = bound

    def holds(self, record: dict[str, Any]) -> bool:
        value = self.field.read(record)
        if type(value) is not int:
            return self.otherwise(value, record)
        bound = self.bound
        operator = self.operator
        if operator == 0:
            return bool(value < bound)
        if operator == 1:
            return bool(value <= bound)
        if operator == 2:
            return bool(value > bound)
        if operator == 3:
            return bool(value >= bound)
        return bool(value != bound)
