"""Differential test of the rule engine, modifier by modifier.

Every (rule, record) pair of `differential_cases` is evaluated three ways: by the engine
(`compile_rule(...).matches`), by pySigma's SQLite backend over a table of the records,
and by `differential_reference`, a reading of the specification that shares no code with
the engine or pySigma. SQLite answers where the backend converts the rule and the table
holds the record the way Sigma means it (`sqlite_blind_spot`); the reference answers
everywhere. The test lists every disagreement of the engine with either, and fails on one
that the allow-list (`DOCUMENTED`, `DEFECTS`) does not explain. `pytest -s` prints a
summary per modifier.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from sigma.exceptions import SigmaFeatureNotSupportedByBackendError
from sigma.rule import SigmaRule

from detector.rules import compile_rule
from tests.rules.differential_cases import RuleCase, all_cases
from tests.rules.differential_reference import JSON_NUMBER, number_of, rule_matches, text_of
from tests.rules.differential_sqlite import backend, matching_rows, row_query, sqlite_table

SEED = 20250802
TIME_PARTS = {"minute", "hour", "day", "week", "month", "year"}


@dataclass(frozen=True)
class Disagreement:
    """The engine and an oracle ("sqlite" or "reference") differ on a rule and a record."""

    family: str
    detection: Mapping[str, Any]
    placeholders: Mapping[str, list[str]]
    event: Mapping[str, Any]
    engine: bool
    oracle: str
    expected: bool

    def __str__(self) -> str:
        rule = json.dumps(self.detection, ensure_ascii=False)
        event = json.dumps(self.event, ensure_ascii=False)
        outcome = f"engine {self.engine}, {self.oracle} {self.expected}"
        return f"[{self.family}] {rule} on {event}: {outcome}"


# --- reading detections and records -------------------------------------------------------


def _items(detection: Mapping[str, Any]) -> list[tuple[str, Any]]:
    """The `field|modifiers: value` items of all search identifiers."""
    items: list[tuple[str, Any]] = []
    for name, definition in detection.items():
        if name == "condition":
            continue
        for mapping in definition if isinstance(definition, list) else [definition]:
            if isinstance(mapping, Mapping):
                items.extend(mapping.items())
    return items


def _modifiers(detection: Mapping[str, Any]) -> set[str]:
    return {m for key, _ in _items(detection) for m in key.split("|")[1:]}


def _elements(value: Any) -> list[Any]:
    """The scalars of a value: itself, or those of its list elements and object values."""
    if isinstance(value, Mapping):
        return [e for v in value.values() for e in _elements(v)]
    if isinstance(value, list):
        return [e for v in value for e in _elements(v)]
    return [value]


def _fields(case: RuleCase) -> list[str]:
    """Table columns: the fields the rule reads (fieldref targets too) and the records hold."""
    names = {key.split("|")[0] for key, _ in _items(case.detection)} - {""}
    names |= {str(v) for key, v in _items(case.detection) if "fieldref" in key.split("|")}
    names |= {name for event in case.events for name in event}
    return sorted(names)


def _rule_values(d: Disagreement) -> list[Any]:
    """Every value of the rule, and of the placeholders it may expand."""
    values = [e for name, v in d.detection.items() if name != "condition" for e in _elements(v)]
    return values + [e for v in d.placeholders.values() for e in v]


def _rule_text(d: Disagreement) -> str:
    return json.dumps(_rule_values(d), ensure_ascii=False)


def _event_text(d: Disagreement) -> str:
    return "".join(str(e) for e in _elements(d.event))


# --- where SQLite does not answer for Sigma -----------------------------------------------


def sqlite_blind_spot(case: RuleCase, event: Mapping[str, Any]) -> str | None:
    """Why SQLite's answer does not count for this pair, from SQLite's documentation."""
    modifiers = _modifiers(case.detection)
    if any(isinstance(v, list | dict) for v in event.values()):
        return "a table column holds one scalar, not a list or an object"
    if modifiers & {"re", "i", "m", "s"}:
        # SQLite has no REGEXP of its own: the operator calls an application-defined
        # function (sqlite.org/lang_expr.html#regexp).
        return "SQLite has no regular expressions"
    if "cidr" in modifiers:
        # The backend writes a network as LIKE prefixes of its text; IPv6 addresses have
        # many texts and prefix lengths that are not multiples of a hex digit.
        return "SQLite has no IP addresses"
    if modifiers & TIME_PARTS:
        # strftime() reads its own time-value formats only, and %W is not the ISO week
        # (sqlite.org/lang_datefunc.html).
        return "SQLite's strftime is not Sigma's time modifiers"
    if "exists" in modifiers and any(v is None for v in event.values()):
        # A null value and an absent field are both NULL in a table (sqlite.org/nulls.html).
        return "a null field is not an absent field"
    text = "".join(str(e) for e in _elements(dict(event)) + _elements(dict(case.detection)))
    cased = all("cased" in key.split("|") for key, _ in _items(case.detection))
    if not cased and any(not c.isascii() and c.lower() + c.upper() != c + c for c in text):
        # NOCASE and LIKE fold ASCII letters only (sqlite.org/datatype3.html#collation,
        # sqlite.org/lang_expr.html#like).
        return "SQLite folds the case of ASCII letters only"
    return None


# --- the allow-list -----------------------------------------------------------------------


@dataclass(frozen=True)
class Known:
    """A known reason the engine and an oracle differ, and the pairs it covers."""

    name: str
    applies: Callable[[Disagreement], bool]


_SIGNED_NUMBER = re.compile(r"\s*[+-]?[0-9]+(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?\s*")
_SQL_ONLY_NUMBER = re.compile(r"\s*[+-]?(?:\.[0-9]+|[0-9]+\.)(?:[eE][+-]?[0-9]+)?\s*")


def _number_spelling(d: Disagreement) -> bool:
    """The record holds a number the reference reads differently from the engine: text with
    a sign, leading zeros or spaces, or the rule's number in another type or spelling."""
    numbers = [v for v in _rule_values(d) if isinstance(v, int | float) and not isinstance(v, bool)]
    for element in _elements(d.event) if numbers else []:
        if (
            isinstance(element, str)
            and _SIGNED_NUMBER.fullmatch(element)
            and not JSON_NUMBER.fullmatch(element)
        ):
            return True
        number = number_of(element)
        if any(number == n and text_of(element) != json.dumps(n) for n in numbers):
            return True
    return False


