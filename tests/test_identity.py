"""The identity map: one canonical user.identity per person and service across sources."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from detector.config import Settings
from detector.correlate import CorrelationEngine, compile_correlations
from detector.deadletter import DeadLetter
from detector.detections import Detection
from detector.events import Event
from detector.identity import (
    IdentityMapError,
    IdentitySettings,
    identity_map_from_data,
    load_identity_map,
)
from detector.identity_map import REMEMBERED, IdentityMap
from detector.normalize import NormalizeStage
from detector.normalize.builtin import build_registry
from detector.pipeline import DetectionStage
from detector.rules import load_rules
from detector.rules.routing import RuleRouter
from detector.sources.files import read_paths
from detector.sources.records import RawRecord

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "sources"
REGISTRY = build_registry(Settings().sources)

#: The accounts of the source fixtures, mapped onto four identities.
FIXTURE_MAP = """
identities:
  alice:
    github_actions: [alice]
    jenkins: [alice]
    kubernetes: ["alice@example.com"]
  octo:
    github: [octo-admin]
    gitlab: [Administrator]
    jenkins: [admin]
    registry: [admin]
  deploy-bot:
    github: ["octo-deployer[bot]"]
    gitlab: deploy-bot
    kubernetes: ["system:serviceaccount:ci:deployer"]
    registry: [ci-deployer, "robot$payments+*"]
    cloudtrail:
      - "repo:acme/payments:*"
      - "arn:aws:sts::111122223333:assumed-role/payments-deploy/*"
  mallory:
    github: [mallory-dev]
    gitlab: [mallory]
    jenkins: [MALLORY]
    kubernetes: ["mallory@example.com"]
    registry: [mallory]
