"""SigmaHQ's GitHub, Kubernetes and Bitbucket rules, each proven on vendor-shaped events.

Every rule under `rules/application/{github,kubernetes,bitbucket}` of the SigmaHQ set in
`../shared` has a `<rule file stem>.tests.yml` here: raw events that must make it fire
and near misses that must not, run through the same normalize stage and routing as a
replay. A new SigmaHQ rule without such a file fails the coverage test, so it is noticed.

Rules that cannot fire on a real audit event are listed in `KNOWN_FAILURES` with the
reason; their positive events are kept and must keep failing for that reason, so a fix
(in the engine or upstream) shows up as a test to update.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from detector.config import SourcesSettings
from detector.events import Event
from detector.normalize import SourceRegistry
from detector.normalize.base import content_id
from detector.normalize.builtin import build_registry
from detector.normalize.declared import DeclaredSource
from detector.rules import load_rules
from detector.rules.compiled import CompiledRule
from detector.rules.routing import RuleRouter
from detector.rules.ruletests import read_tests, run_tests

pytestmark = pytest.mark.shared

SIGMAHQ = Path(__file__).resolve().parents[2].parent / "shared" / "sigmahq"
PRODUCTS = ("github", "kubernetes", "bitbucket")
HERE = Path(__file__).parent
TEST_FILES = sorted(HERE.rglob("*.tests.yml"))

#: Bitbucket Data Center's audit log file: `timestamp` is `{"epochSecond": ..., "nano": ...}`.
BITBUCKET = DeclaredSource(
    name="bitbucket", product="bitbucket", service="audit", time_field="timestamp"
)

#: Rule id -> why its positive events do not fire: the rule cannot match a real audit event.
KNOWN_FAILURES: dict[str, str] = {
    "402b955c-8fe0-4a8c-b635-622b4ac5f902": (
        "rule: reads a top-level `hostPath`; audit events carry volumes under "
        "requestObject.spec.volumes[].hostPath (and only at level Request)"
    ),
    "c5cd1b20-36bb-488d-8c05-486be3d0cb97": (
        "rule: reads a top-level `capabilities`; audit events carry it under "
        "requestObject.spec.containers[].securityContext.capabilities"
    ),
    "84b777bd-c946-4d17-aa2e-c39f5a454325": (
        "rule: reads a top-level `apiGroup`; audit events carry objectRef.apiGroup"
    ),
    "ad9012a6-e518-4432-9890-f3b82b8fc71f": (
        "rule: reads a top-level `apiGroup`; audit events carry objectRef.apiGroup"
    ),
    "597a7e84-187d-458b-9e4f-2f5a0e676711": (
        "rule: requires responseStatus.code 'ALLOW'; responseStatus.code is the integer "
        "HTTP status (the decision is annotations['authorization.k8s.io/decision'])"
    ),
}

#: (rule under test, rule that fires on one of its near misses) -> why that is right.
CROSS_FIRE_ALLOWED: dict[tuple[str, str], str] = {
    (
        "195e1b9d-bfc2-4ffa-ab4e-35aef69815f8",
        "34d81081-03c9-4a7f-91c9-5e46af625cde",
    ): "'Unauthorized full data export triggered' contains the full-export action: "
    "it proves exact matching and is the unauthorized-export rule's positive",
    (
        "70ed1d26-0050-4b38-a599-92c53d57d45a",
        "d3f90469-fb05-42ce-b67d-0fded91bbef3",
    ): "'User login failed(SSH)' extends 'User login failed': it proves exact matching "
    "and is the SSH rule's positive",
    (
        "d3f90469-fb05-42ce-b67d-0fded91bbef3",
        "70ed1d26-0050-4b38-a599-92c53d57d45a",
    ): "the web login failure is the SSH rule's closest miss and the login-failure rule's positive",
    (
        "ff91e3f0-ad15-459f-9a85-1556390c138d",
        "e16cf0f0-ee88-4901-bd0b-4c8d13d9ee05",
    ): "a global secret scanning rule deletion is outside the project/repository rule "
    "and is the global rule's positive",
}


@dataclass(frozen=True)
class Suite:
    """The loaded rules of the three products and the registry that reads their events."""

    rules: list[CompiledRule]
    registry: SourceRegistry

    def rule(self, rule_id: str) -> CompiledRule:
        found = [r for r in self.rules if r.id == rule_id]
        assert found, f"no loaded rule has the id {rule_id}"
        return found[0]


@pytest.fixture(scope="module")
def suite() -> Suite:
    if not SIGMAHQ.is_dir():
        pytest.skip(f"the SigmaHQ rule set is not at {SIGMAHQ} (../shared absent)")
    result = load_rules([SIGMAHQ / "rules" / "application" / p for p in PRODUCTS])
    assert [str(e) for e in result.errors] == []
    registry = build_registry(SourcesSettings(), [BITBUCKET])
    return Suite(result.rules, registry)


def _spec(file: Path) -> dict[str, Any]:
    spec = yaml.safe_load(file.read_text(encoding="utf-8"))
    assert isinstance(spec, dict), file
    return spec


def _events(file: Path, suite: Suite, expected: bool) -> Iterator[Event]:
    """The normalized events of the `match` (True) or `no_match` records of a test file."""
    [test] = read_tests([file], suite.rules, suite.registry)
    for case in test.cases:
        if case.expected is expected:
            assert not case.error, case.error
            yield from case.events


def test_every_rule_has_a_test_with_a_match_and_a_near_miss(suite: Suite) -> None:
    tested: dict[str, Path] = {}
    for file in TEST_FILES:
        spec = _spec(file)
        rule = suite.rule(str(spec["rule"]))
        assert rule.logsource.product == file.parent.name, file
        assert rule.source is not None and f"{rule.source.stem}.tests.yml" == file.name
        assert len(spec.get("match") or []) >= 1, file
        assert len(spec.get("no_match") or []) >= 1, file
        assert str(spec["rule"]) not in tested, file
        tested[str(spec["rule"])] = file

    untested = sorted(f"{r.source}" for r in suite.rules if r.id not in tested)
    assert untested == []
    assert set(KNOWN_FAILURES) <= set(tested)


@pytest.mark.parametrize("file", TEST_FILES, ids=lambda f: f"{f.parent.name}/{f.stem}")
def test_rule_fires_on_its_events_and_not_on_its_near_misses(suite: Suite, file: Path) -> None:
    spec = _spec(file)
    rule_id = str(spec["rule"])
    results = list(run_tests([file], suite.rules, suite.registry))

    assert [r.reason for r in results if r.fired is None] == []
    assert len(results) == len(spec["match"]) + len(spec["no_match"])
    assert all(r.passed for r in results if not r.expected)
    if rule_id not in KNOWN_FAILURES:
        assert [r.index for r in results if not r.passed] == []
        return

    # A known failure: every positive stays silent, for the reason recorded.
    assert [r.index for r in results if r.expected and r.passed] == [], (
        f"{rule_id} fires now: remove it from KNOWN_FAILURES"
    )
    rule = suite.rule(rule_id)
    direct = [rule.matches(event.raw) for event in _events(file, suite, True)]
    assert direct == [False] * len(direct)


def test_no_rule_fires_on_another_rules_near_miss(suite: Suite) -> None:
    """Checks every rule of the event's product on the raw record, past routing too."""
    router = RuleRouter(suite.rules, suite.registry.routes())
    products = {name: route.product for name, route in suite.registry.routes().items()}
    fired: set[tuple[str, str]] = set()
    for file in TEST_FILES:
        spec = _spec(file)
        for event in _events(file, suite, False):
            same_product = [
                r
                for r in suite.rules
                if r.logsource.product == products[event.event_source]
                and isinstance(event.raw, dict)
                and r.matches(event.raw)
            ]
            for rule in [*router.match(event), *same_product]:
                assert rule.id is not None
                fired.add((str(spec["rule"]), rule.id))

    assert not any(tested == firing for tested, firing in fired)
    assert fired == set(CROSS_FIRE_ALLOWED)


def test_bitbucket_events_carry_the_audit_file_time_and_a_content_id(suite: Suite) -> None:
    file = HERE / "bitbucket" / "bitbucket_audit_user_login_failure_detected.tests.yml"
    event = next(_events(file, suite, True))

    assert event.event_source == "bitbucket"
    # {"epochSecond": 1638035612, "nano": 654000000}, a Java Instant, read to the microsecond.
    assert event.to_dict()["@timestamp"] == "2021-11-27T17:53:32.654000Z"
    assert event.event_id == content_id(event.raw)