def _time_conversion(d: Disagreement) -> bool:
    """The record holds an epoch, a date alone or a time with an offset other than UTC."""
    for element in _elements(d.event):
        if isinstance(element, int | float) or (isinstance(element, str) and element.isdigit()):
            return True
        if isinstance(element, str) and re.fullmatch(r"\d{4}-\d\d-\d\d", element):
            return True
        if isinstance(element, str) and re.search(r"[+-]\d\d:\d\d$", element):
            return not element.endswith("+00:00")
    return False


def _cidr_reading(d: Disagreement) -> bool:
    return any(
        isinstance(e, str) and (e.startswith("::ffff:") or e != e.strip())
        for e in _elements(d.event)
    )


# Differences with a documented cause. Each must explain at least one pair, so an entry
# that no longer applies is noticed.
DOCUMENTED: list[Known] = [
    # The SQLite backend compares a boolean with 'true' and also with 1 (false: 'false'
    # and 0), for tables that store booleans as integers (sqlite.py, bool_expression).
    Known(
        "SQLite: a boolean also equals 1 or 0",
        lambda d: (
            d.oracle == "sqlite"
            and any(isinstance(v, bool) for v in _rule_values(d))
            and {str(e) for e in _elements(d.event)} <= {"0", "1"}
        ),
    ),
    # NUMERIC affinity turns any SQL numeric literal into a number, '.5' and '5.' too
    # (sqlite.org/datatype3.html, "Type Affinity"); JSON and the engine have no such numbers.
    Known(
        "SQLite: '.5' and '5.' are numbers",
        lambda d: (
            d.oracle == "sqlite"
            and any(
                isinstance(e, str) and _SQL_ONLY_NUMBER.fullmatch(e) for e in _elements(d.event)
            )
        ),
    ),
    # The engine compares a rule's number as a number, with numbers and with numeric text
    # (README: "the string "200" matches the number 200 and the reverse"), also spelled
    # 5.0, 05, +5 or with spaces. The specification treats rule values as strings, and so
    # do the reference and a TEXT column.
    Known("engine: numbers compare as numbers, in any spelling", _number_spelling),
    # Case-insensitive matching lower-cases whole strings, and U+0130 'İ' lower-cases to
    # two characters, 'i' and a combining dot (Unicode SpecialCasing.txt): the engine
    # equates them, a one-character-to-one-character folding does not.
    Known(
        "engine: 'İ' lower-cases to 'i̇'",
        lambda d: "İ" in _rule_text(d) and "\u0307" in _event_text(d),
    ),
    # pySigma's windash (the engine's and the backend's) replaces only a '-' or '/' that
    # starts a word, and not the other three dashes when the rule has them
    # (SigmaWindowsDashModifier); the appendix's text makes all five interchangeable
    # everywhere, as the reference does.
    Known(
        "pySigma: windash only replaces '-' and '/' that start a word",
        lambda d: d.family == "windash" and d.oracle == "reference" and d.expected and not d.engine,
    ),
    # The engine reads the time of the time modifiers in UTC (an offset is applied, a time
    # without one is UTC), also from epoch seconds or milliseconds, and a date alone as
    # midnight (tests/rules/test_rules_modifiers.py). The appendix: "It is not designed to
    # handle timezone or format conversions"; the reference takes the parts as written.
    Known(
        "engine: time modifiers convert to UTC and read epochs",
        lambda d: d.family in TIME_PARTS and _time_conversion(d),
    ),
    # The engine reads an IPv4-mapped IPv6 address as its IPv4 address (tested in
    # test_rules_modifiers.py) and ignores spaces around an address.
    Known(
        "engine: cidr reads ::ffff:a.b.c.d as IPv4 and strips spaces",
        lambda d: d.family == "cidr" and _cidr_reading(d),
    ),
]

