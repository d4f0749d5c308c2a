"""Compiling correlations: references, chains, conditions, and the reasons for rejecting."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from detector.correlate import CorrelationSet
from detector.rules import LoadResult

from .conftest import load_text

Compile = Callable[[str], tuple[LoadResult, CorrelationSet]]


def _correlation(body: str, title: str = "Correlation", rule_id: str = "") -> str:
    identity = f"id: {rule_id}\n" if rule_id else ""
    indented = "".join(f"  {line}\n" for line in body.strip().splitlines())
    return f"title: {title}\n{identity}correlation:\n{indented}"


def _reasons(compile_correlations: Compile, text: str) -> list[str]:
    """Why rules were rejected: by pySigma when loading, or when compiling correlations."""
    loaded, correlations = compile_correlations(text)
    return [error.reason for error in [*loaded.errors, *correlations.errors]]


def test_references_by_id_and_by_name(compile_correlations: Compile):
    text = _correlation(
        """
type: temporal
rules: [0b7c5b1e-0000-4000-8000-000000000001, login]
group-by: [user.name]
timespan: 5m
"""
    )
    _, correlations = compile_correlations(text)
    [rule] = correlations.rules
    assert [slot.title for slot in rule.slots] == ["Failed login", "Successful login"]
    assert rule.key == "title:Correlation"
    assert rule.timespan == 300_000_000
    assert str(rule.condition) == "gte 2"


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (
            "type: event_count\nrules: [nope]\ngroup-by: [a]\ntimespan: 5m\ncondition: {gte: 1}",
            "references 'nope', which is no loaded rule's id or name",
        ),
        (
            "type: value_count\nrules: [login]\ntimespan: 5m\ncondition: {gte: 2}",
            "Value count correlation rule without field reference",  # pySigma's check
        ),
        (
            "type: first_seen\nrules: [login]\ntimespan: 5m",
            "first_seen needs the value field in `condition: field:`",
        ),
        (
            "type: value_percentile\nrules: [login]\ntimespan: 5m\ncondition: {field: x, gte: 2}",
            "value_percentile needs `percentile` (0-100) in the condition: the field's "
            "percentile is compared with the operators",
        ),
        (
            "type: value_sum\nrules: [login]\ntimespan: 5m\ncondition: {field: [a, b], gt: 2}",
            "value_sum aggregates one field",
        ),
        (
            "type: event_count\nrules: [login]\ntimespan: 5m\ncondition: {gte: 1, lt: lots}",
            "condition lt: 'lots' is not a number",
        ),
        (
            "type: absence\nrules: [login]\ntimespan: 5m",
            "absence takes two rules: the one that must be followed, then the one that follows",
        ),
        (
            "type: first_seen\nrules: [login]\ntimespan: 5m\ncondition: {field: x, gte: 1}",
            "first_seen takes no condition operator",
        ),
        (
            "type: event_count\nrules: [login]\ntimespan: 5m\ncondition: {gte: 1}\n"
            "suppression: soon",
            "`suppression`: 'soon' is not a timespan such as 30m or 1h",
        ),
        (
            "type: event_count\nrules: [login]\ntimespan: 5m\ncondition: {gte: 1}\nlearn: 1h",
            "`learn` applies to first_seen only",
        ),
        (
            "type: temporal\nrules: [login, failed_login]\ngroup-by: [ip]\ntimespan: 5m\n"
            "aliases: {ip: {login: source.ip, secret_read: source.ip}}",
            "alias 'ip' names 'secret_read', which the correlation does not reference",
        ),
        (
            "type: temporal\nrules: [login, failed_login]\ntimespan: 5m\ncondition: login and "
            "not failed_login",
            "boolean correlation conditions are not supported",
        ),
    ],
)
def test_rejections_give_the_reason(compile_correlations: Compile, body: str, reason: str):
    assert _reasons(compile_correlations, _correlation(body)) == [reason]


def test_an_ambiguous_name_is_rejected(compile_correlations: Compile):
    text = (
        "title: Another login\nname: login\nlogsource: {product: cicd}\n"
        "detection: {selection: {event.action: x}, condition: selection}\n---\n"
        + _correlation("type: event_count\nrules: [login]\ntimespan: 5m\ncondition: {gte: 1}")
    )
    assert _reasons(compile_correlations, text) == ["2 rules are named 'login'"]


def test_chains_compile_referenced_correlations_first(compile_correlations: Compile):
    parent = _correlation(
        "type: temporal\nrules: [child, login]\ngroup-by: [user.name]\ntimespan: 5m",
        title="Parent",
    )
    child = "name: child\n" + _correlation(
        "type: event_count\nrules: [failed_login]\ngroup-by: [user.name]\ntimespan: 5m\n"
        "condition: {gte: 2}",
        title="Child",
    )
    _, correlations = compile_correlations(parent + "---\n" + child)
    assert correlations.errors == []
    assert [rule.title for rule in correlations.rules] == ["Child", "Parent"]
    assert correlations.rules[1].slots[0].target is correlations.rules[0]


def test_a_loop_of_references_is_rejected(compile_correlations: Compile):
    first = "name: first\n" + _correlation(
        "type: event_count\nrules: [second]\ntimespan: 5m\ncondition: {gte: 1}", "First"
    )
    second = "name: second\n" + _correlation(
        "type: event_count\nrules: [first]\ntimespan: 5m\ncondition: {gte: 1}", "Second"
    )
    _, correlations = compile_correlations(first + "---\n" + second)
    assert correlations.rules == []
    assert sorted((e.title, e.reason) for e in correlations.errors) == [
        ("First", "its chain of references leads back to itself"),
        ("Second", "its chain of references leads back to itself"),
    ]
    assert {e.kind for e in correlations.errors} == {"correlation"}


def test_a_parent_of_a_rejected_correlation_is_rejected(compile_correlations: Compile):
    child = "name: child\n" + _correlation(
        "type: event_count\nrules: [missing]\ntimespan: 5m\ncondition: {gte: 1}", "Child"
    )
    parent = _correlation("type: temporal\nrules: [child, login]\ntimespan: 5m", "Parent")
    assert _reasons(compile_correlations, child + "---\n" + parent) == [
        "references 'missing', which is no loaded rule's id or name",
        "references correlation 'child', not loaded",
    ]


def test_two_correlations_with_one_title_and_no_id_are_told_apart(compile_correlations: Compile):
    one = _correlation("type: event_count\nrules: [login]\ntimespan: 5m\ncondition: {gte: 1}")
    assert _reasons(compile_correlations, one + "---\n" + one) == [
        "another correlation is also named 'title:Correlation'; give each an id"
    ]


def test_unknown_types_are_still_rejected_by_the_loader():
    loaded = load_text(
        _correlation("type: first_sean\nrules: [x]\ntimespan: 5m\ncondition: {gte: 1}")
    )
    assert [error.reason for error in loaded.errors] == [
        "'first_sean' is no valid Sigma correlation type"
    ]


@pytest.mark.parametrize(
    ("condition", "on_arrival"),
    [("{gte: 3}", True), ("{gt: 3}", True), ("{lt: 3}", False), ("{gte: 3, lt: 9}", False)],
)
def test_when_a_condition_is_decided(
    compile_correlations: Compile, condition: str, on_arrival: bool
):
    text = _correlation(f"type: event_count\nrules: [login]\ntimespan: 5m\ncondition: {condition}")
    _, correlations = compile_correlations(text)
    assert correlations.rules[0].decided_on_arrival is on_arrival


def test_averages_are_always_decided_at_the_window_end(compile_correlations: Compile):
    text = _correlation(
        "type: value_avg\nrules: [login]\ntimespan: 5m\ncondition: {field: x, gt: 0.5}"
    )
    _, correlations = compile_correlations(text)
    [rule] = correlations.rules
    assert rule.condition.bounds == (("gt", 0.5),)
    assert not rule.decided_on_arrival


def test_the_fingerprint_follows_the_rules(compile_correlations: Compile):
    text = _correlation("type: event_count\nrules: [login]\ntimespan: 5m\ncondition: {gte: 1}")
    fingerprints = {
        compile_correlations(text)[1].fingerprint(),
        compile_correlations(text)[1].fingerprint(),
    }
    assert len(fingerprints) == 1
    assert compile_correlations(text.replace("5m", "6m"))[1].fingerprint() not in fingerprints
