"""A second reading of the Sigma specification, written from its text alone, for the
differential tests: it never calls pySigma or the engine.

It takes a detection section as plain YAML data and a JSON record and says whether the
rule matches. It is meant to be obviously right, not fast: a string value becomes a list
of characters and wildcards that is matched against the field's text one character at a
time, every modifier is a few lines of its own, and the condition is parsed by a small
recursive-descent parser that follows the precedence table of the specification.

Readings chosen where the specification leaves room:
- case-insensitive means equal under Unicode simple case folding, one character for one
  character (so `?` is always one character);
- a field holding a list matches when one of its elements matches;
- a number or boolean in a rule is a string like any other ("All values are treated as
  case-insensitive strings"); numbers and booleans in records are compared by their JSON
  text;
- the comparison modifiers read JSON numbers and strings holding a JSON number;
- the time modifiers read ISO 8601 dates and date-times and take the parts as written
  ("not designed to handle timezone or format conversions");
- `neq` holds when the item does not match (a missing field is different);
- `re` searches the value (a match anywhere) with Python's `re`, which reads the PCRE
  subset the appendix defines the same way.
"""

from __future__ import annotations

import base64
import ipaddress
import itertools
import json
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from enum import Enum
from functools import cache
from typing import Any

Record = Mapping[str, Any]


class Wildcard(Enum):
    """`*` (any run of characters) and `?` (exactly one character)."""

    MULTI = "*"
    SINGLE = "?"


@dataclass(frozen=True)
class Placeholder:
    """`%name%` in a value with the `expand` modifier."""

    name: str


Token = str | Wildcard | Placeholder
# A value on its way through the modifiers: text with wildcards, or bytes once encoded.
Stage = tuple[Token, ...] | bytes
# One alternative of a value, tested on one element of the field's value.
ElementTest = Callable[[Any, Record], bool]

DASHES = "-/\u2013\u2014\u2015"  # the five characters `windash` interchanges
TIME_PARTS = ("minute", "hour", "day", "week", "month", "year")
COMPARISONS: dict[str, Callable[[float, float], bool]] = {
    "lt": lambda a, b: a < b,
    "lte": lambda a, b: a <= b,
    "gt": lambda a, b: a > b,
    "gte": lambda a, b: a >= b,
}
JSON_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")
_ISO_DATE_TIME = re.compile(
    r"(?P<year>[0-9]{4})-(?P<month>[0-9]{2})-(?P<day>[0-9]{2})(?:[T ]"
    r"(?P<hour>[0-9]{2}):(?P<minute>[0-9]{2})(?::[0-9]{2}(?:\.[0-9]+)?)?"
    r"(?:Z|[+-][0-9]{2}:[0-9]{2})?)?"
)


class UnreadableRule(Exception):
    """A rule the reference cannot read (the test generator should not make one)."""


def tokenize(raw: str, expand: bool = False) -> tuple[Token, ...]:
    """A Sigma string as characters and wildcards, after the escape-character section.

    `\\` escapes `*`, `?` and itself; before any other character it is a plain backslash.
    With `expand`, `%name%` is a placeholder and `\\%` a plain percent sign.
    """
    tokens: list[Token] = []
    position = 0
    while position < len(raw):
        char = raw[position]
        following = raw[position + 1] if position + 1 < len(raw) else ""
        if char == "\\" and (following in ("*", "?", "\\") or (expand and following == "%")):
            tokens.append(following)
            position += 2
            continue
        if char in "*?":
            tokens.append(Wildcard(char))
        elif char == "%" and expand and (end := raw.find("%", position + 1)) > position + 1:
            tokens.append(Placeholder(raw[position + 1 : end]))
            position = end + 1
            continue
        else:
            tokens.append(char)
        position += 1
    return tuple(tokens)


def fold(char: str) -> str:
    """Unicode simple case folding of one character (it stays one character)."""
    for folded in (char.casefold(), char.lower()):
        if len(folded) == 1:
            return folded
    return char