"""

EXAMPLE = {
    "identities": {
        "alice": {
            "github": ["alice-gh"],
            "gitlab": ["alice"],
            "kubernetes": ["alice@example.com"],
            "cloudtrail": ["repo:acme/payments:*"],
        },
        "deploy-bot": {
            "github": ["deploy-bot[bot]"],
            "kubernetes": ["system:serviceaccount:ci:deployer"],
            "cloudtrail": ["repo:acme/deploy-*:ref:refs/heads/main"],
        },
    }
}


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "identities.yml"
    path.write_text(text, encoding="utf-8")
    return path


def normalize_fixtures(identities: IdentityMap | None) -> list[Event]:
    stage = NormalizeStage(REGISTRY, identities=identities)
    results = [
        result
        for raw in stage.join_continuation_lines(read_paths([str(FIXTURES)]))
        for result in stage.process(raw)
    ]
    return [result for result in results if isinstance(result, Event)]


def test_every_fixture_account_resolves_per_source(tmp_path: Path) -> None:
    identities = IdentitySettings(map_file=write(tmp_path, FIXTURE_MAP)).load(REGISTRY.names)
    events = normalize_fixtures(identities)
    resolved = {(e.event_source, e.user_name): e.user_identity for e in events}
    assert resolved == {
        ("cloudtrail", "arn:aws:sts::111122223333:assumed-role/payments-deploy/GitHubActions"): (
            "deploy-bot"
        ),
        ("cloudtrail", "mary"): "mary",
        ("cloudtrail", "project_path:acme/platform/deployer:ref_type:branch:ref:main"): (
            "project_path:acme/platform/deployer:ref_type:branch:ref:main"
        ),
        ("cloudtrail", "repo:acme/payments:environment:production"): "deploy-bot",
        ("cloudtrail", "repo:ccbrown/cloud-snitch:ref:refs/heads/main"): (
            "repo:ccbrown/cloud-snitch:ref:refs/heads/main"
        ),
        ("cloudtrail", "repo:evil-fork/cloud-snitch:pull_request"): (
            "repo:evil-fork/cloud-snitch:pull_request"
        ),
        ("github", "acme-inc-user"): "acme-inc-user",
        ("github", "github-actor"): "github-actor",
        ("github", "mallory-dev"): "mallory",
        ("github", "octo-admin"): "octo",
        ("github", "octo-deployer[bot]"): "deploy-bot",
        ("github", "user_actor"): "user_actor",
        ("github", None): None,
        ("github_actions", "alice"): "alice",
        ("github_actions", "mallory-ext"): "mallory-ext",
        ("gitlab", "Administrator"): "octo",
        ("gitlab", "An unauthenticated user"): "An unauthenticated user",
        ("gitlab", "Andreas"): "Andreas",
        ("gitlab", "John Doe4"): "John Doe4",
        ("gitlab", "Mallory"): "mallory",
        ("gitlab", "Registration token: GR134894"): "Registration token: GR134894",
        ("gitlab", "deploy-bot"): "deploy-bot",
        ("gitlab", "deploy-key-name"): "deploy-key-name",
        ("gitlab", "eve"): "eve",
        ("gitlab", "gitlab+deploy-token-5"): "gitlab+deploy-token-5",
        ("gitlab", "root"): "root",
        ("jenkins", "admin"): "octo",
        ("jenkins", "alice"): "alice",
        ("jenkins", "anonymous"): "anonymous",
        ("jenkins", "bob"): "bob",
        ("jenkins", "mallory"): "mallory",
        ("jenkins", None): None,
        ("kubernetes", "alice@example.com"): "alice",
        ("kubernetes", "mallory@example.com"): "mallory",
        ("kubernetes", "minikube-user"): "minikube-user",
        ("kubernetes", "system:anonymous"): "system:anonymous",
        ("kubernetes", "system:node:worker-1"): "system:node:worker-1",
        ("kubernetes", "system:serviceaccount:ci:deployer"): "deploy-bot",
        ("kubernetes", "system:serviceaccount:kube-system:elastic-agent"): (
            "system:serviceaccount:kube-system:elastic-agent"
        ),
        ("registry", "admin"): "octo",
        ("registry", "ci-deployer"): "deploy-bot",
        ("registry", "mallory"): "mallory",
        ("registry", "robot$payments+deployer"): "deploy-bot",
        ("registry", None): None,
    }
    # the map changes user.identity and nothing else
    without = normalize_fixtures(None)
    assert [e.model_copy(update={"user_identity": None}) for e in events] == [
        e.model_copy(update={"user_identity": None}) for e in without
    ]
    assert events[0].to_dict()["user.identity"] == events[0].user_identity


def test_without_a_map_every_name_is_its_own_identity() -> None:
    events = normalize_fixtures(None)
    assert all(e.user_identity == e.user_name for e in events)
    assert any(e.user_identity is not None for e in events)


@pytest.mark.parametrize(
    ("source", "name", "identity"),
    [
        ("github", "alice-gh", "alice"),
        ("gitlab", "alice", "alice"),
        ("kubernetes", "alice@example.com", "alice"),
        ("github", "deploy-bot[bot]", "deploy-bot"),
        ("kubernetes", "system:serviceaccount:ci:deployer", "deploy-bot"),
        # a name belongs to the source it is listed under
        ("kubernetes", "alice-gh", "alice-gh"),
        ("jenkins", "deploy-bot[bot]", "deploy-bot[bot]"),
    ],
)
def test_names_map_per_source(source: str, name: str, identity: str) -> None:
    assert identity_map_from_data(EXAMPLE).resolve(source, name) == identity


@pytest.mark.parametrize(
    ("name", "identity"),
    [
        ("repo:acme/payments:ref:refs/heads/main", "alice"),
        ("repo:acme/payments:environment:production", "alice"),
        ("repo:acme/payments:", "alice"),  # `*` matches nothing too
        (
            "repo:acme/payments-fork:ref:refs/heads/main",
            "repo:acme/payments-fork:ref:refs/heads/main",
        ),
        ("repo:acme/payments", "repo:acme/payments"),
        ("repo:acme/deploy-api:ref:refs/heads/main", "deploy-bot"),
        ("repo:acme/deploy-api:ref:refs/heads/dev", "repo:acme/deploy-api:ref:refs/heads/dev"),
        ("x:repo:acme/payments:ref", "x:repo:acme/payments:ref"),  # the whole name must match
    ],
)
def test_wildcards_match_any_run_of_characters(name: str, identity: str) -> None:
    assert identity_map_from_data(EXAMPLE).resolve("cloudtrail", name) == identity


def test_only_the_asterisk_is_special() -> None:
    identities = identity_map_from_data(
        {"identities": {"ci": {"github": ["build?[bot].*"], "registry": ["robot$ci+*"]}}}
    )
    assert identities.resolve("github", "build?[bot].x") == "ci"
    assert identities.resolve("github", "buildx[bot].x") == "buildx[bot].x"
    assert identities.resolve("github", "build?b.x") == "build?b.x"
    assert identities.resolve("github", "build?[bot]x") == "build?[bot]x"
    assert identities.resolve("registry", "robot$ci+pusher") == "ci"
    assert identities.resolve("registry", "robot$ci+multi\nline") == "ci"


_SOURCES = st.sampled_from(["github", "kubernetes", "cloudtrail", "registry"])
_NAMES = st.sampled_from(
    ["alice-gh", "ALICE-GH", "alice", "octocat", "repo:acme/payments:ref:x", "Deploy-Bot"]
) | st.text(max_size=12)


@given(st.lists(st.tuples(_SOURCES, _NAMES), max_size=30))
def test_a_remembered_identity_is_the_one_a_new_map_resolves(
    queries: list[tuple[str, str]],
) -> None:
    shared = identity_map_from_data(EXAMPLE)
    for source, name in queries + queries:
        assert shared.resolve(source, name) == identity_map_from_data(EXAMPLE).resolve(source, name)


def test_names_resolve_the_same_after_a_source_met_more_than_it_remembers() -> None:
    identities = identity_map_from_data(EXAMPLE)
    names = [f"user-{n}" for n in range(REMEMBERED + 10)]
    assert [identities.resolve("github", name) for name in names] == names
    assert identities.resolve("github", "ALICE-GH") == "alice"
    assert identities.resolve("github", "user-0") == "user-0"


@pytest.mark.parametrize(
    ("source", "name"),
    [
        ("github", "ALICE-GH"),
        ("github", "Alice-Gh"),
        ("kubernetes", "Alice@Example.COM"),
        ("cloudtrail", "REPO:ACME/Payments:ref:refs/heads/main"),
    ],
)
def test_names_and_patterns_match_case_insensitively(source: str, name: str) -> None:
    assert identity_map_from_data(EXAMPLE).resolve(source, name) == "alice"


def test_a_canonical_name_keeps_its_spelling_and_claims_every_case() -> None:
    identities = identity_map_from_data({"identities": {"Alice": {"github": ["AG"]}}})
    assert identities.resolve("github", "ag") == "Alice"
    assert identities.resolve("github", "alice") == "github:alice"


def test_unmapped_names_are_their_own_identity() -> None:
    identities = identity_map_from_data(EXAMPLE)
    assert identities.resolve("github", "octocat") == "octocat"
    assert identities.resolve("kubernetes", "system:anonymous") == "system:anonymous"
    assert identities.resolve("bitbucket", "Octo Cat") == "Octo Cat"
    assert identities.resolve("github", None) is None
    assert identities.resolve("github", "") is None


def test_an_unmapped_name_spelled_like_a_canonical_name_is_qualified_by_its_source() -> None:
    identities = identity_map_from_data(EXAMPLE)
    # alice's GitHub account is alice-gh: a GitHub account named alice is someone else
    assert identities.resolve("github", "alice") == "github:alice"
    assert identities.resolve("jenkins", "ALICE") == "jenkins:ALICE"
    assert identities.resolve("kubernetes", "Deploy-Bot") == "kubernetes:Deploy-Bot"
    # listed: the same spelling is alice
    assert identities.resolve("gitlab", "Alice") == "alice"


def test_without_a_map_file_every_name_is_its_own_identity() -> None:
    identities = IdentitySettings().load(REGISTRY.names)
    assert identities.resolve("github", "alice") == "alice"
    assert identities.resolve("kubernetes", "system:serviceaccount:ci:deployer") == (
        "system:serviceaccount:ci:deployer"
    )


def test_apply_sets_user_identity_and_keeps_the_event_otherwise() -> None:
    identities = identity_map_from_data(EXAMPLE)
    event = Event.model_validate(
        {
            "@timestamp": "2025-03-11T10:00:00Z",
            "event.id": "e1",
            "event.source": "github",
            "user.name": "alice-gh",
            "raw": {"actor": "alice-gh"},
        }
    )
    before = event.to_dict()
    assert identities.apply(event) is event
    assert event.user_identity == "alice"
    assert event.to_dict() == {**before, "user.identity": "alice"}
    assert "user_identity" in event.model_fields_set
    anonymous = event.model_copy(update={"user_name": None, "user_identity": None})
    assert identities.apply(anonymous).user_identity is None


@pytest.mark.parametrize(
    ("identities", "message"),
    [
        (
            {"a": {"github": ["shared"]}, "b": {"github": ["SHARED"]}},
            "github name 'shared' is claimed by both a and b",
        ),
        (
            {"a": {"github": ["build-bot"]}, "b": {"github": ["build-*"]}},
            "github name 'build-bot' of a is also matched by the pattern 'build-*' of b",
        ),
        (
            {"a": {"cloudtrail": ["repo:acme/*"]}, "b": {"cloudtrail": ["*:ref:refs/heads/main"]}},
            "cloudtrail patterns 'repo:acme/*' of a and '*:ref:refs/heads/main' of b both "
            "match some names",
        ),
        (
            {"a": {"github": ["*"]}, "b": {"github": ["B*"]}},
            "github patterns '*' of a and 'b*' of b both match some names",
        ),
        ({"alice": {}, "Alice": {}}, "alice and Alice differ only in case"),
        (
            {"a": {"kubernets": ["a"]}},
            "identities: a: unknown source 'kubernets' (known: "
            "cloudtrail, github, github_actions, gitlab, jenkins, kubernetes, registry)",
        ),
        ({"a": {"github": [7]}}, "identities.a.github.0: Input should be a valid string"),
        ({"a": {"github": [""]}}, "identities.a.github.0: String should have at least 1 character"),
        ({"a": {"github": {"x": 1}}}, "identities.a.github: Input should be a valid list"),
        ({"a": None}, "identities.a: Input should be a valid dictionary"),
        (
            {"a:b": {}},
            "identities.a:b.[key]: a canonical name is text without ':' or '*' and without "
            "surrounding spaces",
        ),
        (
            {" a": {}},
            "identities. a.[key]: a canonical name is text without ':' or '*' and without "
            "surrounding spaces",
        ),
        ({"a": {"GitHub": ["x"]}}, "identities.a.GitHub.[key]: String should match pattern"),
    ],
)
def test_invalid_maps_are_rejected_naming_identity_and_source(
    identities: dict[str, Any], message: str
) -> None:
    with pytest.raises(IdentityMapError) as error:
        identity_map_from_data({"identities": identities}, REGISTRY.names, where="ids.yml")
    assert str(error.value).startswith(f"ids.yml: {message}")


def test_the_same_name_twice_for_one_identity_and_disjoint_patterns_are_valid() -> None:
    identities = identity_map_from_data(
        {
            "identities": {
                "a": {"cloudtrail": ["repo:acme/*", "repo:acme/api:*", "repo:ACME/api:x"]},
                "b": {"cloudtrail": ["repo:other/*"], "github": ["repo:acme/api:x"]},
            }
        }
    )
    assert identities.resolve("cloudtrail", "repo:acme/api:x") == "a"
    assert identities.resolve("cloudtrail", "repo:other/api:x") == "b"


def test_declared_sources_are_valid_keys_when_named() -> None:
    data = {"identities": {"a": {"bitbucket": ["a.b"]}}}
    with pytest.raises(IdentityMapError, match="unknown source 'bitbucket'"):
        identity_map_from_data(data, REGISTRY.names)
    identities = identity_map_from_data(data, [*REGISTRY.names, "bitbucket"])
    assert identities.resolve("bitbucket", "A.B") == "a"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("identities: [a", "while parsing a flow sequence"),
        ("- alice", "the top level must be a mapping with `identities`"),
        ("", "the top level must be a mapping with `identities`"),
        ("identity: {}", "identities: Field required; identity: Extra inputs are not permitted"),
    ],
)
def test_unreadable_files_name_the_file(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(IdentityMapError) as error:
        IdentitySettings(map_file=path).load()
    assert str(error.value).startswith(f"{path}: ")
    assert message in str(error.value)


def test_a_missing_file_names_the_file(tmp_path: Path) -> None:
    with pytest.raises(IdentityMapError, match=r"missing\.yml: .*No such file"):
        load_identity_map(tmp_path / "missing.yml")


def _common_name(first: str, second: str) -> bool:
    """Brute force: some name matches both. A shortest one has no more characters than
    the two patterns' letters together (one for patterns of wildcards only)."""
    letters = "ab"
    longest = len(first.replace("*", "")) + len(second.replace("*", ""))
    names = (
        "".join(chars)
        for size in range(1, longest + 2)
        for chars in itertools.product(letters, repeat=size)
    )
    first_map = identity_map_from_data({"identities": {"p": {"github": [first]}}})
    second_map = identity_map_from_data({"identities": {"q": {"github": [second]}}})
    return any(
        first_map.resolve("github", name) == "p" and second_map.resolve("github", name) == "q"
        for name in names
    )


