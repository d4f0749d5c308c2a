"""GitHub organization / enterprise audit log normalizer."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from detector.normalize.base import NormalizationError, content_id
from detector.normalize.github import ECS_TYPES_BY_CATEGORY, GitHubAuditNormalizer, classify
from tests.strategies import JSON_VALUES

FIXTURES = Path(__file__).parent.parent / "fixtures" / "sources" / "github"
NORMALIZER = GitHubAuditNormalizer()


def audit_lines() -> list[dict[str, Any]]:
    with (FIXTURES / "audit.jsonl").open(encoding="utf-8") as lines:
        return [json.loads(line) for line in lines if line.strip()]


def rest_export() -> list[dict[str, Any]]:
    records = json.loads((FIXTURES / "rest-export.json").read_text(encoding="utf-8"))
    assert isinstance(records, list)
    return records


def fixture(action: str, **match: Any) -> dict[str, Any]:
    """The one audit.jsonl record with this action (and these field values)."""
    found = [
        record
        for record in audit_lines()
        if record["action"] == action and all(record.get(k) == v for k, v in match.items())
    ]
    assert len(found) == 1, (action, match)
    return found[0]


def normalized(record: dict[str, Any]) -> dict[str, Any]:
    """The normalized JSON shape without `raw`."""
    shape = NORMALIZER.normalize(record).to_dict()
    assert shape.pop("raw") == record
    return shape


# --- fixtures as a whole -------------------------------------------------------------


def test_fixtures_cover_the_security_relevant_actions() -> None:
    actions = {record["action"] for record in audit_lines()}
    assert len(actions) >= 25
    for prefix in (
        "protected_branch.",
        "repo.",
        "org.",
        "git.",
        "workflows.",
        "personal_access_token.",
        "secret_scanning",
        "integration_installation.",
        "hook.",
        "api.request",
    ):
        assert any(action.startswith(prefix) for action in actions), prefix
    assert "org.register_self_hosted_runner" in actions
    lines = audit_lines()
    assert any("actor_ip" in record for record in lines)
    assert any("actor_ip" not in record for record in lines)
    assert any(isinstance(record.get("@timestamp"), str) for record in lines)
    assert any(isinstance(record.get("@timestamp"), int) for record in lines)


@pytest.mark.parametrize("record", audit_lines() + rest_export(), ids=lambda r: r["action"])
def test_every_fixture_record_is_detected_and_normalized(record: dict[str, Any]) -> None:
    assert NORMALIZER.matches(record) is True
    original = json.loads(json.dumps(record))
    event = NORMALIZER.normalize(record)
    assert event.event_source == "github"
    assert event.event_action == record["action"]
    assert event.raw == original
    assert orjson.loads(event.to_json())["raw"] == original
    assert event.event_category is not None and len(event.event_category) == 1
    allowed = ECS_TYPES_BY_CATEGORY[event.event_category[0]]
    assert event.event_type and set(event.event_type) <= allowed


# --- exact values ----------------------------------------------------------------------


def test_repo_create_streamed_entry() -> None:
    assert normalized(fixture("repo.create")) == {
        "@timestamp": "2025-03-10T12:57:43.961000Z",
        "event.id": "Nm4EoecTsz6kAS-87bAEfA",
        "event.source": "github",
        "event.action": "repo.create",
        "event.category": ["configuration"],
        "event.type": ["creation"],
        "user.name": "user_actor",
        "user.id": "11111",
        "user.type": "human",
        "user_agent.original": "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) "
        "AppleWebKit/537.36 (KHTML, like Gecko) Chrome/133.0.0.0 Safari/537.36",
        "repository": "user-delete/private-repo",
        "organization": "user-delete",
    }


def test_api_request_carries_token_and_outcome_from_status() -> None:
    assert normalized(fixture("api.request", status_code=200)) == {
        "@timestamp": "2025-03-10T12:57:45.102000Z",
        "event.id": "Zt3XoecTsz6kAS-87bAEzQ",
        "event.source": "github",
        "event.action": "api.request",
        "event.category": ["api"],
        "event.type": ["access"],
        "event.outcome": "success",
        "user.name": "user_actor",
        "user.id": "11111",
        "user.type": "human",
        "user_agent.original": "curl/7.79.1",
        "organization": "user-delete",
        "token.id": "555555",
    }


def test_denied_api_request_by_a_github_app() -> None:
    event = normalized(fixture("api.request", status_code=403))
    assert event["event.outcome"] == "failure"
    assert event["user.name"] == "octo-deployer[bot]"
    assert event["user.type"] == "bot"
    assert event["token.id"] == "777001"
    assert "source.ip" not in event


def test_git_clone_with_ip_disclosure() -> None:
    assert normalized(fixture("git.clone")) == {
        "@timestamp": "2023-11-20T21:20:09.423000Z",
        "event.id": "KCYtigpnShPBSohA4OXbRg==",
        "event.source": "github",
        "event.action": "git.clone",
        "event.category": ["api"],
        "event.type": ["access"],
        "user.name": "acme-inc-user",
        "user.id": "123456789",
        "user.type": "human",
        "source.ip": "5.6.7.8",
        "user_agent.original": "git/2.30.2",
        "repository": "acme-inc/a-repo",
        "organization": "acme-inc",
        "token.id": "123456789",
    }


def test_git_fetch_by_app_token_without_ip() -> None:
    event = normalized(fixture("git.fetch"))
    assert event["user.type"] == "bot"
    assert event["repository"] == "octo-org/payments"
    assert "source.ip" not in event
    assert "token.id" not in event  # only hashed_token, which stays in raw
    assert event["event.category"] == ["api"]
    assert event["event.type"] == ["access"]


def test_policy_override_takes_the_branch_from_name() -> None:
    assert normalized(fixture("protected_branch.policy_override")) == {
        "@timestamp": "2024-06-10T14:40:00.123000Z",
        "event.id": "b1Zr0aQ2x9kLmN3pQ4rS5t",
        "event.source": "github",
        "event.action": "protected_branch.policy_override",
        "event.category": ["api"],
        "event.type": ["allowed"],
        "user.name": "octo-admin",
        "user.id": "583231",
        "user.type": "human",
        "source.ip": "203.0.113.7",
        "user_agent.original": "git/2.45.1",
        "repository": "octo-org/payments",
        "organization": "octo-org",
        "branch": "main",
        "token.id": "8812345",
    }


def test_rejected_push_is_a_denied_failure_on_the_branch() -> None:
    event = normalized(fixture("protected_branch.rejected_ref_update"))
    assert event["branch"] == "main"
    assert event["event.outcome"] == "failure"
    assert event["event.category"] == ["api"]
    assert event["event.type"] == ["denied"]
    assert event["source.ip"] == "198.51.100.23"
    assert event["token.id"] == "8812399"


def test_rest_export_policy_override_with_branch_ref() -> None:
    record = rest_export()[0]
    event = normalized(record)
    assert event["@timestamp"] == "2025-03-12T16:24:08.783000Z"
    assert event["event.id"] == "pCtl2n0J8njxnR8oUOEpuw"
    assert event["branch"] == "main"
    assert "event.outcome" not in event


def test_iso_timestamps_from_an_export() -> None:
    event = normalized(fixture("protected_branch.update_allow_force_pushes_enforcement_level"))
    assert event["@timestamp"] == "2025-03-11T13:36:20.411000Z"
    assert normalized(fixture("org.invite_member"))["@timestamp"] == "2025-03-11T13:48:20.005000Z"


def test_workflow_job_has_no_actor() -> None:
    assert normalized(fixture("workflows.prepared_workflow_job")) == {
        "@timestamp": "2025-03-11T13:57:20.000000Z",
        "event.id": fixture("workflows.prepared_workflow_job")["_document_id"],
        "event.source": "github",
        "event.action": "workflows.prepared_workflow_job",
        "event.category": ["process"],
        "event.type": ["start"],
        "repository": "octo-org/payments",
        "organization": "octo-org",
    }


def test_completed_workflow_run_names_workflow_and_branch() -> None:
    event = normalized(fixture("workflows.completed_workflow_run"))
    assert event["resource.kind"] == "workflow"
    assert event["resource.name"] == "Deploy"
    assert event["branch"] == "main"
    assert event["event.type"] == ["end"]
    assert "event.outcome" not in event


def test_older_export_shape_with_data_object_and_no_document_id() -> None:
    record = fixture("hook.config_changed")
    assert normalized(record) == {
        "@timestamp": "2025-03-11T14:06:20.000000Z",
        "event.id": content_id(record),
        "event.source": "github",
        "event.action": "hook.config_changed",
        "event.category": ["configuration"],
        "event.type": ["change"],
        "user.name": "mallory-dev",
        "user.type": "human",
        "repository": "octo-org/payments",
        "organization": "octo-org",
        "resource.kind": "hook",
        "resource.name": "245",
    }
    workflow = normalized(fixture("workflows.delete_workflow_run"))
    assert workflow["@timestamp"] == "2021-02-25T23:34:07.285000Z"
    assert workflow["branch"] == "Barrel-Racing-Path"
    assert workflow["resource.name"] == "5295458"


@pytest.mark.parametrize(
    ("action", "kind", "name"),
    [
        ("repo.create_actions_secret", "secret", "AWS_SECRET_ACCESS_KEY"),
        ("org.update_actions_secret", "secret", "NPM_TOKEN"),
        ("repo.self_hosted_runner_online", "runner", "prod-runner-01"),
        ("org.runner_group_updated", "runner_group", "Production"),
        ("integration_installation.create", "integration", "octo-deployer"),
        ("personal_access_token.request_created", "personal_access_token", "ci-deploy"),
        ("hook.create", "hook", "245"),
        ("team.add_member", "team", "octo-org/admins"),
    ],
)
def test_resource_named_by_the_record(action: str, kind: str, name: str) -> None:
    event = normalized(fixture(action))
    assert (event["resource.kind"], event["resource.name"]) == (kind, name)


def test_no_resource_when_the_record_does_not_name_it() -> None:
    event = normalized(fixture("org.register_self_hosted_runner"))
    assert "resource.kind" not in event and "resource.name" not in event


def test_client_secret_of_an_app_names_the_app() -> None:
    record = {
        "@timestamp": 1741611463961,
        "action": "oauth_application.generate_client_secret",
        "actor": "octo-admin",
        "oauth_application": "octo-oauth",
        "oauth_application_id": 31,
    }
    event = normalized(record)
    assert (event["resource.kind"], event["resource.name"]) == ("oauth_application", "octo-oauth")


def test_organization_falls_back_to_business_and_repository_to_repository() -> None:
    record = {
        "@timestamp": 1741611463961,
        "action": "git.push",
        "actor": "dev",
        "business": "octo-corp",
        "repository": "octo-org/payments",
    }
    event = normalized(record)
    assert event["organization"] == "octo-corp"
    assert event["repository"] == "octo-org/payments"


# --- time --------------------------------------------------------------------------


def entry(**fields: Any) -> dict[str, Any]:
    return {"action": "repo.create", "actor": "octo-admin", "org": "octo-org", **fields}


def test_timestamp_wins_over_created_at() -> None:
    event = NORMALIZER.normalize(entry(**{"@timestamp": 1741611463961, "created_at": 1}))
    assert event.to_dict()["@timestamp"] == "2025-03-10T12:57:43.961000Z"


@pytest.mark.parametrize(
    "value",
    [1741611463961, 1741611463961.0, "1741611463961", "2025-03-10T12:57:43.961Z"],
)
def test_created_at_alone_in_any_documented_form(value: Any) -> None:
    event = NORMALIZER.normalize(entry(created_at=value))
    assert event.to_dict()["@timestamp"] == "2025-03-10T12:57:43.961000Z"


def test_missing_time_is_an_error() -> None:
    with pytest.raises(NormalizationError, match="no @timestamp or created_at"):
        NORMALIZER.normalize(entry())
    with pytest.raises(NormalizationError, match="no @timestamp or created_at"):
        NORMALIZER.normalize(entry(**{"@timestamp": None}))


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"@timestamp": [1741611463961]}, "bad @timestamp: expected an epoch number, got list"),
        ({"@timestamp": True}, "bad @timestamp: expected an epoch number, got bool"),
        ({"created_at": {"ms": 1}}, "bad created_at: expected an epoch number, got dict"),
        ({"@timestamp": "yesterday"}, "bad @timestamp: not an ISO 8601 time"),
        ({"@timestamp": "2025-03-10 12:57:43.961"}, "bad @timestamp: time has no zone"),
        ({"@timestamp": 10**30}, "bad @timestamp: epoch milliseconds out of range"),
        ({"@timestamp": "²"}, "bad @timestamp"),
    ],
)
def test_bad_time_is_an_error_with_the_reason(fields: dict[str, Any], reason: str) -> None:
    with pytest.raises(NormalizationError, match=reason):
        NORMALIZER.normalize(entry(**fields))


@pytest.mark.parametrize("action", [None, 7, ["repo.create"], ""])
def test_action_must_be_a_string(action: Any) -> None:
    record = entry(created_at=1741611463961)
    record["action"] = action
    with pytest.raises(NormalizationError, match="without a string `action`"):
        NORMALIZER.normalize(record)


# --- actor, outcome, branch ----------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "user_type"),
    [
        ({"actor": "dependabot[bot]"}, "bot"),
        ({"actor": "octo-deployer", "actor_is_bot": True}, "bot"),
        ({"actor": "octo-admin", "actor_is_bot": False}, "human"),
        (
            {
                "actor": "ci-machine-user",
                "programmatic_access_type": "Personal access token (classic)",
            },
            "human",
        ),
        ({"actor_is_bot": True}, "bot"),
        ({}, None),
    ],
)
def test_user_type_of_the_actor(fields: dict[str, Any], user_type: str | None) -> None:
    record = {"created_at": 1741611463961, "action": "repo.create", "org": "o", **fields}
    assert NORMALIZER.normalize(record).user_type == user_type


@pytest.mark.parametrize(
    ("action", "fields", "outcome"),
    [
        ("api.request", {"status_code": 201}, "success"),
        ("api.request", {"status_code": 399}, "success"),
        ("api.request", {"status_code": 400}, "failure"),
        ("api.request", {"status_code": 500}, "failure"),
        ("api.request", {}, None),
        ("api.request", {"status_code": True}, None),
        ("api.request", {"status_code": "200"}, None),
        ("protected_branch.rejected_ref_update", {}, "failure"),
        ("personal_access_token.request_denied", {}, "failure"),
        ("workflows.reject_workflow_job", {}, "failure"),
        ("secret_scanning_push_protection_request.deny", {}, "failure"),
        ("org.recovery_code_failed", {}, "failure"),
        ("protected_branch.policy_override", {}, None),
        ("git.push", {}, None),
        ("org.oauth_app_access_denied", {}, None),
    ],
)
def test_outcome(action: str, fields: dict[str, Any], outcome: str | None) -> None:
    record = {"created_at": 1741611463961, "actor": "a", "action": action, **fields}
    assert NORMALIZER.normalize(record).event_outcome == outcome


@pytest.mark.parametrize(
    ("action", "fields", "branch"),
    [
        (
            "protected_branch.rejected_ref_update",
            {"branch": "refs/heads/release/1.2"},
            "release/1.2",
        ),
        ("protected_branch.rejected_ref_update", {"branch": "refs/tags/v1"}, None),
        ("protected_branch.update_name", {"name": "main", "old_name": "master"}, "main"),
        ("prebuild_configuration.create", {"branch": "dev"}, "dev"),
        ("secret_scanning_alert.create", {"ref": "refs/heads/feature/x"}, "feature/x"),
        ("secret_scanning_alert.create", {"ref": "refs/tags/v1"}, None),
        ("secret_scanning_alert.create", {"ref": "feature/x"}, None),
        ("hook.create", {"name": "web"}, None),
        ("workflows.rerun_workflow_run", {"head_branch": "main", "name": "CI"}, "main"),
    ],
)
def test_branch(action: str, fields: dict[str, Any], branch: str | None) -> None:
    record = {"created_at": 1741611463961, "actor": "a", "action": action, **fields}
    assert NORMALIZER.normalize(record).branch == branch


def test_hashed_token_alone_gives_no_token_id() -> None:
    record = entry(
        created_at=1741611463961, hashed_token="E8Fzcgs3TQXqhrKKC/qNR+2XZnaK3ykQBSAt1kPMiJs="
    )
    assert NORMALIZER.normalize(record).token_id is None


# --- classification ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("action", "category", "types"),
    [
        ("org.add_member", "iam", ["user", "creation"]),
        ("org.remove_outside_collaborator", "iam", ["user", "deletion"]),
        ("org.revoke_sso_session", "iam", ["user", "deletion"]),
        ("business.add_admin", "iam", ["user", "admin", "creation"]),
        ("repo.remove_member", "iam", ["user", "deletion"]),
        ("team.create", "iam", ["group", "creation"]),
        ("team.add_member", "iam", ["group", "user", "creation"]),
        ("org.update_member_repository_creation_permission", "configuration", ["change"]),
        ("org.members_can_update_protected_branches.disable", "configuration", ["change"]),
        ("org.disable_two_factor_requirement", "configuration", ["change"]),
        ("org.audit_log_git_event_export", "configuration", ["access"]),
        ("org.runner_group_runners_added", "configuration", ["creation"]),
        ("repo.remove_self_hosted_runner", "configuration", ["deletion"]),
        ("personal_access_token.access_revoked", "iam", ["deletion"]),
        ("integration_installation.destroy", "iam", ["deletion"]),
        ("user.recovery_codes_downloaded", "iam", ["info"]),
        ("secret_scanning_alert.create", "vulnerability", ["info"]),
        ("user.failed_login", "authentication", ["start"]),
        ("git.push", "api", ["change"]),
        ("repo.download_zip", "api", ["access"]),
        ("workflows.cancel_workflow_run", "process", ["end"]),
        ("workflows.delete_workflow_run", "configuration", ["deletion"]),
    ],
)
def test_classification_uses_ecs_values(action: str, category: str, types: list[str]) -> None:
    categories, event_types = classify(action)
    assert categories == (category,)
    assert list(event_types) == types
    assert set(event_types) <= ECS_TYPES_BY_CATEGORY[category]


# --- detection -----------------------------------------------------------------------

OTHER_SOURCES: list[tuple[str, dict[str, Any]]] = [
    (
        "github actions workflow_job webhook",
        {
            "action": "completed",
            "workflow_job": {"id": 289782451, "run_id": 2202229078, "status": "completed"},
            "repository": {"id": 186853002, "full_name": "octo-org/octo-repo"},
            "organization": {"login": "octo-org", "id": 6811672},
            "sender": {"login": "octocat", "id": 1, "type": "User"},
        },
    ),
    (
        "github actions webhook with a dotted action",
        {
            "action": "workflow_run.completed",
            "workflow_run": {"id": 1, "created_at": "2021-08-05T10:34:58Z"},
            "repository": {"full_name": "octo-org/octo-repo"},
            "sender": {"login": "octocat"},
            "created_at": "2021-08-05T10:34:58Z",
        },
    ),
    (
        "github webhook payload with repository object",
        {
            "action": "repo.created",
            "repository": {"full_name": "octo-org/octo-repo"},
            "created_at": 1741611463961,
            "org": "octo-org",
        },
    ),
    (
        "registry notification event",
        {
            "id": "320678d8-ca14-430f-8bb6-4ca139cd83f7",
            "timestamp": "2016-03-09T14:44:26.402973972-08:00",
            "action": "pull",
            "target": {"digest": "sha256:fea8", "repository": "hello-world", "tag": "latest"},
            "request": {"id": "6df2", "addr": "192.168.64.11:42961", "method": "GET"},
            "actor": {},
            "source": {"addr": "xtal.local:5000"},
        },
    ),
    (
        "registry notification with a dotted action",
        {
            "action": "manifest.push",
            "timestamp": "2016-03-09T14:44:26.402973972-08:00",
            "target": {"repository": "hello-world"},
            "request": {"addr": "192.168.64.11:42961"},
            "actor": "ci",
            "created_at": 1,
        },
    ),
    (
        "gitlab streaming audit event",
        {
            "id": "1",
            "author_id": -3,
            "entity_id": 29,
            "entity_type": "Project",
            "author_name": "deploy-key-name",
            "created_at": "2022-07-26T05:43:53.662Z",
            "event_type": "repository_git_operation",
            "ip_address": "127.0.0.1",
        },
    ),
    (
        "gitlab event with a dotted action in details",
        {
            "action": "ci_variable.created",
            "author_id": 17,
            "created_at": "2025-02-11T09:14:02.331Z",
            "event_type": "ci_variable_created",
            "entity_path": "acme/payments",
        },
    ),
    (
        "kubernetes audit event",
        {
            "kind": "Event",
            "apiVersion": "audit.k8s.io/v1",
            "auditID": "abcde12345",
            "stage": "ResponseComplete",
            "verb": "get",
            "user": {"username": "system:serviceaccount:kube-system:elastic-agent"},
            "requestReceivedTimestamp": "2025-07-16T10:12:56.525137Z",
        },
    ),
    (
        "cloudtrail event",
        {
            "eventTime": "2025-04-16T02:46:56Z",
            "eventSource": "sts.amazonaws.com",
            "eventName": "AssumeRoleWithWebIdentity",
            "eventID": "ef0464cd-918e-4528-9ea3-1a081d39b393",
        },
    ),
    (
        "harbor webhook",
        {
            "type": "PUSH_ARTIFACT",
            "occur_at": 1586922308,
            "operator": "admin",
            "event_data": {"repository": {"name": "debian"}},
        },
    ),
    (
        "flux event",
        {
            "involvedObject": {"kind": "Kustomization", "name": "apps"},
            "severity": "info",
            "timestamp": "2025-03-04T06:22:18Z",
            "reason": "ReconciliationSucceeded",
        },
    ),
    ("jenkins elasticsearch document", {"@timestamp": "2025-03-04T06:22:18+0000", "message": "x"}),
    ("dotted action without any GitHub context", {"action": "repo.create"}),
    ("dotted action with time but no actor or tenant", {"action": "repo.create", "created_at": 1}),
    ("action not category.verb", {"action": "Repo Created", "actor": "a", "created_at": 1}),
    ("action without a verb", {"action": "repo", "actor": "a", "created_at": 1}),
    ("action not a string", {"action": ["repo.create"], "_document_id": "x"}),
]


@pytest.mark.parametrize(
    ("label", "record"), OTHER_SOURCES, ids=[label for label, _ in OTHER_SOURCES]
)
def test_other_sources_are_not_claimed(label: str, record: dict[str, Any]) -> None:
    assert NORMALIZER.matches(record) is False, label


@pytest.mark.parametrize(
    "record",
    [
        {"action": "org.add_member", "_document_id": "abc"},
        {
            "actor": "github-actor",
            "org": "Example-Org",
            "action": "org.add_member",
            "created_at": 1,
        },
        {
            "action": "business.add_admin",
            "business": "octo-corp",
            "@timestamp": "2025-03-10T12:57:43Z",
        },
        {"action": "workflows.prepared_workflow_job", "repo": "o/r", "@timestamp": 1},
    ],
)
def test_github_audit_markers_are_enough(record: dict[str, Any]) -> None:
    assert NORMALIZER.matches(record) is True


def test_logsource_of_sigmahq_github_rules() -> None:
    assert (NORMALIZER.name, NORMALIZER.product, NORMALIZER.service) == (
        "github",
        "github",
        "audit",
    )


# --- robustness ----------------------------------------------------------------------

SIGNATURE_KEYS = (
    "action",
    "actor",
    "actor_id",
    "actor_ip",
    "actor_is_bot",
    "@timestamp",
    "created_at",
    "_document_id",
    "org",
    "business",
    "repo",
    "repository",
    "token_id",
    "status_code",
    "branch",
    "head_branch",
    "name",
    "ref",
    "key",
    "hook_id",
    "integration",
    "data",
)
ACTIONS = st.sampled_from(sorted({record["action"] for record in audit_lines()})) | st.text(
    max_size=20
)
SIGNED_RECORDS = st.fixed_dictionaries(
    {"action": ACTIONS | JSON_VALUES},
    optional={key: JSON_VALUES for key in SIGNATURE_KEYS[1:]}
    | {"@timestamp": st.integers(0, 4_102_444_800_000) | st.text(max_size=30) | JSON_VALUES},
)
RECORDS = st.dictionaries(st.text(max_size=12), JSON_VALUES, max_size=6) | SIGNED_RECORDS


@settings(max_examples=400, deadline=None)
@given(RECORDS)
def test_any_record_gives_a_bool_and_an_event_or_a_normalization_error(
    record: dict[str, Any],
) -> None:
    assert isinstance(NORMALIZER.matches(record), bool)
    try:
        event = NORMALIZER.normalize(record)
    except NormalizationError:
        return
    assert orjson.loads(event.to_json())["event.source"] == "github"


@pytest.mark.parametrize(
    ("action", "expected"),
    [
        ("ip_allow_list.enable_for_installed_apps", (("configuration",), ("change",))),
        ("personal_access_token.access_granted", (("iam",), ("creation",))),
        ("org.recovery_code_used", (("authentication",), ("start",))),
    ],
)
def test_the_verb_is_the_leading_or_trailing_word(
    action: str, expected: tuple[tuple[str, ...], tuple[str, ...]]
) -> None:
    assert classify(action) == expected