def same_char(pattern: str, char: str, cased: bool) -> bool:
    return pattern == char or (not cased and fold(pattern) == fold(char))


def wildcard_match(tokens: tuple[Token, ...], text: str, cased: bool) -> bool:
    """True if the pattern covers the whole text."""

    @cache
    def match(i: int, j: int) -> bool:
        if i == len(tokens):
            return j == len(text)
        token = tokens[i]
        if token is Wildcard.MULTI:
            return match(i + 1, j) or (j < len(text) and match(i, j + 1))
        if j == len(text):
            return False
        if token is Wildcard.SINGLE:
            return match(i + 1, j + 1)
        assert isinstance(token, str)
        return same_char(token, text[j], cased) and match(i + 1, j + 1)

    return match(0, 0)


def text_of(element: Any) -> str | None:
    """The text a string pattern is matched against: JSON text for numbers and booleans."""
    if isinstance(element, str):
        return element
    if isinstance(element, bool | int | float):
        return json.dumps(element)
    return None


def number_of(element: Any) -> float | None:
    if isinstance(element, bool):
        return None
    if isinstance(element, int | float):
        return element
    if isinstance(element, str) and JSON_NUMBER.fullmatch(element):
        return float(element)
    return None


def time_part(element: Any, part: str) -> int | None:
    """The part of an ISO 8601 date or date-time, as written in the text (a date has no
    hour or minute)."""
    if not isinstance(element, str) or not (found := _ISO_DATE_TIME.fullmatch(element)):
        return None
    year, month, day = (int(found[name]) for name in ("year", "month", "day"))
    try:
        week = date(year, month, day).isocalendar().week
    except ValueError:
        return None
    if part == "week":
        return week
    return None if found[part] is None else int(found[part])


def elements(value: Any) -> Iterator[Any]:
    """The value, or each element of a (nested) list."""
    if isinstance(value, list):
        for element in value:
            yield from elements(element)
    else:
        yield value


_MISSING = object()


def lookup(record: Record, name: str) -> Any:
    return record.get(name, _MISSING)


def flatten(record: Record) -> dict[str, Any]:
    """A nested record as the one-level record of dotted field names that rules read.

    Every member of an object is also a field under its dotted path (`objectRef.resource`),
    and the object stays a field of its own. A member of the objects in a list is the list
    of its values in those objects, nested lists spread (`spec.containers.image`: every
    container's image), the way search engines index arrays of objects; objects where it is
    absent add nothing. Two different paths that spell one name are an error.
    """
    flat: dict[str, Any] = {}
    collected: set[str] = set()

    def add(name: str, value: Any, in_list: bool) -> None:
        if name in flat and not (in_list and name in collected):
            raise ValueError(f"two paths spell the field {name!r}")
        if in_list:
            collected.add(name)
            flat.setdefault(name, []).extend(elements(value))
        else:
            flat[name] = value

    def walk(members: Record, prefix: str, in_list: bool) -> None:
        for key, value in members.items():
            name = f"{prefix}{key}"
            add(name, value, in_list)
            for element in elements(value):
                if isinstance(element, Mapping):
                    walk(element, f"{name}.", in_list or isinstance(value, list))

    walk(record, "", False)
    return flat


# --- values through the modifiers ------------------------------------------------------


def _literal_text(stage: Stage) -> str:
    if isinstance(stage, bytes) or not all(isinstance(t, str) for t in stage):
        raise UnreadableRule("an encoding modifier needs a plain string")
    return "".join(str(t) for t in stage)


def _as_bytes(stage: Stage) -> bytes:
    return stage if isinstance(stage, bytes) else _literal_text(stage).encode()


