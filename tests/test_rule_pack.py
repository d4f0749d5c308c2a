"""The shipped rule pack (rules/): every rule loads, is proven on its own test events, and
stays silent on the near misses of every other rule.

The cross-check routes each `no_match` record of each test file through all the pack's
rules at once, as a replay does. A near miss is the closest benign variant of a rule's
event, so another rule firing on it is either too broad or was handed an event that is not
benign. The firings that remain are the ones no benign near miss can avoid: a near miss
that proves where two rules split one event between them (a success and a failure, a
deployment role and any other role) is by construction the other rule's positive. They are
listed in `CROSS_FIRE_ALLOWED` with the reason. The building blocks of the correlations
(rules that the correlations referencing them silence with `generate: false`) are not
alerts and match benign events by design, so the cross-check leaves them out.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from detector.config import SourcesSettings
from detector.correlate import compile_correlations
from detector.normalize import SourceRegistry
from detector.normalize.builtin import build_registry
from detector.rules import CompiledRule, load_rules, ruletests
from detector.rules.routing import RuleRouter

RULES = Path(__file__).resolve().parents[1] / "rules"
TEST_FILES = ruletests.test_files([RULES])

#: (test file, position in its `no_match` list, file of the rule that fires) -> why.
CROSS_FIRE_ALLOWED: dict[tuple[str, int, str], str] = {
    (
        "cicd/cicd_access_token_created.tests.yml",
        4,
        "gitlab/gitlab_access_token_creation_failed.yml",
    ): "a refused GitLab token creation is excluded here: it is the failure rule's event",
    (
        "gitlab/gitlab_access_token_creation_failed.tests.yml",
        0,
        "cicd/cicd_access_token_created.yml",
    ): "a granted token is no failure: it is the token-created rule's event",
    (
        "gitlab/gitlab_personal_access_token_created_for_another_user.tests.yml",
        0,
        "cicd/cicd_access_token_created.yml",
    ): "a user's own new token: every creation is the token-created rule's event",
    (
        "gitlab/gitlab_personal_access_token_created_for_another_user.tests.yml",
        1,
        "gitlab/gitlab_access_token_creation_failed.yml",
    ): "a refused creation for another user is the failure rule's event",
    (
        "github/github_force_push_protected_branch_override.tests.yml",
        0,
        "github/github_branch_protection_policy_override.yml",
    ): "a review override: every override is the generic override rule's event",
    (
        "jenkins/script_reads_credentials.tests.yml",
        0,
        "jenkins/script_console_execution.yml",
    ): "a harmless script: every script run is the script console rule's event",
    (
        "jenkins/script_runs_os_command.tests.yml",
        0,
        "jenkins/script_console_execution.yml",
    ): "a harmless script: every script run is the script console rule's event",
    (
        "cloudtrail/oidc_deploy_role_from_feature_branch.tests.yml",
        1,
        "cloudtrail/oidc_gitlab_token.yml",
    ): "GitLab's main-branch subject needs a GitLab token: each one is reported at low level",
    (
        "cloudtrail/oidc_gitlab_token.tests.yml",
        1,
        "cloudtrail/oidc_assume_role_failed.yml",
    ): "a refused GitLab token is the refused-token rule's event",
    (
        "cloudtrail/oidc_pull_request_subject.tests.yml",
        0,
        "cloudtrail/oidc_pull_request_subject_deploy_role.yml",
    ): "a deployment role is left to the higher-level deployment role rule",
    (
        "cloudtrail/oidc_pull_request_subject.tests.yml",
        2,
        "cloudtrail/oidc_assume_role_failed.yml",
    ): "a refused pull request token is the refused-token rule's event",
    (
        "cloudtrail/oidc_pull_request_subject_deploy_role.tests.yml",
        1,
        "cloudtrail/oidc_assume_role_failed.yml",
    ): "a refused pull request token is the refused-token rule's event",
    (
        "cloudtrail/oidc_pull_request_subject_deploy_role.tests.yml",
        2,
        "cloudtrail/oidc_pull_request_subject.yml",
    ): "a plan-only role is the lower-level pull request rule's event",
    (
        "cloudtrail/oidc_pull_request_subject_deploy_role.tests.yml",
        3,
        "cloudtrail/oidc_pull_request_subject.yml",
    ): "product-catalog-reader is no prod role: the lower-level pull request rule's event",
    (
        "cloudtrail/trust_policy_ci_oidc_added.tests.yml",
        2,
        "cloudtrail/trust_policy_ci_oidc_without_subject_restriction.yml",
    ): "a repo:* subject is left to the higher-level unrestricted-subject rule",
}


@pytest.fixture(scope="module")
def rules() -> list[CompiledRule]:
    loaded = load_rules([RULES])
    assert [str(e) for e in loaded.errors] == []
    return loaded.rules


@pytest.fixture(scope="module")
def silenced() -> frozenset[Path]:
    """Files of the rules the pack's correlations silence: they make no detection."""
    targets = compile_correlations(load_rules([RULES])).silenced
    return frozenset(t.source for t in targets if isinstance(t, CompiledRule) and t.source)


@pytest.fixture(scope="module")
def registry() -> SourceRegistry:
    return build_registry(SourcesSettings())


def _name(path: Path) -> str:
    return path.resolve().relative_to(RULES).as_posix()


def test_every_rule_has_a_test_file_with_a_match_and_a_near_miss(
    rules: list[CompiledRule], registry: SourceRegistry
) -> None:
    tested: list[tuple[str, int, int]] = []
    for test in ruletests.read_tests(TEST_FILES, rules, registry):
        assert (_name(test.test_file), test.error) == (_name(test.test_file), "")
        assert test.rule is not None and test.rule.source is not None
        matches = sum(case.expected for case in test.cases)
        tested.append((_name(test.rule.source), matches, len(test.cases) - matches))

    # One test file per rule, none left over, each with a positive and a near miss.
    assert sorted(name for name, _, _ in tested) == sorted(
        _name(r.source) for r in rules if r.source is not None
    )
    assert len(tested) == len(rules)
    assert [name for name, matches, misses in tested if matches < 1 or misses < 1] == []


@pytest.mark.parametrize("file", TEST_FILES, ids=_name)
def test_rule_fires_on_its_events_and_not_on_its_near_misses(
    rules: list[CompiledRule], registry: SourceRegistry, file: Path
) -> None:
    results = list(ruletests.run_tests([file], rules, registry))

    assert results != []
    assert [(r.index, r.reason) for r in results if r.fired is None] == []
    assert [r.index for r in results if not r.passed] == []


def test_no_rule_fires_on_another_rules_near_miss(
    rules: list[CompiledRule], silenced: frozenset[Path], registry: SourceRegistry
) -> None:
    router = RuleRouter(rules, registry.routes())
    fired: set[tuple[str, int, str]] = set()
    for test in ruletests.read_tests(TEST_FILES, rules, registry):
        near_misses = [case for case in test.cases if not case.expected]
        for position, case in enumerate(near_misses):
            assert case.error == "", (_name(test.test_file), position, case.error)
            for event in case.events:
                for rule in router.match(event):
                    if rule is test.rule or rule.source is None or rule.source in silenced:
                        continue
                    fired.add((_name(test.test_file), position, _name(rule.source)))

    assert sorted(fired - set(CROSS_FIRE_ALLOWED)) == []
    assert sorted(set(CROSS_FIRE_ALLOWED) - fired) == []