patterns = st.text(alphabet="ab*", min_size=1, max_size=5)


@given(patterns, patterns)
def test_two_identities_may_claim_two_patterns_exactly_when_no_name_matches_both(
    first: str, second: str
) -> None:
    data = {"identities": {"p": {"github": [first]}, "q": {"github": [second]}}}
    if _common_name(first, second):
        with pytest.raises(
            IdentityMapError, match=r"claimed by both|also matched by|both match some names"
        ):
            identity_map_from_data(data)
    else:
        identity_map_from_data(data)


# Correlation: one person's GitHub account and Kubernetes user in one group.

CORRELATION_MAP = {
    "identities": {
        "alice": {"github": ["alice-gh"], "kubernetes": ["alice@example.com"]},
    }
}

RULES = """
title: Branch protection removed
id: 6a0f7c1e-9b1d-4e52-8c3a-000000000001
name: branch_protection_removed
logsource: {product: cicd, service: github}
detection: {selection: {event.action: protected_branch.destroy}, condition: selection}
---
title: Deployment patched
id: 6a0f7c1e-9b1d-4e52-8c3a-000000000002
name: deployment_patched
logsource: {product: cicd, service: kubernetes}
detection: {selection: {event.action: patch deployments}, condition: selection}
---
title: Protection removed, then a deployment patched by the same person
id: 6a0f7c1e-9b1d-4e52-8c3a-000000000003
correlation:
  type: temporal
  rules: [branch_protection_removed, deployment_patched]
  group-by: [GROUP]
  timespan: 30m
level: high
---
title: Two risky changes by one person
id: 6a0f7c1e-9b1d-4e52-8c3a-000000000004
correlation:
  type: event_count
  rules: [branch_protection_removed, deployment_patched]
  group-by: [GROUP]
  timespan: 30m
  condition: {gte: 2}
level: medium
"""