def _base64_offsets(data: bytes) -> list[str]:
    """The characters of base64(prefix + data + suffix) that only `data` decides, for
    a prefix of 0, 1 and 2 bytes: character k covers bits 6k..6k+6 of the whole, and it is
    kept when those bits all lie in `data`."""
    fragments = []
    for shift in range(3):
        encoded = base64.b64encode(bytes(shift) + data).decode()
        first, end = 8 * shift, 8 * (shift + len(data))
        fragments.append(
            "".join(c for k, c in enumerate(encoded) if 6 * k >= first and 6 * k + 6 <= end)
        )
    return fragments


def _substitute(stage: Stage, placeholders: Mapping[str, Sequence[str]]) -> list[Stage]:
    """Each way of replacing the placeholders by configured values (each a Sigma string)."""
    if isinstance(stage, bytes):
        return [stage]
    choices: list[list[tuple[Token, ...]]] = []
    for token in stage:
        if isinstance(token, Placeholder):
            if token.name not in placeholders:
                raise UnreadableRule(f"no values for %{token.name}%")
            choices.append([tokenize(str(value)) for value in placeholders[token.name]])
        else:
            choices.append([(token,)])
    return [tuple(itertools.chain(*combination)) for combination in itertools.product(*choices)]


def _dash_variants(stage: Stage) -> list[Stage]:
    """Every way of writing each dash-like character as any of the five."""
    if isinstance(stage, bytes):
        raise UnreadableRule("windash needs a string")
    options = [
        list(DASHES) if isinstance(token, str) and token in DASHES else [token] for token in stage
    ]
    return [tuple(combination) for combination in itertools.product(*options)]


def _transform(
    modifier: str, stage: Stage, placeholders: Mapping[str, Sequence[str]]
) -> list[Stage]:
    """The value(s) one transformation modifier makes of a value."""
    if modifier == "expand":
        return _substitute(stage, placeholders)
    if modifier == "windash":
        return _dash_variants(stage)
    if modifier in ("wide", "utf16le"):
        return [_literal_text(stage).encode("utf-16-le")]
    if modifier == "utf16be":
        return [_literal_text(stage).encode("utf-16-be")]
    if modifier == "utf16":
        return [b"\xff\xfe" + _literal_text(stage).encode("utf-16-le")]
    if modifier == "base64":
        return [tuple(base64.b64encode(_as_bytes(stage)).decode())]
    if modifier == "base64offset":
        return [tuple(fragment) for fragment in _base64_offsets(_as_bytes(stage))]
    if isinstance(stage, bytes):
        raise UnreadableRule(f"{modifier} after an encoding without base64")
    if modifier == "contains":
        return [(Wildcard.MULTI, *stage, Wildcard.MULTI)]
    if modifier == "startswith":
        return [(*stage, Wildcard.MULTI)]
    if modifier == "endswith":
        return [(Wildcard.MULTI, *stage)]
    raise UnreadableRule(f"unknown modifier {modifier}")


def _string_tests(
    raw: str, modifiers: list[str], placeholders: Mapping[str, Sequence[str]]
) -> list[ElementTest]:
    stages: list[Stage] = [tokenize(raw, expand="expand" in modifiers)]
    for modifier in modifiers:
        if modifier not in ("cased", "all", "neq"):
            stages = [out for stage in stages for out in _transform(modifier, stage, placeholders)]
    cased = "cased" in modifiers
    tests: list[ElementTest] = []
    for stage in stages:
        if isinstance(stage, bytes):
            raise UnreadableRule("an encoded value needs base64")
        tests.append(_text_test(stage, cased))
    return tests


def _text_test(tokens: tuple[Token, ...], cased: bool) -> ElementTest:
    def test(element: Any, record: Record) -> bool:
        text = text_of(element)
        return text is not None and wildcard_match(tokens, text, cased)

    return test


def _regex_test(raw: str, modifiers: list[str]) -> ElementTest:
    flags = 0
    for letter, flag in (("i", re.IGNORECASE), ("m", re.MULTILINE), ("s", re.DOTALL)):
        if letter in modifiers:
            flags |= flag
    pattern = re.compile(raw, flags)

    def test(element: Any, record: Record) -> bool:
        return isinstance(element, str) and pattern.search(element) is not None

    return test


