"""Correlation rule tests (sequences of raw records), and the shipped correlation pack."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import orjson
import pytest

from detector.config import SourcesSettings
from detector.correlate import (
    CorrelationEngine,
    CorrelationRule,
    CorrelationSet,
    compile_correlations,
)
from detector.events import Event
from detector.identity import identity_map_from_data
from detector.normalize import NormalizeStage, SourceRegistry
from detector.normalize.builtin import build_registry
from detector.rules import CompiledRule, load_rules, ruletests
from detector.rules.routing import RuleRouter
from detector.sources.records import RawRecord

ROOT = Path(__file__).resolve().parents[2]
PACK = ROOT / "rules"
CORRELATIONS = PACK / "correlations"
CHAIN_ID = "7d3f0a52-8a51-4c3e-9a0e-000000000003"

RULES = {
    "github/protection_removed.yml": """
        title: Protection removed
        id: 7d3f0a52-8a51-4c3e-9a0e-000000000001
        name: protection_removed
        logsource: {product: github, service: audit}
        detection: {selection: {action: protected_branch.destroy}, condition: selection}
        level: high
    """,
    "kubernetes/deployment_patched.yml": """
        title: Deployment patched
        id: 7d3f0a52-8a51-4c3e-9a0e-000000000002
        name: deployment_patched
        logsource: {product: kubernetes, service: audit}
        detection:
          selection: {verb: patch, objectRef.resource: deployments}
          condition: selection
        level: low
    """,
    "correlations/unprotected_then_patched.yml": f"""
        title: Protection removed, then a deployment patched by the same person
        id: {CHAIN_ID}
        name: unprotected_then_patched
        correlation:
          type: temporal_ordered
          rules: [protection_removed, deployment_patched]
          aliases:
            person: {{protection_removed: actor, deployment_patched: user.username}}
          group-by: [person]
          timespan: 30m
          generate: true
        level: critical
    """,
}


def github(minute: int, actor: str, action: str = "protected_branch.destroy") -> dict[str, Any]:
    stamp = 1795856400000 + minute * 60_000  # 2026-11-28T09:00:00Z
    return {
        "@timestamp": stamp,
        "_document_id": f"doc-{actor}-{minute}",
        "action": action,
        "actor": actor,
        "repo": "octo-org/payments",
        "name": "main",
        "created_at": stamp,
    }


def kubernetes(minute: int, username: str, verb: str = "patch") -> dict[str, Any]:
    stamp = f"2026-11-28T09:{minute:02d}:00.000000Z"
    return {
        "kind": "Event",
        "apiVersion": "audit.k8s.io/v1",
        "level": "Metadata",
        "auditID": f"a-{username}-{minute}",
        "stage": "ResponseComplete",
        "requestURI": "/apis/apps/v1/namespaces/prod/deployments/api",
        "verb": verb,
        "user": {"username": username, "groups": ["system:authenticated"]},
        "sourceIPs": ["10.8.0.14"],
        "objectRef": {"resource": "deployments", "namespace": "prod", "name": "api"},
        "responseStatus": {"metadata": {}, "code": 200},
        "requestReceivedTimestamp": stamp,
        "stageTimestamp": stamp,
    }


def spec_text(spec: dict[str, Any]) -> str:
    return orjson.dumps(spec).decode()  # JSON is YAML


def write_pack(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text), encoding="utf-8")
    return root


@pytest.fixture
def pack(tmp_path: Path) -> Path:
    in_order = [github(0, "mallory"), kubernetes(10, "mallory")]
    return write_pack(
        tmp_path / "pack",
        {
            **RULES,
            "correlations/unprotected_then_patched.tests.yml": spec_text(
                {
                    "match": [in_order, [kubernetes(9, "mallory", "get"), *in_order]],
                    "no_match": [
                        [kubernetes(0, "mallory"), github(10, "mallory")],
                        [github(0, "mallory"), kubernetes(10, "alice")],
                        [github(0, "mallory"), kubernetes(31, "mallory")],
                    ],
                }
            ),
            "github/protection_removed.tests.yml": spec_text(
                {"match": [github(0, "x")], "no_match": [github(0, "x", "protected_branch.create")]}
            ),
            "kubernetes/deployment_patched.tests.yml": spec_text(
                {"match": [kubernetes(0, "x")], "no_match": [kubernetes(0, "x", "get")]}
            ),
        },
    )


@pytest.fixture(scope="module")
def registry() -> SourceRegistry:
    return build_registry(SourcesSettings())


def run(pack: Path, registry: SourceRegistry) -> list[ruletests.CaseResult]:
    loaded = load_rules([pack])
    assert loaded.errors == []
    return list(ruletests.run_tests(ruletests.test_files([pack]), loaded.rules, registry))


def outcomes(results: list[ruletests.CaseResult]) -> list[tuple[str, str, int, bool, bool | None]]:
    return [(r.test_file.name, r.rule, r.index, r.expected, r.fired) for r in results]


def test_sequences_run_through_routing_and_a_fresh_engine_each(
    pack: Path, registry: SourceRegistry
) -> None:
    results = run(pack, registry)

    chain = "unprotected_then_patched.tests.yml"
    assert outcomes(results) == [
        (chain, CHAIN_ID, 0, True, True),
        (chain, CHAIN_ID, 1, True, True),
        (chain, CHAIN_ID, 2, False, False),  # the same events out of order
        (chain, CHAIN_ID, 3, False, False),  # another person patched
        (chain, CHAIN_ID, 4, False, False),  # 31 minutes apart
        ("protection_removed.tests.yml", "7d3f0a52-8a51-4c3e-9a0e-000000000001", 0, True, True),
        ("protection_removed.tests.yml", "7d3f0a52-8a51-4c3e-9a0e-000000000001", 1, False, False),
        ("deployment_patched.tests.yml", "7d3f0a52-8a51-4c3e-9a0e-000000000002", 0, True, True),
        ("deployment_patched.tests.yml", "7d3f0a52-8a51-4c3e-9a0e-000000000002", 1, False, False),
    ]
    assert all(r.passed and r.reason == "" for r in results)


def test_a_sequence_that_fires_where_it_must_not_fails(pack: Path, registry: SourceRegistry):
    in_order = [github(0, "mallory"), kubernetes(10, "mallory")]
    (pack / "correlations" / "unprotected_then_patched.tests.yml").write_text(
        spec_text({"match": [in_order], "no_match": [in_order]})
    )

    results = [r for r in run(pack, registry) if r.rule == CHAIN_ID]

    assert [(r.index, r.expected, r.fired, r.passed) for r in results] == [
        (0, True, True, True),
        (1, False, True, False),
    ]


def test_single_event_and_correlation_tests_are_read_apart(pack: Path, registry: SourceRegistry):
    loaded = load_rules([pack])
    files = ruletests.test_files([pack])

    singles = ruletests.read_tests(files, loaded.rules, registry)
    [test] = ruletests.read_correlation_tests(files, loaded.rules, registry)

    assert [single.name for single in singles] == [
        "7d3f0a52-8a51-4c3e-9a0e-000000000001",
        "7d3f0a52-8a51-4c3e-9a0e-000000000002",
    ]
    assert isinstance(test.rule, CorrelationRule)
    assert (test.name, test.rule.title, test.error) == (
        CHAIN_ID,
        "Protection removed, then a deployment patched by the same person",
        "",
    )
    assert [rule.key for rule in test.correlations.rules] == [CHAIN_ID]
    # each case holds the events of its records in the order listed
    assert [[e.event_action for e in case.events] for case in test.cases[:3]] == [
        ["protected_branch.destroy", "patch deployments"],
        ["get deployments", "protected_branch.destroy", "patch deployments"],
        ["patch deployments", "protected_branch.destroy"],
    ]


def test_broken_sequences_and_tests_say_why(pack: Path, registry: SourceRegistry) -> None:
    broken = {"@timestamp": "yesterday", "_document_id": "d", "action": "repo.create", "actor": "x"}
    (pack / "correlations" / "unprotected_then_patched.tests.yml").write_text(
        spec_text(
            {
                "match": [github(0, "mallory"), [github(0, "mallory"), broken]],
                "no_match": [[]],
            }
        )
    )

    results = [r for r in run(pack, registry) if r.rule == CHAIN_ID]

    assert [(r.index, r.fired, r.passed) for r in results] == [
        (0, None, False),
        (1, None, False),
        (2, None, False),
    ]
    assert results[0].reason == "a correlation test case is a list of raw records"
    assert results[1].reason.startswith("record 1: github: ")
    assert results[2].reason == "a correlation test case is a list of raw records"


def test_a_correlation_test_needs_a_match_and_a_no_match(pack: Path, registry: SourceRegistry):
    in_order = [github(0, "mallory"), kubernetes(10, "mallory")]
    (pack / "correlations" / "unprotected_then_patched.tests.yml").write_text(
        spec_text({"match": [in_order]})
    )

    [result] = [r for r in run(pack, registry) if r.rule == CHAIN_ID]

    assert (result.fired, result.passed) == (None, False)
    assert result.reason == "a correlation test needs a `match` and a `no_match` sequence"


def test_a_correlation_that_does_not_compile_fails_with_the_reason(
    pack: Path, registry: SourceRegistry
) -> None:
    path = pack / "correlations" / "unprotected_then_patched.yml"
    path.write_text(path.read_text().replace("deployment_patched]", "deployment_deleted]"))

    [result] = [r for r in run(pack, registry) if r.rule == CHAIN_ID]

    assert (result.index, result.fired, result.passed) == (0, None, False)
    assert result.reason == (
        "references 'deployment_deleted', which is no loaded rule's id or name"
    )


def test_a_correlation_file_that_does_not_load_fails_with_the_reason(
    pack: Path, registry: SourceRegistry
) -> None:
    path = pack / "correlations" / "unprotected_then_patched.yml"
    path.write_text(path.read_text().replace("timespan: 30m", "timespan: soon"))
    loaded = load_rules([pack])
    files = ruletests.test_files([pack])

    [result] = [r for r in ruletests.run_tests(files, loaded.rules, registry) if r.rule == CHAIN_ID]

    assert (result.index, result.fired, result.passed) == (0, None, False)
    assert result.reason == "sigma: Timespan 'soon' is invalid."


def test_rules_of_other_directories_must_be_loaded(pack: Path, registry: SourceRegistry):
    loaded = load_rules([pack / "correlations"])  # the referenced rules are not loaded
    files = ruletests.test_files([pack / "correlations"])

    [result] = ruletests.run_tests(files, loaded.rules, registry)

    assert (result.rule, result.fired) == (CHAIN_ID, None)
    assert result.reason == "references 'protection_removed', which is no loaded rule's id or name"


def test_a_test_file_names_a_correlation_of_its_directory_by_id_or_name(
    pack: Path, registry: SourceRegistry
) -> None:
    silent = """
        title: Two removals
        id: 7d3f0a52-8a51-4c3e-9a0e-000000000004
        name: two_removals
        correlation:
          type: event_count
          rules: [protection_removed]
          group-by: [actor]
          timespan: 1h
          condition: {gte: 2}
        level: medium
    """
    chained = """
        title: Two removals, then a patch
        id: 7d3f0a52-8a51-4c3e-9a0e-000000000005
        correlation:
          type: temporal_ordered
          rules: [two_removals, deployment_patched]
          aliases:
            actor: {two_removals: actor, deployment_patched: user.username}
          group-by: [actor]
          timespan: 1h
          generate: false
    """
    twice = [github(0, "mallory"), github(1, "mallory")]
    write_pack(
        pack,
        {
            "correlations/two_removals.yml": silent,
            "correlations/chained.yml": chained,
            # named by the correlation's name, not by the file beside it
            "correlations/more.tests.yml": spec_text(
                {"rule": "two_removals", "match": [twice], "no_match": [twice[:1]]}
            ),
            "correlations/chained.tests.yml": spec_text(
                {"match": [[*twice, kubernetes(5, "mallory")]], "no_match": [twice]}
            ),
        },
    )

    results = [r for r in run(pack, registry) if r.test_file.parent.name == "correlations"]

    # two_removals is silenced by the chain's `generate: false`: its decisions still count
    assert [(r.test_file.name, r.rule, r.index, r.fired) for r in results] == [
        ("chained.tests.yml", "7d3f0a52-8a51-4c3e-9a0e-000000000005", 0, True),
        ("chained.tests.yml", "7d3f0a52-8a51-4c3e-9a0e-000000000005", 1, False),
        ("more.tests.yml", "7d3f0a52-8a51-4c3e-9a0e-000000000004", 0, True),
        ("more.tests.yml", "7d3f0a52-8a51-4c3e-9a0e-000000000004", 1, False),
        ("unprotected_then_patched.tests.yml", CHAIN_ID, 0, True),
        ("unprotected_then_patched.tests.yml", CHAIN_ID, 1, True),
        ("unprotected_then_patched.tests.yml", CHAIN_ID, 2, False),
        ("unprotected_then_patched.tests.yml", CHAIN_ID, 3, False),
        ("unprotected_then_patched.tests.yml", CHAIN_ID, 4, False),
    ]
    assert all(r.passed for r in results)


def test_the_command_runs_both_kinds_of_tests(pack: Path) -> None:
    command = [sys.executable, "-m", "detector", "rules", "test", str(pack)]
    passing = subprocess.run(command, capture_output=True, check=False, timeout=300)
    assert passing.returncode == 0, passing.stdout.decode()
    assert passing.stdout.decode().splitlines() == ["9 passed, 0 failed"]

    in_order = [github(0, "mallory"), kubernetes(10, "mallory")]
    tests = pack / "correlations" / "unprotected_then_patched.tests.yml"
    tests.write_text(spec_text({"match": [in_order], "no_match": [in_order]}))
    failing = subprocess.run(command, capture_output=True, check=False, timeout=300)
    assert failing.returncode == 1
    assert failing.stdout.decode().splitlines() == [
        f"FAIL {tests} case 1 ({CHAIN_ID}): should stay silent, fired",
        "5 passed, 1 failed",
    ]


# --- the shipped correlations -----------------------------------------------------------


@pytest.fixture(scope="module")
def shipped() -> tuple[list[CompiledRule], CorrelationSet]:
    loaded = load_rules([PACK])
    compiled = compile_correlations(loaded)
    assert (loaded.errors, compiled.errors) == ([], [])
    return loaded.rules, compiled


def in_directory(path: Path | None) -> bool:
    return path is not None and path.resolve().parent == CORRELATIONS


def test_every_shipped_correlation_is_tested_with_both_kinds_and_passes(
    shipped: tuple[list[CompiledRule], CorrelationSet],
    registry: SourceRegistry,
) -> None:
    rules, compiled = shipped
    files = ruletests.test_files([CORRELATIONS])

    results = list(ruletests.run_tests(files, rules, registry))

    assert [(r.test_file.name, r.index, r.reason) for r in results if not r.passed] == []
    kinds = {(r.rule, r.expected) for r in results}
    keys = {c.key for c in compiled.rules if in_directory(c.source)}
    assert {key for key, _ in kinds} >= keys
    assert sorted(k for k in keys if (k, True) not in kinds or (k, False) not in kinds) == []


def test_building_blocks_never_alert_and_the_pack_rules_still_do(
    shipped: tuple[list[CompiledRule], CorrelationSet],
) -> None:
    rules, compiled = shipped
    correlations, silenced = compiled.rules, compiled.silenced

    # the single-event rules of rules/correlations are exactly the silenced rules
    helpers = {r.title for r in rules if in_directory(r.source)}
    assert {t.title for t in silenced if isinstance(t, CompiledRule)} == helpers
    # the silenced correlations are the steps (informational), the others alert
    steps = {c.title for c in correlations if c.ref.level == "informational"}
    assert {t.title for t in silenced if isinstance(t, CorrelationRule)} == steps
    assert len(correlations) - len(steps) >= 20


@pytest.mark.parametrize(
    ("source", "union", "left_out"),
    [
        ("github", "github_high_severity_change", "github_audit_trail_impaired"),
        ("kubernetes", "kubernetes_high_severity_request", "kubernetes_admission_control_disabled"),
    ],
)
def test_high_severity_steps_follow_the_pack(
    shipped: tuple[list[CompiledRule], CorrelationSet],
    source: str,
    union: str,
    left_out: str,
) -> None:
    rules, compiled = shipped
    by_name = {c.name: c for c in compiled.rules}
    high = {
        r.id
        for r in rules
        if r.level in ("high", "critical") and r.source and r.source.parent.name == source
    }
    listed = {slot.reference for slot in by_name[union].slots}
    excluded = {slot.reference for slot in by_name[left_out].slots}

    assert listed == high - excluded
    assert listed.isdisjoint(excluded)


def clone_github(minute: int, repo: str) -> dict[str, Any]:
    stamp = 1795856400000 + minute * 60_000
    return {
        "@timestamp": stamp,
        "_document_id": f"clone-{minute}",
        "action": "git.clone",
        "actor": "mallory-gh",
        "actor_id": 7712034,
        "actor_is_bot": False,
        "org": "octo-org",
        "repo": repo,
        "repository": repo,
        "transport_protocol_name": "http",
        "user_agent": "git/2.47.1",
        "created_at": stamp,
    }


def clone_gitlab(minute: int, project: str) -> dict[str, Any]:
    name = project.rsplit("/", 1)[1]
    return {
        "id": f"5d1c0e8b-2a47-4b8e-9f3d-61a0c7e4b2{minute:02d}",
        "author_id": 17,
        "author_name": "Mallory",
        "entity_id": 204 + minute,
        "entity_path": project,
        "entity_type": "Project",
        "event_type": "repository_git_operation",
        "ip_address": "198.51.100.23",
        "target_id": 204 + minute,
        "target_type": "Project",
        "target_details": name,
        "created_at": f"2026-11-28T09:{minute:02d}:00.000Z",
        "details": {
            "author_name": "Mallory",
            "author_class": "User",
            "custom_message": {"protocol": "http", "action": "git-upload-pack"},
            "ip_address": "198.51.100.23",
            "entity_path": project,
        },
    }


def test_a_clone_burst_follows_one_person_across_systems_by_identity(
    shipped: tuple[list[CompiledRule], CorrelationSet],
    registry: SourceRegistry,
) -> None:
    rules, compiled = shipped
    identities = identity_map_from_data(
        {"identities": {"mallory": {"github": ["mallory-gh"], "gitlab": ["Mallory"]}}}
    )
    stage = NormalizeStage(registry, identities=identities)
    records = [clone_github(m, f"octo-org/repo-{m}") for m in range(5)] + [
        clone_gitlab(m, f"acme/project-{m}") for m in range(5, 10)
    ]
    events = [e for r in records for e in stage.process(RawRecord(orjson.dumps(r), "test"))]
    router = RuleRouter(rules, registry.routes())
    engine = CorrelationEngine(compiled)

    for event in events:
        assert isinstance(event, Event)
        engine.process(event, router.match(event))
    engine.flush()

    burst = next(c for c in compiled.rules if c.name == "repository_clone_burst")
    assert engine.stats.detections[burst.key] == 1
    # without the map the two accounts are two identities with 5 repositories each
    engine = CorrelationEngine(compiled)
    for record in records:
        for event in NormalizeStage(registry).process(RawRecord(orjson.dumps(record), "test")):
            assert isinstance(event, Event)
            engine.process(event, router.match(event))
    engine.flush()
    assert engine.stats.detections[burst.key] == 0
