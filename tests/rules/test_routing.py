"""Logsource routing and the rule index: the index gives exactly what checking every rule gives."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sigma.rule import SigmaRule

from detector.config import SourcesSettings
from detector.events import Event
from detector.normalize.builtin import build_registry
from detector.rules import CompiledRule, compile_rule, load_rules
from detector.rules.routing import RuleRouter

ROOT = Path(__file__).resolve().parents[2]
SIGMAHQ = ROOT.parent / "shared" / "sigmahq" / "rules"
ROUTES = build_registry(SourcesSettings()).routes()
WHEN = datetime(2025, 1, 1, tzinfo=UTC)


def rule(logsource: dict[str, str], detection: dict[str, Any], title: str = "r") -> CompiledRule:
    document = {"title": title, "logsource": logsource, "detection": detection}
    return compile_rule(SigmaRule.from_dict(document))


def event(source: str, raw: dict[str, Any], **fields: Any) -> Event:
    return Event(timestamp=WHEN, event_id="e1", event_source=source, raw=raw, **fields)


def test_a_rule_sees_only_its_own_logsource() -> None:
    github = rule(
        {"product": "github", "service": "audit"},
        {"sel": {"action": "repo.destroy"}, "condition": "sel"},
    )
    router = RuleRouter([github], ROUTES)
    assert router.match(event("github", {"action": "repo.destroy"})) == [github]
    # The same raw fields from another source never reach the rule.
    assert router.match(event("gitlab", {"action": "repo.destroy"})) == []
    assert router.match(event("github_actions", {"action": "repo.destroy"})) == []


def test_product_without_service_covers_every_service_of_the_product() -> None:
    any_github = rule({"product": "github"}, {"sel": {"action": "x"}, "condition": "sel"})
    router = RuleRouter([any_github], ROUTES)
    assert router.match(event("github_actions", {"action": "x"})) == [any_github]


def test_cicd_rules_match_normalized_fields_and_service_names_a_source() -> None:
    everywhere = rule({"product": "cicd"}, {"sel": {"event.action": "push"}, "condition": "sel"})
    only_registry = rule(
        {"product": "cicd", "service": "registry"},
        {"sel": {"user.name": "mallory"}, "condition": "sel"},
    )
    router = RuleRouter([everywhere, only_registry], ROUTES)
    pushed = event("registry", {"action": "push"}, event_action="push", user_name="mallory")
    assert router.match(pushed) == [everywhere, only_registry]
    elsewhere = event("gitlab", {}, event_action="push", user_name="mallory")
    assert router.match(elsewhere) == [everywhere]


def test_rules_with_a_category_or_an_unknown_product_are_unrouted() -> None:
    windows = rule(
        {"category": "process_creation", "product": "windows"},
        {"sel": {"Image": "x"}, "condition": "sel"},
    )
    router = RuleRouter([windows], ROUTES)
    assert router.unrouted == [windows]


@pytest.fixture(scope="module")
def audit_rules() -> list[CompiledRule]:
    if not SIGMAHQ.exists():
        pytest.skip(f"{SIGMAHQ} is absent: the SigmaHQ rule set lives in ../shared")
    loaded = load_rules([SIGMAHQ / "application", SIGMAHQ / "cloud" / "aws"])
    return loaded.rules


def _discriminator_values(rules: list[CompiledRule]) -> list[str]:
    values = set()
    for compiled in rules:
        for detection in compiled.rule.detection.detections.values():
            for item in detection.detection_items:
                for value in getattr(item, "value", []) or []:
                    values.add(str(value))
    return sorted(values)


@pytest.mark.shared
def test_index_equals_checking_every_rule(audit_rules: list[CompiledRule]) -> None:
    indexed = RuleRouter(audit_rules, ROUTES)
    flat = RuleRouter(audit_rules, ROUTES, indexed=False)
    assert indexed.index_fields()["github"] == ("action",)
    assert {"verb", "objectRef.resource"} <= set(indexed.index_fields()["kubernetes"])
    values = _discriminator_values(audit_rules)
    fields = ["action", "verb", "eventName", "eventSource", "objectRef.resource", "auditType"]

    @settings(max_examples=600, deadline=None)
    @given(
        source=st.sampled_from(sorted(ROUTES)),
        assignments=st.dictionaries(
            st.sampled_from(fields),
            st.one_of(
                st.sampled_from(values).map(lambda v: v.upper() if len(v) % 2 else v),
                st.lists(st.sampled_from(values), max_size=3),
                st.integers(),
                st.none(),
            ),
            max_size=4,
        ),
        nested=st.dictionaries(
            st.sampled_from(["resource", "subresource"]), st.sampled_from(values)
        ),
    )
    def check(source: str, assignments: dict[str, Any], nested: dict[str, str]) -> None:
        raw = {**assignments, "objectRef": nested}
        candidate = event(source, raw, event_action=str(assignments.get("action")))
        assert indexed.match(candidate) == flat.match(candidate)

    check()


def test_the_index_narrows_by_the_fields_it_reads_and_keeps_the_rule_order() -> None:
    logsource = {"product": "kubernetes", "service": "audit"}
    pods = [
        rule(logsource, {"s": {"verb": "create", "objectRef.resource": "pods"}, "condition": "s"}),
        rule(logsource, {"s": {"verb": "create", "objectRef.resource": "pods"}, "condition": "s"}),
    ]
    secrets = rule(
        logsource, {"s": {"verb": "create", "objectRef.resource": "secrets"}, "condition": "s"}
    )
    any_create = rule(logsource, {"s": {"verb": "create"}, "condition": "s"})
    by_user = rule(logsource, {"s": {"user.username|startswith": "system:"}, "condition": "s"})
    delete = rule(logsource, {"s": {"verb": "delete"}, "condition": "s"})
    any_secret = rule(logsource, {"s": {"objectRef.resource": "secrets"}, "condition": "s"})
    rules = [by_user, pods[0], secrets, any_create, pods[1], delete, any_secret]
    indexed = RuleRouter(rules, ROUTES)
    flat = RuleRouter(rules, ROUTES, indexed=False)
    index = indexed.raw["kubernetes"]
    assert index.candidates({"verb": "create", "objectRef": {"resource": "Pods"}}) == [
        pods[0],
        any_create,
        pods[1],
    ]
    system = {"username": "system:x"}
    for object_ref, expected in (
        ({"resource": "pods"}, [by_user, pods[0], any_create, pods[1]]),
        ({"resource": "secrets"}, [by_user, secrets, any_create, any_secret]),
        ({}, [by_user, any_create]),
        ({"resource": 7}, [by_user, any_create]),
        (None, [by_user, any_create]),
    ):
        raw = {"verb": "create", "objectRef": object_ref, "user": system}
        assert indexed.match(event("kubernetes", raw)) == expected
        assert flat.match(event("kubernetes", raw)) == expected


def test_timestamp_and_keyword_rules_see_the_formatted_event_time() -> None:
    """`@timestamp` is formatted into the matched record only for the sources whose
    rules can read it; where they can, it reads as written out."""
    by_time = rule(
        {"product": "cicd", "service": "github"},
        {"sel": {"@timestamp|startswith": "2025-01-01T00:00:00.000000Z"}, "condition": "sel"},
    )
    keyword = rule(
        {"product": "cicd", "service": "gitlab"},
        {"keywords": ["2025-01-01T00:00:00"], "condition": "keywords"},
    )
    by_action = rule({"product": "cicd"}, {"sel": {"event.action": "push"}, "condition": "sel"})
    router = RuleRouter([by_time, keyword, by_action], ROUTES)
    pushed = {"event_action": "push"}

    def matched(source: str) -> set[int]:
        return {id(found) for found in router.match(event(source, {}, **pushed))}

    assert matched("github") == {id(by_time), id(by_action)}
    assert matched("gitlab") == {id(keyword), id(by_action)}
    assert matched("registry") == {id(by_action)}
    assert event("registry", {}).to_record(timestamp=False).keys() == {
        "event.id",
        "event.source",
        "raw",
    }


def test_normalized_rules_see_every_field_they_read() -> None:
    """The record a normalized-event rule is matched on holds only the fields the rules of
    its source read: they match exactly as on the whole record (`Event.to_record`),
    whatever the event carries, through paths into `raw`, field references and absent
    fields."""
    cicd = {"product": "cicd"}
    rules = [
        rule(cicd, {"s": {"user.name": "alice", "source.ip|cidr": "10.0.0.0/8"}, "condition": "s"}),
        rule(cicd, {"s": {"raw.actor.login": "alice"}, "condition": "s"}),
        rule(cicd, {"s": {"user.name|fieldref": "user.identity"}, "condition": "s"}),
        rule(
            cicd,
            {"s": {"event.type": "deletion"}, "f": {"user.type": None}, "condition": "s and not f"},
        ),
        rule(
            cicd,
            {"s": {"token.id|exists": False, "event.action|contains": "push"}, "condition": "s"},
        ),
    ]
    keyword = rule({**cicd, "service": "gitlab"}, {"k": ["alice"], "condition": "k"})
    rules.append(keyword)
    router = RuleRouter(rules, ROUTES)
    names = st.sampled_from(["alice", "bob", None])
    values = {
        "user_name": names,
        "user_identity": names,
        "user_type": st.sampled_from(["human", "bot", None]),
        "source_ip": st.sampled_from(["10.1.2.3", "192.0.2.1", None]),
        "event_type": st.sampled_from([["deletion"], ["access", "deletion"], None]),
        "event_action": st.sampled_from(["git.push", "repo.create", None]),
        "token_id": st.sampled_from(["t1", None]),
        "repository": st.sampled_from(["alice/x", None]),
    }

    @settings(max_examples=300, deadline=None)
    @given(
        source=st.sampled_from(sorted(ROUTES)),
        fields=st.fixed_dictionaries({}, optional=values),
        login=names,
    )
    def check(source: str, fields: dict[str, Any], login: str | None) -> None:
        candidate = event(source, {"actor": {"login": login}}, **fields)
        whole = candidate.to_record()
        served = [r for r in rules if r is not keyword or source == "gitlab"]
        assert router.match(candidate) == [r for r in served if r.matches(whole)]

    check()
