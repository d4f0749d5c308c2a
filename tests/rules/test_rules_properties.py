"""Property tests: wildcard, escape and case semantics against an independent oracle."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from detector.rules import CompiledRule

Compile = Callable[..., CompiledRule]

TEXT = st.text(st.characters(codec="utf-8"), max_size=30)
# A small alphabet makes wildcards, escapes and case collide often.
PATTERN = st.text(st.sampled_from("aAb*?\\."), max_size=12)
VALUE = st.text(st.sampled_from("aAbB*?\\.x"), max_size=12)


def escape(text: str) -> str:
    """Sigma text that stands for `text` literally."""
    return text.replace("\\", "\\\\").replace("*", "\\*").replace("?", "\\?")


def rule_for(compile_dict: Compile, key: str, value: str) -> CompiledRule:
    return compile_dict({"sel": {key: value}, "condition": "sel"})


def oracle(pattern: str, value: str) -> bool:
    """The specification's wildcard and escape rules, read independently of pySigma."""
    regex, i = [], 0
    while i < len(pattern):
        char = pattern[i]
        following = pattern[i + 1] if i + 1 < len(pattern) else None
        if char == "\\" and following in ("*", "?", "\\"):
            regex.append(re.escape(following))
            i += 2
            continue
        regex.append({"*": ".*", "?": "."}.get(char, re.escape(char)))
        i += 1
    return re.fullmatch("".join(regex), value, re.IGNORECASE | re.DOTALL) is not None


@given(PATTERN, VALUE)
def test_matching_agrees_with_the_oracle(detection_dict: Compile, pattern: str, value: str) -> None:
    assert rule_for(detection_dict, "f", pattern).matches({"f": value}) is oracle(pattern, value)


@given(TEXT, st.characters(codec="utf-8"))
def test_escaped_literal_matches_itself_and_nothing_longer_or_shorter(
    detection_dict: Compile, text: str, extra: str
) -> None:
    rule = rule_for(detection_dict, "f", escape(text))
    assert rule.matches({"f": text})
    assert not rule.matches({"f": text + extra})
    assert not rule.matches({"f": extra + text})
    if text:
        assert not rule.matches({"f": text[:-1]})


@given(st.lists(TEXT, min_size=1, max_size=4), st.lists(TEXT, min_size=5, max_size=5))
def test_star_pattern_from_pieces_matches_the_whole(
    detection_dict: Compile, pieces: list[str], fillers: list[str]
) -> None:
    value = fillers[0] + "".join(p + f for p, f in zip(pieces, fillers[1:], strict=False))
    pattern = "*" + "*".join(escape(p) for p in pieces) + "*"
    assert rule_for(detection_dict, "f", pattern).matches({"f": value})
    assert rule_for(detection_dict, "f|contains", escape(pieces[0])).matches({"f": value})


@given(TEXT, TEXT)
def test_startswith_and_endswith(detection_dict: Compile, head: str, tail: str) -> None:
    value = head + tail
    assert rule_for(detection_dict, "f|startswith", escape(head)).matches({"f": value})
    assert rule_for(detection_dict, "f|endswith", escape(tail)).matches({"f": value})


@given(TEXT, st.integers(min_value=0, max_value=29))
def test_question_mark_stands_for_one_character(
    detection_dict: Compile, text: str, position: int
) -> None:
    assume(text)
    position %= len(text)
    pattern = escape(text[:position]) + "?" + escape(text[position + 1 :])
    rule = rule_for(detection_dict, "f", pattern)
    assert rule.matches({"f": text})
    assert not rule.matches({"f": text[:position] + text[position + 1 :]})


@given(TEXT)
def test_case_insensitive_by_default_and_sensitive_with_cased(
    detection_dict: Compile, text: str
) -> None:
    insensitive = rule_for(detection_dict, "f", escape(text))
    cased = rule_for(detection_dict, "f|cased", escape(text))
    assert cased.matches({"f": text})
    for variant in (text.upper(), text.lower(), text.swapcase()):
        # Case-insensitivity is Python's Unicode lower-casing of both sides.
        if variant.lower() == text.lower():
            assert insensitive.matches({"f": variant})
        if variant != text:
            assert not cased.matches({"f": variant})


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | TEXT,
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.sampled_from(["f", "g", "h.i", "h", "i", "@timestamp"]), children)
    ),
    max_leaves=12,
)


@pytest.fixture(scope="module")
def every_kind(detection_dict: Compile) -> CompiledRule:
    """One rule using every kind of value test."""
    return detection_dict(
        {
            "strings": {"f|contains|all": ["a", "b"], "g|re|i": "x.*y", "h.i": ["*a?", "b"]},
            "numbers": {"f|gte": 3, "g": 4, "h.i|lt": 2.5, "@timestamp|hour": 3},
            "network": {"f|cidr": ["10.0.0.0/8", "::1/128"], "g|base64offset|contains": "abc"},
            "presence": {"f|exists": True, "g": None, "h|fieldref|contains": "f"},
            "booleans": {"f": True, "g|windash": "-x", "h|neq": "y"},
            "keywords": ["needle", 5],
            "condition": "1 of them or not keywords",
        }
    )


@given(st.dictionaries(st.sampled_from(["f", "g", "h", "h.i", "@timestamp", "x"]), JSON))
def test_any_json_record_gives_a_bool(every_kind: CompiledRule, record: dict[str, Any]) -> None:
    assert every_kind.matches(record) in (True, False)
    explanation = every_kind.explain(record)
    assert explanation.matched is every_kind.matches(record)


# Regular expressions and networks remember their answer per text; a stream repeats
# values and outgrows what is remembered, and every answer must stay the oracle's.
REPEATING = st.lists(st.sampled_from(["a1", "ab", "10.0.0.7", "192.168.1.1", "::1", "x"]))


@given(REPEATING, st.integers(min_value=0, max_value=1100))
def test_regex_answers_are_right_however_often_a_text_repeats(
    detection_dict: Compile, values: list[str], fresh: int
) -> None:
    rule = detection_dict({"sel": {"f|re": "^[a-z][0-9]"}, "condition": "sel"})
    stream = values + [f"b{n}" for n in range(fresh)] + values  # past the bound, then again
    for value in stream:
        assert rule.matches({"f": value}) is (re.search("^[a-z][0-9]", value) is not None)


@given(REPEATING, st.integers(min_value=0, max_value=1100))
def test_cidr_answers_are_right_however_often_an_address_repeats(
    detection_dict: Compile, values: list[str], fresh: int
) -> None:
    rule = detection_dict({"sel": {"f|cidr": "10.0.0.0/8"}, "condition": "sel"})
    stream = values + [f"10.1.{n // 250}.{n % 250}" for n in range(fresh)] + values
    for value in stream:
        assert rule.matches({"f": value}) is value.startswith("10.")