def _compare_test(bound: float, modifiers: list[str]) -> ElementTest:
    operator = next((m for m in modifiers if m in COMPARISONS), None)
    compare = COMPARISONS[operator] if operator else (lambda a, b: a == b)
    part = next((m for m in modifiers if m in TIME_PARTS), None)

    def test(element: Any, record: Record) -> bool:
        value = time_part(element, part) if part else number_of(element)
        return value is not None and compare(value, bound)

    return test


def _cidr_test(raw: str) -> ElementTest:
    address_text, _, length_text = raw.partition("/")
    network = ipaddress.ip_address(address_text)
    length = int(length_text)
    width = network.max_prefixlen
    mask = ((1 << length) - 1) << (width - length)

    def test(element: Any, record: Record) -> bool:
        try:
            address = ipaddress.ip_address(element) if isinstance(element, str) else None
        except ValueError:
            return False
        return (
            address is not None
            and address.version == network.version
            and int(address) & mask == int(network) & mask
        )

    return test


def _fieldref_test(other: str, modifiers: list[str]) -> ElementTest:
    after = modifiers[modifiers.index("fieldref") + 1 :]

    def relation(own: str, theirs: str) -> bool:
        tokens: tuple[Token, ...] = tuple(theirs)
        if "contains" in after:
            tokens = (Wildcard.MULTI, *tokens, Wildcard.MULTI)
        elif "startswith" in after:
            tokens = (*tokens, Wildcard.MULTI)
        elif "endswith" in after:
            tokens = (Wildcard.MULTI, *tokens)
        return wildcard_match(tokens, own, cased=False)

    def test(element: Any, record: Record) -> bool:
        own = text_of(element)
        value = lookup(record, other)
        if own is None or value is _MISSING:
            return False
        return any(
            (theirs := text_of(e)) is not None and relation(own, theirs) for e in elements(value)
        )

    return test


def _value_tests(
    value: Any, modifiers: list[str], placeholders: Mapping[str, Sequence[str]]
) -> list[ElementTest] | None:
    """The alternatives one rule value stands for; None is the `null` value."""
    if value is None:
        return None
    if "fieldref" in modifiers:
        return [_fieldref_test(str(value), modifiers)]
    if "re" in modifiers:
        return [_regex_test(str(value), modifiers)]
    if "cidr" in modifiers:
        return [_cidr_test(str(value))]
    if any(m in COMPARISONS or m in TIME_PARTS for m in modifiers):
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise UnreadableRule("a comparison needs a number")
        return [_compare_test(value, modifiers)]
    raw = value if isinstance(value, str) else json.dumps(value)
    return _string_tests(raw, modifiers, placeholders)


# --- detections ------------------------------------------------------------------------


def _is_null(value: Any) -> bool:
    return value is _MISSING or value is None or value == []


def _field_item(
    name: str,
    modifiers: list[str],
    values: list[Any],
    record: Record,
    placeholders: Mapping[str, Sequence[str]],
) -> bool:
    value = lookup(record, name)
    if "exists" in modifiers:
        (expected,) = values
        return (value is not _MISSING) is expected

    def one(rule_value: Any) -> bool:
        tests = _value_tests(rule_value, modifiers, placeholders)
        if tests is None:
            return _is_null(value)
        if value is _MISSING:
            return False
        return any(test(element, record) for element in elements(value) for test in tests)

    linked = all if "all" in modifiers else any
    result = linked(one(v) for v in values)
    return not result if "neq" in modifiers else result


def leaves(value: Any) -> Iterator[Any]:
    """Every non-null scalar of a record, at any depth; keys are not searched."""
    if isinstance(value, Mapping):
        for child in value.values():
            yield from leaves(child)
    elif isinstance(value, list):
        for child in value:
            yield from leaves(child)
    elif value is not None:
        yield value