# Engine defects this test found, each with its smallest example. An entry goes when the
# engine is fixed (it then explains nothing, and the test says so).
DEFECTS: list[Known] = [
    # pySigma's utf16 prepends U+FEFF encoded as UTF-8 (EF BB BF) instead of the byte order
    # mark FF FE: `f|utf16|base64: cmd` matches '77u/YwBtAGQA', not '//5jAG0AZAA='.
    Known("utf16 writes a UTF-8 byte order mark", lambda d: d.family == "utf16"),
    # `?` is one character, but the engine matches it against the lower-cased text, where
    # 'İ' is two: `f: '?'` does not match {"f": "İ"} (and `f: '??'` does).
    Known("`?` and 'İ'", lambda d: "?" in _rule_text(d) and "İ" in _event_text(d)),
    # str.lower is not case folding: 'ς' (final sigma) and 'σ' are both 'Σ' upper-cased,
    # but `f: 'ς'` does not match {"f": "Σ"} (while `f|re|i: 'ς'` does).
    Known(
        "final sigma",
        lambda d: "ς" in _rule_text(d) + _event_text(d) and d.expected and not d.engine,
    ),
    # `\\` is an escaped backslash, so `f|expand: 'C:\\%hosts%'` is 'C:\' and the
    # placeholder; pySigma's expand reads '\%' after it as an escaped percent sign and the
    # value as the literal text 'C:%hosts%'.
    Known("expand after an escaped backslash", lambda d: "\\\\\\\\%" in _rule_text(d)),
]

ALLOWED = DOCUMENTED + DEFECTS


# --- the three evaluations ----------------------------------------------------------------


