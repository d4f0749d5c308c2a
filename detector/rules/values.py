"""Compiling the typed values of one detection item into a test on one field value.

A value list (OR-linked) becomes a single `ValueTest` whose strings are grouped by shape
and case mode, so a list of 50 `endswith` values costs one `str.endswith(tuple)` call on
a value lower-cased once. The test takes `(value, text, lower)`: the raw JSON scalar,
its text form (`fields.text_of`) and that text lower-cased (None when no
case-insensitive pattern needs it), so callers lower-case each value once per match.
"""

# Explicit loops instead of any()/all() over generators: half the cost on the match path.
# ruff: noqa: SIM110

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC
from functools import lru_cache
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address
from typing import Any, Final

from sigma.types import (
    CompareOperators,
    Placeholder,
    SigmaBool,
    SigmaCasedString,
    SigmaCIDRExpression,
    SigmaCompareExpression,
    SigmaNumber,
    SigmaRegularExpression,
    SigmaString,
    SigmaTimestampPart,
    SigmaType,
    SpecialChars,
    TimestampPart,
)

from detector.memo import remember_text
from detector.rules.errors import RuleCompileError
from detector.rules.fields import as_number
from detector.timestamps import from_any

ScalarTest = Callable[[Any, str | None, str | None], bool]
TextTest = Callable[[str], bool]
_Part = str | SpecialChars

_COMPARE: Final[dict[CompareOperators, Callable[[Any, Any], bool]]] = {
    CompareOperators.LT: operator.lt,
    CompareOperators.LTE: operator.le,
    CompareOperators.GT: operator.gt,
    CompareOperators.GTE: operator.ge,
    CompareOperators.NEQ: operator.ne,
}

_SYMBOLS: Final = {
    CompareOperators.LT: "<",
    CompareOperators.LTE: "<=",
    CompareOperators.GT: ">",
    CompareOperators.GTE: ">=",
    CompareOperators.NEQ: "!=",
}


@dataclass(frozen=True, slots=True)
class ValueTest:
    """OR of a value list, applied to one scalar; `needs_lower` says to pass `lower`.

    `lower_spec` is set when every value is a case-insensitive string: the whole test
    is then its `holds` on the lower-cased text, which saves two calls per value.
    """

    test: ScalarTest
    needs_lower: bool
    lower_spec: TextSpec | None = None
    #: set when every value is a number: the test is membership of the number read
    numbers_only: frozenset[int | float] | None = None
    #: set for a single numeric comparison (`|gt: 400`): operator symbol and bound
    comparison: tuple[str, int | float] | None = None
    #: set when every value is a regular expression or a network (`|re`, `|cidr`): the
    #: test reads only a value's text, so a string is tested as `test(s, s, None)`
    text_only: bool = False


@dataclass(frozen=True, slots=True)
class TextSpec:
    """Strings of one case mode grouped by shape: the test is the OR of the non-empty ones."""

    any: bool
    equal: frozenset[str]
    prefixes: tuple[str, ...]
    suffixes: tuple[str, ...]
    substrings: tuple[str, ...]
    #: the `?` and inner-`*` patterns as one regular expression, matched in full
    pattern: re.Pattern[str] | None

    def holds(self, text: str) -> bool:
        """Whether `text` (lower-cased for a case-insensitive spec) passes the OR."""
        if self.any or text in self.equal:
            return True
        if self.prefixes and text.startswith(self.prefixes):
            return True
        if self.suffixes and text.endswith(self.suffixes):
            return True
        for needle in self.substrings:
            if needle in text:
                return True
        return self.pattern is not None and self.pattern.fullmatch(text) is not None

    def build(self) -> TextTest | None:
        """The test as a function, or None when there is no string to test."""
        tests = (self.equal, self.prefixes, self.suffixes, self.substrings)
        if self.any or self.pattern is not None or any(tests):
            return self.holds
        return None