CORRELATIONS = {
    "Protection removed, then a deployment patched by the same person",
    "Two risky changes by one person",
}


def _github(actor: str) -> dict[str, Any]:
    line = (FIXTURES / "github" / "audit.jsonl").read_bytes().splitlines()[6]
    record: dict[str, Any] = orjson.loads(line)
    assert record["action"] == "protected_branch.destroy"
    # 2025-05-02T08:15:00Z
    record.update({"@timestamp": 1746173700000, "created_at": 1746173700000, "actor": actor})
    return record


def _kubernetes(username: str) -> dict[str, Any]:
    line = (FIXTURES / "kubernetes" / "audit.jsonl").read_bytes().splitlines()[9]
    record: dict[str, Any] = orjson.loads(line)
    assert record["verb"] == "patch"
    record["user"] = {"username": username, "groups": ["devs", "system:authenticated"]}
    return record  # stageTimestamp 2025-05-02T08:21:05.731602Z


def _correlate(tmp_path: Path, group_by: str, github_actor: str, k8s_user: str) -> list[Detection]:
    stage = NormalizeStage(REGISTRY, identities=identity_map_from_data(CORRELATION_MAP))
    events = []
    for number, record in enumerate([_github(github_actor), _kubernetes(k8s_user)]):
        [result] = stage.process(RawRecord(orjson.dumps(record), f"scenario:{number}"))
        assert not isinstance(result, DeadLetter), result.reason
        events.append(result)
    path = tmp_path / "rules.yml"
    path.write_text(RULES.replace("GROUP", group_by), encoding="utf-8")
    loaded = load_rules([path])
    correlations = compile_correlations(loaded)
    assert not loaded.errors and not correlations.errors
    detect = DetectionStage(
        RuleRouter(loaded.rules, REGISTRY.routes()), CorrelationEngine(correlations)
    )
    found = [d for event in events for d in detect.process(event) if isinstance(d, Detection)]
    return sorted(
        (d for d in found + detect.flush() if d.rule.title in CORRELATIONS),
        key=lambda d: d.rule.title,
    )


