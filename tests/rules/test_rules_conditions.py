"""Condition forms: boolean operators, precedence, selectors, condition lists."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from detector.rules import CompiledRule, RuleCompileError

Compile = Callable[..., CompiledRule]

IDENTIFIERS = """
sel_a: {a: 1}
sel_b: {b: 1}
filter_c: {c: 1}
_hidden: {h: 1}
"""


def outcomes(detection: Compile, condition: str) -> dict[str, bool]:
    """The rule's result on records with each subset of a, b, c, h set to 1."""
    rule = detection(f"{IDENTIFIERS}\ncondition: {condition}")
    results = {}
    for mask in range(16):
        keys = [k for i, k in enumerate("abch") if mask >> i & 1]
        record = {k: 1 for k in keys}
        results["".join(keys) or "-"] = rule.matches(record)
    return results


def truth(expected: Callable[[bool, bool, bool, bool], bool]) -> dict[str, bool]:
    """Expected outcomes from a boolean function of a, b, c, h."""
    results = {}
    for mask in range(16):
        values = [bool(mask >> i & 1) for i in range(4)]
        key = "".join(k for k, v in zip("abch", values, strict=True) if v) or "-"
        results[key] = expected(*values)
    return results


@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        ("sel_a", lambda a, b, c, h: a),
        ("sel_a and sel_b", lambda a, b, c, h: a and b),
        ("sel_a or sel_b", lambda a, b, c, h: a or b),
        ("not sel_a", lambda a, b, c, h: not a),
        ("sel_a and not filter_c", lambda a, b, c, h: a and not c),
        # and binds tighter than or
        ("sel_a or sel_b and filter_c", lambda a, b, c, h: a or (b and c)),
        ("(sel_a or sel_b) and filter_c", lambda a, b, c, h: (a or b) and c),
        # not binds tighter than and
        ("not sel_a and sel_b", lambda a, b, c, h: (not a) and b),
        ("not (sel_a and sel_b)", lambda a, b, c, h: not (a and b)),
        ("1 of sel_*", lambda a, b, c, h: a or b),
        ("any of sel_*", lambda a, b, c, h: a or b),
        ("all of sel_*", lambda a, b, c, h: a and b),
        ("1 of sel_* and not 1 of filter_*", lambda a, b, c, h: (a or b) and not c),
        # `them` leaves out _hidden; a pattern starting with `_` selects such identifiers
        ("1 of them", lambda a, b, c, h: a or b or c),
        ("all of them", lambda a, b, c, h: a and b and c),
        ("all of *_b or filter_c", lambda a, b, c, h: b or c),
        ("1 of _*", lambda a, b, c, h: h),
        ("sel_a and _hidden", lambda a, b, c, h: a and h),
    ],
)
def test_condition(
    detection: Compile, condition: str, expected: Callable[[bool, bool, bool, bool], bool]
) -> None:
    assert outcomes(detection, condition) == truth(expected)


def test_condition_list_is_or(detection: Compile) -> None:
    rule = detection(f"{IDENTIFIERS}\ncondition: [sel_a and sel_b, filter_c]")
    assert rule.matches({"a": 1, "b": 1})
    assert rule.matches({"c": 1})
    assert not rule.matches({"a": 1})


def test_undefined_identifier_is_a_compile_error(detection: Compile) -> None:
    with pytest.raises(RuleCompileError, match="undefined search identifier 'sel_x'"):
        detection(f"{IDENTIFIERS}\ncondition: sel_a and sel_x")


def test_pattern_selecting_nothing_is_a_compile_error(detection: Compile) -> None:
    with pytest.raises(RuleCompileError, match="'nothing_\\*' selects no search identifier"):
        detection(f"{IDENTIFIERS}\ncondition: sel_a and not 1 of nothing_*")


def test_syntax_error_is_a_compile_error(detection: Compile) -> None:
    with pytest.raises(RuleCompileError, match="condition 'sel_a and'"):
        detection(f"{IDENTIFIERS}\ncondition: sel_a and")


def test_explain_reports_each_identifier(detection: Compile) -> None:
    rule = detection(f"{IDENTIFIERS}\ncondition: 1 of sel_* and not filter_c")
    explanation = rule.explain({"a": 1, "c": 1})
    assert explanation.matched is False
    assert explanation.condition is False
    assert explanation.identifiers == {
        "sel_a": True,
        "sel_b": False,
        "filter_c": True,
        "_hidden": False,
    }
    assert explanation.filters == {}