def _keyword_item(
    modifiers: list[str],
    values: list[Any],
    record: Record,
    placeholders: Mapping[str, Sequence[str]],
) -> bool:
    """Keywords are searched in the whole event: as substrings of any value."""
    found = list(leaves(record))

    def one(keyword: Any) -> bool:
        tests = _value_tests(keyword, [*modifiers, "contains"], placeholders)
        assert tests is not None
        return any(test(leaf, record) for leaf in found for test in tests)

    linked = all if "all" in modifiers else any
    return linked(one(v) for v in values)


def search(definition: Any, record: Record, placeholders: Mapping[str, Sequence[str]]) -> bool:
    """One search identifier: a map is the AND of its items, a list of maps their OR, a
    list of plain values a keyword search."""
    if isinstance(definition, Mapping):
        results = []
        for key, value in definition.items():
            name, *modifiers = key.split("|")
            values = value if isinstance(value, list) else [value]
            if name:
                results.append(_field_item(name, modifiers, values, record, placeholders))
            else:
                results.append(_keyword_item(modifiers, values, record, placeholders))
        return all(results)
    if isinstance(definition, list) and all(isinstance(d, Mapping) for d in definition):
        return any(search(d, record, placeholders) for d in definition)
    values = definition if isinstance(definition, list) else [definition]
    return _keyword_item([], values, record, placeholders)


# --- conditions ------------------------------------------------------------------------


class _Condition:
    """Recursive descent over `or` < `and` < `not` < `x of` < parentheses."""

    def __init__(self, text: str, identifiers: Mapping[str, Callable[[], bool]]) -> None:
        self.tokens: list[str] = re.findall(r"\(|\)|[^\s()]+", text)
        self.position = 0
        self.identifiers = identifiers

    def parse(self) -> bool:
        result = self.disjunction()
        if self.position != len(self.tokens):
            raise UnreadableRule(f"trailing tokens in condition: {self.tokens[self.position :]}")
        return result

    def peek(self) -> str | None:
        return self.tokens[self.position] if self.position < len(self.tokens) else None

    def take(self) -> str:
        token = self.tokens[self.position]
        self.position += 1
        return token

    def disjunction(self) -> bool:
        results = [self.conjunction()]
        while self.peek() == "or":
            self.take()
            results.append(self.conjunction())
        return any(results)

    def conjunction(self) -> bool:
        results = [self.negation()]
        while self.peek() == "and":
            self.take()
            results.append(self.negation())
        return all(results)

    def negation(self) -> bool:
        if self.peek() == "not":
            self.take()
            return not self.negation()
        return self.atom()

    def atom(self) -> bool:
        token = self.take()
        if token == "(":
            result = self.disjunction()
            if self.take() != ")":
                raise UnreadableRule("unbalanced parentheses")
            return result
        if token in ("1", "all") and self.peek() == "of":
            self.take()
            chosen = self.selected(self.take())
            return (any if token == "1" else all)(self.identifiers[n]() for n in chosen)
        return self.identifiers[token]()

    def selected(self, pattern: str) -> list[str]:
        """Identifiers `them` or the pattern names; `_`-prefixed ones are left out."""
        regex = ".*" if pattern == "them" else ".*".join(map(re.escape, pattern.split("*")))
        return [n for n in self.identifiers if not n.startswith("_") and re.fullmatch(regex, n)]


def rule_matches(
    detection: Mapping[str, Any],
    record: Record,
    placeholders: Mapping[str, Sequence[str]] | None = None,
) -> bool:
    """Whether the rule whose detection section this is matches the record."""
    values = placeholders or {}
    identifiers = {
        name: (lambda d=definition: search(d, record, values))
        for name, definition in detection.items()
        if name != "condition"
    }
    condition = detection["condition"]
    conditions = condition if isinstance(condition, list) else [condition]
    return any(_Condition(text, identifiers).parse() for text in conditions)