def compile_values(values: Sequence[SigmaType]) -> ValueTest:
    """One test that passes when the field value matches any of `values`."""
    insensitive = _TextPatterns()
    sensitive = _TextPatterns()
    numbers: set[int | float] = set()
    booleans: set[bool] = set()
    regexes: list[re.Pattern[str]] = []
    networks: list[IPv4Network | IPv6Network] = []
    value_checks: list[Callable[[Any], bool]] = []
    comparisons: list[tuple[str, int | float]] = []
    for value in values:
        if isinstance(value, SigmaCasedString):
            sensitive.add(_string_parts(value))
        elif isinstance(value, SigmaString):
            insensitive.add([p.lower() if isinstance(p, str) else p for p in _string_parts(value)])
        elif isinstance(value, SigmaRegularExpression):
            regexes.append(_compile_regex(value))
        elif isinstance(value, SigmaTimestampPart):
            value_checks.append(_time_part_check(value, operator.eq, value.number))
        elif isinstance(value, SigmaNumber):
            numbers.add(value.number)
        elif isinstance(value, SigmaBool):
            booleans.add(value.boolean)
        elif isinstance(value, SigmaCIDRExpression):
            networks.append(value.network)
        elif isinstance(value, SigmaCompareExpression):
            value_checks.append(_compare_check(value))
            if not isinstance(value.number, SigmaTimestampPart):
                comparisons.append((_SYMBOLS[value.op], value.number.number))
        else:
            raise RuleCompileError(f"unsupported value type {type(value).__name__}")

    checks: list[ScalarTest] = []
    lower_spec = insensitive.spec()
    lower_test = lower_spec.build()
    if lower_test is not None:
        checks.append(_on_lower(lower_test))
    text_test = sensitive.spec().build()
    if text_test is not None:
        checks.append(_on_text(text_test))
    if numbers:
        checks.append(_number_check(frozenset(numbers)))
    if booleans:
        checks.append(_bool_check(frozenset(booleans)))
    if len(regexes) == 1:
        checks.append(_remembered_text(regexes[0].search))
    elif regexes:
        checks.append(_remembered_text(_any_text(tuple(rx.search for rx in regexes))))
    if networks:
        checks.append(_remembered_text(_cidr_check(tuple(networks))))
    checks.extend(_on_value(check) for check in value_checks)
    if lower_test is not None and len(checks) == 1:
        return ValueTest(checks[0], True, lower_spec)
    if numbers and len(checks) == 1:
        return ValueTest(checks[0], False, numbers_only=frozenset(numbers))
    if len(comparisons) == 1 and len(checks) == 1:
        return ValueTest(checks[0], False, comparison=comparisons[0])
    if (regexes or networks) and len(checks) == 1:
        return ValueTest(checks[0], False, text_only=True)
    return ValueTest(_any_scalar(checks), lower_test is not None)


def _string_parts(value: SigmaString) -> list[_Part]:
    """The string as text runs and wildcards: runs merged, repeated `*` collapsed."""
    parts: list[_Part] = []
    for part in value.s:
        if isinstance(part, Placeholder):
            raise RuleCompileError(f"placeholder %{part.name}% is not resolved")
        if isinstance(part, str):
            if not part:
                continue
            if parts and isinstance(parts[-1], str):
                parts[-1] += part
                continue
        elif part is SpecialChars.WILDCARD_MULTI and parts and parts[-1] is part:
            continue
        parts.append(part)
    return parts


class _TextPatterns:
    """Wildcard strings of one case mode, grouped by the cheapest test for their shape."""

    def __init__(self) -> None:
        self.any = False
        self.equal: set[str] = set()
        self.prefixes: set[str] = set()
        self.suffixes: set[str] = set()
        self.substrings: set[str] = set()
        self.patterns: list[str] = []

    def add(self, parts: list[_Part]) -> None:
        multi = SpecialChars.WILDCARD_MULTI
        texts = [part for part in parts if isinstance(part, str)]
        shape = tuple(part if part is multi else "" for part in parts)
        if SpecialChars.WILDCARD_SINGLE in parts:
            self.patterns.append(_wildcard_regex(parts))
        elif not parts:
            self.equal.add("")
        elif shape == ("",):
            self.equal.add(texts[0])
        elif shape == (multi,):
            self.any = True
        elif shape == ("", multi):
            self.prefixes.add(texts[0])
        elif shape == (multi, ""):
            self.suffixes.add(texts[0])
        elif shape == (multi, "", multi):
            self.substrings.add(texts[0])
        else:
            self.patterns.append(_wildcard_regex(parts))

    def spec(self) -> TextSpec:
        combined = "|".join(f"(?:{pattern})" for pattern in self.patterns)
        return TextSpec(
            any=self.any,
            equal=frozenset(self.equal),
            prefixes=tuple(sorted(self.prefixes)),
            suffixes=tuple(sorted(self.suffixes)),
            substrings=tuple(sorted(self.substrings)),
            pattern=re.compile(combined, re.DOTALL) if self.patterns else None,
        )


def _wildcard_regex(parts: list[_Part]) -> str:
    pieces = []
    for part in parts:
        if isinstance(part, str):
            pieces.append(re.escape(part))
        else:
            pieces.append(".*" if part is SpecialChars.WILDCARD_MULTI else ".")
    return "".join(pieces)