def test_a_correlation_grouped_by_identity_joins_github_and_kubernetes_accounts(
    tmp_path: Path,
) -> None:
    temporal, count = _correlate(tmp_path, "user.identity", "alice-gh", "alice@example.com")
    for detection in (temporal, count):
        assert detection.group == {"user.identity": "alice"}
        assert [(e.source, e.action, e.actor) for e in detection.evidence] == [
            ("github", "protected_branch.destroy", "alice-gh"),
            ("kubernetes", "patch deployments", "alice@example.com"),
        ]
    assert temporal.rule.title == "Protection removed, then a deployment patched by the same person"
    assert temporal.message.endswith("within 30m, for user.identity=alice")
    assert count.rule.title == "Two risky changes by one person"
    # grouped by the systems' own names, the two accounts stay apart
    assert _correlate(tmp_path, "user.name", "alice-gh", "alice@example.com") == []


def test_unmapped_accounts_still_group_by_their_name(tmp_path: Path) -> None:
    temporal, count = _correlate(tmp_path, "user.identity", "mallory", "mallory")
    assert temporal.group == count.group == {"user.identity": "mallory"}


def test_an_unlisted_account_named_like_a_person_does_not_join_them(tmp_path: Path) -> None:
    # alice's GitHub account is alice-gh; the GitHub account "alice" is not hers
    assert _correlate(tmp_path, "user.identity", "alice", "alice@example.com") == []