def sqlite_answers(case: RuleCase, rule: SigmaRule) -> tuple[dict[int, bool], str | None]:
    """SQLite's answer per event index it speaks for; or why the backend cannot convert."""
    try:
        query = row_query(rule, backend(case.placeholders))
    except SigmaFeatureNotSupportedByBackendError:
        return {}, "the backend converts no keyword searches"
    usable = [i for i, event in enumerate(case.events) if sqlite_blind_spot(case, event) is None]
    database = sqlite_table([case.events[i] for i in usable], _fields(case), case.numeric)
    text_rows: set[int] = set()
    if case.numeric and _modifiers(case.detection) & {"lt", "lte", "gt", "gte"}:
        # SQLite orders every TEXT value after every number (sqlite.org/datatype3.html,
        # "Sort Order"): `f < 5` is false and `f > 5` true for any text it kept as text.
        text_rows = matching_rows(database, "SELECT rid FROM logs WHERE typeof(f) = 'text'")
    rows = matching_rows(database, query)
    return {i: row in rows for row, i in enumerate(usable) if row not in text_rows}, None


@dataclass
class Tally:
    rules: int = 0
    pairs: int = 0
    matches: int = 0  # pairs the reference matches
    sqlite: int = 0
    sqlite_agree: int = 0
    reference_agree: int = 0
    known: int = 0
    new: int = 0


def evaluate(cases: list[RuleCase]) -> tuple[list[Disagreement], dict[str, Tally], Counter[str]]:
    """All disagreements, a tally per family, and the rules the backend could not convert."""
    disagreements = []
    tallies: dict[str, Tally] = {}
    not_converted: Counter[str] = Counter()
    for case in cases:
        tally = tallies.setdefault(case.family, Tally())
        tally.rules += 1
        document = {"title": "differential", "logsource": {"product": "test"}}
        rule = SigmaRule.from_dict({**document, "detection": case.detection})
        compiled = compile_rule(rule, case.placeholders)
        by_sqlite, reason = sqlite_answers(case, rule)
        if reason:
            not_converted[reason] += 1
        for index, event in enumerate(case.events):
            engine = compiled.matches(event)
            answers = {"reference": rule_matches(case.detection, event, case.placeholders)}
            if index in by_sqlite:
                answers["sqlite"] = by_sqlite[index]
                tally.sqlite += 1
                tally.sqlite_agree += engine == by_sqlite[index]
            tally.pairs += 1
            tally.matches += answers["reference"]
            tally.reference_agree += engine == answers["reference"]
            disagreements += [
                Disagreement(case.family, case.detection, case.placeholders, event, engine, o, a)
                for o, a in answers.items()
                if a != engine
            ]
    return disagreements, tallies, not_converted


def _print_summary(
    tallies: dict[str, Tally], not_converted: Counter[str], used: Counter[str]
) -> None:
    columns = ("rules", "pairs", "matches", "sqlite", "agree", "ref agree", "known", "new")
    print("\n" + f"{'modifier':<18}" + "".join(f"{c:>10}" for c in columns))
    for family, t in tallies.items():
        counts = (t.rules, t.pairs, t.matches, t.sqlite, t.sqlite_agree, t.reference_agree)
        print(f"{family:<18}" + "".join(f"{n:>10}" for n in (*counts, t.known, t.new)))
    for reason, count in not_converted.items():
        print(f"not converted by the SQLite backend ({count} rules): {reason}")
    for name, count in used.items():
        print(f"known difference ({count} pairs): {name}")


def test_engine_agrees_with_sqlite_and_the_reference() -> None:
    disagreements, tallies, not_converted = evaluate(all_cases(SEED))
    used: Counter[str] = Counter()
    unexplained = []
    for disagreement in disagreements:
        known = next((k for k in ALLOWED if k.applies(disagreement)), None)
        if known is None:
            unexplained.append(str(disagreement))
            tallies[disagreement.family].new += 1
        else:
            used[known.name] += 1
            tallies[disagreement.family].known += 1
    _print_summary(tallies, not_converted, used)

    assert unexplained == []
    assert sorted(used) == sorted(k.name for k in ALLOWED), "an allow-list entry explains nothing"
    # every family has records that match and records that do not
    assert all(0 < t.matches < t.pairs for t in tallies.values())
    # SQLite speaks for every family but the documented blind spots and keyword searches
    without_sqlite = {family for family, t in tallies.items() if t.sqlite == 0}
    regex = {"re", "re|i", "re|m", "re|s", "re|i|m|s"}
    assert without_sqlite == regex | TIME_PARTS | {"cidr", "keywords"}