def _compile_regex(value: SigmaRegularExpression) -> re.Pattern[str]:
    flags = 0
    for flag in value.flags:
        flags |= SigmaRegularExpression.sigma_to_python_flags[flag]
    source = str(value.regexp)
    try:
        return re.compile(source, flags)
    except re.error as exc:
        raise RuleCompileError(f"invalid regular expression {source!r}: {exc}") from exc


def _any_text(tests: tuple[Callable[[str], object], ...]) -> TextTest:
    def test(text: str) -> bool:
        for inner in tests:
            if inner(text):
                return True
        return False

    return test


def _on_lower(test: TextTest) -> ScalarTest:
    def check(value: Any, text: str | None, lower: str | None) -> bool:
        return lower is not None and test(lower)

    return check


def _on_text(test: TextTest) -> ScalarTest:
    def check(value: Any, text: str | None, lower: str | None) -> bool:
        return text is not None and test(text)

    return check


def _remembered_text(test: Callable[[str], object]) -> ScalarTest:
    """`_on_text` of a costly test (regular expressions, networks) with its answers
    remembered per text, up to `_REMEMBERED_ANSWERS` texts of a field: addresses, user
    agents and paths repeat, and a search costs about a microsecond."""
    answers: dict[str, bool] = {}

    def check(value: Any, text: str | None, lower: str | None) -> bool:
        if text is None:
            return False
        known = answers.get(text)
        if known is None:
            known = remember_text(answers, text, bool(test(text)), _REMEMBERED_ANSWERS)
        return known

    return check


#: texts each costly test remembers (at most `memo.LONGEST_TEXT` characters each): about
#: 0.3 MB at worst per test, and the pack with SigmaHQ's audit rules has 71 such tests
_REMEMBERED_ANSWERS: Final = 1024


def _on_value(test: Callable[[Any], bool]) -> ScalarTest:
    def check(value: Any, text: str | None, lower: str | None) -> bool:
        return test(value)

    return check


def _number_check(numbers: frozenset[int | float]) -> ScalarTest:
    def check(value: Any, text: str | None, lower: str | None) -> bool:
        number = as_number(value)
        return number is not None and number in numbers

    return check


def _bool_check(booleans: frozenset[bool]) -> ScalarTest:
    texts = frozenset("true" if b else "false" for b in booleans)

    def check(value: Any, text: str | None, lower: str | None) -> bool:
        if isinstance(value, bool):
            return value in booleans
        return isinstance(value, str) and value.strip().lower() in texts

    return check


@lru_cache(maxsize=4096)
def _parse_ip(text: str) -> IPv4Address | IPv6Address | None:
    try:
        address = ip_address(text.strip())
    except ValueError:
        return None
    if isinstance(address, IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _cidr_check(networks: tuple[IPv4Network | IPv6Network, ...]) -> TextTest:
    def test(text: str) -> bool:
        address = _parse_ip(text)
        if address is None:
            return False
        for network in networks:
            if address in network:
                return True
        return False

    return test


def _compare_check(value: SigmaCompareExpression) -> Callable[[Any], bool]:
    compare = _COMPARE[value.op]
    bound = value.number.number
    if isinstance(value.number, SigmaTimestampPart):
        return _time_part_check(value.number, compare, bound)

    def check(field_value: Any) -> bool:
        number = as_number(field_value)
        return number is not None and compare(number, bound)

    return check


def _time_part_check(
    value: SigmaTimestampPart, compare: Callable[[Any, Any], bool], bound: int | float
) -> Callable[[Any], bool]:
    part = value.timestamp_part

    def check(field_value: Any) -> bool:
        try:
            moment = from_any(field_value, UTC)
        except ValueError:  # TimestampError, or text that only looks numeric
            return False
        if part is TimestampPart.MINUTE:
            extracted = moment.minute
        elif part is TimestampPart.HOUR:
            extracted = moment.hour
        elif part is TimestampPart.DAY:
            extracted = moment.day
        elif part is TimestampPart.WEEK:
            extracted = moment.isocalendar().week
        elif part is TimestampPart.MONTH:
            extracted = moment.month
        else:
            extracted = moment.year
        return compare(extracted, bound)

    return check


def _any_scalar(checks: list[ScalarTest]) -> ScalarTest:
    if len(checks) == 1:
        return checks[0]
    frozen = tuple(checks)

    def check(value: Any, text: str | None, lower: str | None) -> bool:
        for inner in frozen:
            if inner(value, text, lower):
                return True
        return False

    return check
