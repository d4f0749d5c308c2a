"""GitLab audit events: the streaming, REST and audit_json.log shapes, detection, errors."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from detector.normalize.base import NormalizationError
from detector.normalize.gitlab import GitLabAuditNormalizer
from detector.redact import redact
from tests.strategies import JSON_VALUES as _JSON

FIXTURES = Path(__file__).parent.parent / "fixtures" / "sources" / "gitlab"
NORMALIZER = GitLabAuditNormalizer()
REFERENCE = Path(__file__).parents[3] / "shared" / "reference" / "log-formats.md"


def _json_lines(name: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (FIXTURES / name).read_text().splitlines()]


STREAM = _json_lines("stream.jsonl")
API: list[dict[str, Any]] = json.loads((FIXTURES / "api.json").read_text())
LOG = _json_lines("audit_json.log")


def _by_id(records: list[dict[str, Any]], event_id: object) -> dict[str, Any]:
    return next(record for record in records if record.get("id") == event_id)


def _fields(record: dict[str, Any]) -> dict[str, Any]:
    """The normalized event without `raw`."""
    event = NORMALIZER.normalize(record).to_dict()
    assert event.pop("raw") == record
    return event


MALLORY = {"user.name": "Mallory", "user.id": "17", "user.type": "human"}
PAYMENTS = {"repository": "acme/payments", "organization": "acme"}


def test_source_identity() -> None:
    assert (NORMALIZER.name, NORMALIZER.product, NORMALIZER.service) == (
        "gitlab",
        "gitlab",
        "audit",
    )


def test_fixtures_cover_the_security_relevant_types() -> None:
    assert len({record["event_type"] for record in STREAM}) >= 10
    assert all(isinstance(record["id"], str) for record in STREAM)
    assert all(isinstance(record["id"], int) for record in API)


@pytest.mark.shared
def test_fixtures_hold_the_reference_examples_verbatim() -> None:
    if not REFERENCE.is_file():
        pytest.skip(f"{REFERENCE} is absent")
    section = REFERENCE.read_text().split("### 2.4 Examples", 1)[1].split("\n## ", 1)[0]
    blocks = [block.split("```", 1)[0] for block in section.split("```json\n")[1:]]
    streamed, listed, reconstructed = (json.loads(block) for block in blocks)
    assert streamed in STREAM
    assert listed in API
    assert reconstructed in STREAM


# --- streaming shape ------------------------------------------------------------------


def test_verbatim_git_operation_by_deploy_key() -> None:
    record = _by_id(STREAM, "1")
    assert _fields(record) == {
        "@timestamp": "2022-07-26T05:43:53.662000Z",
        "event.id": "1",
        "event.source": "gitlab",
        "event.action": "repository_git_operation",
        "event.category": ["api"],
        "event.type": ["access"],
        "user.name": "deploy-key-name",
        "user.type": "token",
        "source.ip": "127.0.0.1",
        "repository": "example-group/example-project",
        "organization": "example-group",
        "resource.kind": "Project",
        "resource.name": "example-project",
    }


def test_verbatim_ci_variable_created() -> None:
    record = _by_id(STREAM, "48213")
    assert _fields(record) == {
        "@timestamp": "2025-02-11T09:14:02.331000Z",
        "event.id": "48213",
        "event.source": "gitlab",
        "event.action": "ci_variable_created",
        "event.category": ["configuration"],
        "event.type": ["creation"],
        **MALLORY,
        "source.ip": "198.51.100.23",
        **PAYMENTS,
        "resource.kind": "Ci::Variable",
        "resource.name": "AWS_SECRET_ACCESS_KEY",
    }


def test_personal_access_token_created_names_the_token() -> None:
    record = _by_id(STREAM, "48190")
    assert _fields(record) == {
        "@timestamp": "2025-02-11T09:02:45.118000Z",
        "event.id": "48190",
        "event.source": "gitlab",
        "event.action": "personal_access_token_created",
        "event.category": ["iam"],
        "event.type": ["creation"],
        **MALLORY,
        "source.ip": "198.51.100.23",
        "resource.kind": "PersonalAccessToken",
        "resource.name": "laptop-sync",
        "token.id": "5123",
    }


@pytest.mark.parametrize(
    ("event_id", "action", "token_id"),
    [
        ("48201", "project_access_token_created", "5124"),
        ("48205", "deploy_key_added", "311"),
    ],
)
def test_credential_targets_carry_token_id(event_id: str, action: str, token_id: str) -> None:
    event = _fields(_by_id(STREAM, event_id))
    assert (event["event.action"], event["token.id"]) == (action, token_id)
    assert (event["event.category"], event["event.type"]) == (["iam"], ["creation"])
    assert event["repository"] == "acme/payments"


def test_token_id_only_when_the_target_is_a_credential() -> None:
    for record in STREAM:
        event = _fields(record)
        if record["target_type"] not in {"PersonalAccessToken", "DeployKey"}:
            assert "token.id" not in event, record["event_type"]


def test_protected_branch_events_name_the_branch() -> None:
    updated = _fields(_by_id(STREAM, "48209"))
    removed = _fields(_by_id(STREAM, "48230"))
    assert updated["event.action"] == "protected_branch_allow_force_push_updated"
    assert (updated["event.type"], removed["event.type"]) == (["change"], ["deletion"])
    assert updated["event.category"] == removed["event.category"] == ["configuration"]
    assert updated["branch"] == removed["branch"] == "main"
    assert updated["resource.kind"] == "ProtectedBranch"


def test_runner_registered_with_registration_token() -> None:
    assert _fields(_by_id(STREAM, "48241")) == {
        "@timestamp": "2025-02-11T09:21:03.664000Z",
        "event.id": "48241",
        "event.source": "gitlab",
        "event.action": "ci_runner_registered",
        "event.category": ["configuration"],
        "event.type": ["creation"],
        "user.name": "Registration token: GR134894",
        "user.type": "token",
        "source.ip": "203.0.113.50",
        "organization": "acme",
        "resource.kind": "Ci::Runner",
        "resource.name": "build-box-7",
    }


def test_group_membership_and_two_factor() -> None:
    member = _fields(_by_id(STREAM, "48252"))
    assert (member["event.category"], member["event.type"]) == (["iam"], ["user", "creation"])
    assert (member["organization"], member["resource.kind"], member["resource.name"]) == (
        "acme",
        "User",
        "eve",
    )
    assert "repository" not in member
    two_factor = _fields(_by_id(STREAM, "48260"))
    assert two_factor == {
        "@timestamp": "2025-02-11T09:31:05.006000Z",
        "event.id": "48260",
        "event.source": "gitlab",
        "event.action": "user_disable_two_factor",
        "event.category": ["iam"],
        "event.type": ["user", "change"],
        "user.name": "Administrator",
        "user.id": "1",
        "user.type": "human",
        "source.ip": "10.20.0.4",
        "resource.kind": "User",
        "resource.name": "eve",
    }


def test_failed_sign_in_keeps_the_login_tried_without_a_user_id() -> None:
    assert _fields(_by_id(STREAM, "48266")) == {
        "@timestamp": "2025-02-11T09:33:12.250000Z",
        "event.id": "48266",
        "event.source": "gitlab",
        "event.action": "login_failed_with_standard_authentication",
        "event.category": ["authentication"],
        "event.type": ["start"],
        "event.outcome": "failure",
        "user.name": "root",
        "source.ip": "203.0.113.77",
        "resource.kind": "Gitlab::Audit::UnauthenticatedAuthor",
        "resource.name": "root",
    }


def test_failed_token_creation_with_null_target() -> None:
    assert _fields(_by_id(STREAM, "48305")) == {
        "@timestamp": "2025-02-11T09:52:40.090000Z",
        "event.id": "48305",
        "event.source": "gitlab",
        "event.action": "group_access_token_creation_failed",
        "event.category": ["iam"],
        "event.type": ["creation"],
        "event.outcome": "failure",
        **MALLORY,
        "source.ip": "198.51.100.23",
        "organization": "acme",
    }


@pytest.mark.parametrize(
    ("event_id", "action", "classification", "kind"),
    [
        (
            "48247",
            "secure_ci_job_token_inbound_disabled",
            (["configuration"], ["change"]),
            "Project",
        ),
        ("48270", "skip_secret_push_protection", (["api"], ["allowed"]), "Project"),
        (
            "48281",
            "destroy_event_streaming_destination",
            (["configuration"], ["deletion"]),
            "AuditEvents::ExternalAuditEventDestination",
        ),
    ],
)
def test_control_weakening_events(
    event_id: str, action: str, classification: tuple[list[str], list[str]], kind: str
) -> None:
    event = _fields(_by_id(STREAM, event_id))
    assert event["event.action"] == action
    assert (event["event.category"], event["event.type"]) == classification
    assert "event.outcome" not in event
    assert event["resource.kind"] == kind
    assert event["user.name"] == "Mallory"


def test_destination_destroyed_in_the_group() -> None:
    event = _fields(_by_id(STREAM, "48281"))
    assert event["organization"] == "acme"
    assert "repository" not in event
    assert event["resource.name"] == "https://siem.acme.example/gitlab"


def test_stream_only_event_with_uuid_id_by_project_bot() -> None:
    event = _fields(_by_id(STREAM, "0b8f4a5e-6d2c-4f0e-9a51-3c7d2e1f9b44"))
    assert event["event.id"] == "0b8f4a5e-6d2c-4f0e-9a51-3c7d2e1f9b44"
    assert (event["event.action"], event["event.type"]) == ("variable_viewed_api", ["access"])
    assert (event["user.name"], event["user.id"], event["user.type"]) == ("deploy-bot", "73", "bot")


def test_impersonated_action_is_attributed_to_the_recorded_author() -> None:
    record = _by_id(STREAM, "48290")
    event = _fields(record)
    assert (event["user.name"], event["user.id"], event["user.type"]) == ("eve", "58", "human")
    assert "Administrator" not in {event.get("user.name"), event.get("user.id")}
    assert NORMALIZER.normalize(record).raw["details"]["impersonated_by"] == "Administrator"


def test_ip_restricted_access_outcome_follows_allowed() -> None:
    record = _by_id(STREAM, "48297")
    event = _fields(record)
    assert (event["event.category"], event["event.type"]) == (["network"], ["access"])
    assert event["event.outcome"] == "failure"
    assert "user.id" not in event
    assert "user.type" not in event
    allowed = copy.deepcopy(record)
    allowed["details"]["allowed"] = True
    assert NORMALIZER.normalize(allowed).event_outcome == "success"
    unknown = copy.deepcopy(record)
    del unknown["details"]["allowed"]
    assert NORMALIZER.normalize(unknown).event_outcome is None


def test_git_operation_by_deploy_token() -> None:
    event = _fields(_by_id(STREAM, "48301"))
    assert (event["user.name"], event["user.type"]) == ("gitlab+deploy-token-5", "token")
    assert "user.id" not in event
    assert event["source.ip"] == "203.0.113.91"


# --- REST shape ------------------------------------------------------------------------


def test_rest_element_with_fields_only_in_details() -> None:
    assert _fields(_by_id(API, 1)) == {
        "@timestamp": "2019-08-30T07:00:41.885000Z",
        "event.id": "1",
        "event.source": "gitlab",
        "user.name": "Administrator",
        "user.id": "1",
        "source.ip": "127.0.0.1",
        "repository": "flightjs/flight",
        "organization": "flightjs",
        "resource.kind": "Project",
        "resource.name": "flightjs/flight",
    }


def test_rest_user_entity_has_no_organization_and_null_ip() -> None:
    assert _fields(_by_id(API, 3)) == {
        "@timestamp": "2019-08-22T16:34:25.639000Z",
        "event.id": "3",
        "event.source": "gitlab",
        "user.name": "Andreas",
        "user.id": "51",
        "resource.kind": "User",
        "resource.name": "Andreas",
    }


def test_rest_group_entity() -> None:
    event = _fields(_by_id(API, 2))
    assert (event["organization"], event["resource.kind"]) == ("flightjs", "Group")
    assert "repository" not in event
    assert "event.action" not in event
    assert "event.outcome" not in event


def test_verbatim_rest_instance_event() -> None:
    assert _fields(_by_id(API, 4)) == {
        "@timestamp": "2023-08-01T11:29:44.764000Z",
        "event.id": "4",
        "event.source": "gitlab",
        "event.action": "audit_events_streaming_instance_headers_create",
        "event.category": ["configuration"],
        "event.type": ["creation"],
        "user.name": "Administrator",
        "user.id": "43",
        "user.type": "human",
        "source.ip": "127.0.0.1",
        "resource.kind": "AuditEvents::Streaming::InstanceHeader",
        "resource.name": "unknown",
    }


def test_rest_and_stream_copies_of_one_event_agree() -> None:
    streamed = _fields(_by_id(STREAM, "48230"))
    listed = _fields(_by_id(API, 48230))
    assert streamed == listed
    assert listed["event.id"] == "48230"


def test_rest_member_destroyed() -> None:
    event = _fields(_by_id(API, 48312))
    assert event["event.type"] == ["user", "deletion"]
    assert (event["resource.kind"], event["resource.name"]) == ("User", "carol")


# --- audit_json.log shape --------------------------------------------------------------


def test_old_log_line_uses_logger_time_and_a_content_id() -> None:
    record = LOG[0]
    event = _fields(record)
    assert event == {
        "@timestamp": "2018-10-17T17:38:22.523000Z",
        "event.id": event["event.id"],
        "event.source": "gitlab",
        "user.name": "John Doe4",
        "user.id": "3",
        "resource.kind": "Project",
        "resource.name": "namespace2/project2",
    }
    assert len(event["event.id"]) == 32
    assert _fields(copy.deepcopy(record))["event.id"] == event["event.id"]


def test_current_log_line_reads_event_name_and_created_at() -> None:
    assert _fields(LOG[1]) == {
        "@timestamp": "2025-02-11T10:02:17.840000Z",
        "event.id": "48320",
        "event.source": "gitlab",
        "event.action": "personal_access_token_revoked",
        "event.category": ["iam"],
        "event.type": ["deletion"],
        "user.name": "Administrator",
        "user.id": "1",
        "user.type": "human",
        "source.ip": "10.20.0.4",
        "resource.kind": "PersonalAccessToken",
        "resource.name": "laptop-sync",
        "token.id": "5123",
    }


# --- field precedence and identity -----------------------------------------------------


def _minimal(**extra: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "id": 7,
        "author_id": 5,
        "entity_id": 9,
        "entity_type": "Project",
        "created_at": "2025-02-11T09:00:00.000Z",
    }
    record.update(extra)
    return record


def test_top_level_fields_win_over_details() -> None:
    record = _minimal(
        author_name="top",
        ip_address="192.0.2.1",
        entity_path="top-group/app",
        event_type="ci_variable_deleted",
        details={
            "author_name": "nested",
            "ip_address": "192.0.2.2",
            "entity_path": "nested-group/app",
            "event_name": "ci_variable_created",
        },
    )
    event = _fields(record)
    assert (event["user.name"], event["source.ip"]) == ("top", "192.0.2.1")
    assert (event["repository"], event["organization"]) == ("top-group/app", "top-group")
    assert event["event.action"] == "ci_variable_deleted"


def test_event_name_in_details_is_the_fallback_action() -> None:
    record = _minimal(details={"event_name": "deploy_token_revoked"})
    event = _fields(record)
    assert (event["event.action"], event["event.type"]) == ("deploy_token_revoked", ["deletion"])


def test_unlisted_type_has_an_action_but_no_classification() -> None:
    event = _fields(_minimal(event_type="merge_request_title_updated"))
    assert event["event.action"] == "merge_request_title_updated"
    assert "event.outcome" not in event
    assert "event.category" not in event
    assert "event.type" not in event


@pytest.mark.parametrize(
    ("author_id", "author_class", "email", "user_id", "user_type"),
    [
        (5, "User", "dev@acme.example", "5", "human"),
        (5, "User", None, "5", "human"),
        (88, "User", "group_12_bot_5e1c9d0a3b7f4e21@noreply.gitlab.acme.example", "88", "bot"),
        (
            89,
            "User",
            "service_account_group_12_c468757e6df2fc104de54ea470539bb5@noreply.gitlab.example",
            "89",
            "service_account",
        ),
        (-3, "DeployKey", None, None, "token"),
        (-2, "Gitlab::Audit::DeployTokenAuthor", None, None, "token"),
        (-1, "Gitlab::Audit::UnauthenticatedAuthor", None, None, None),
        (-2, None, None, None, "token"),
        (-3, None, None, None, "token"),
        (-1, None, None, None, None),
        (5, None, None, "5", None),
        (5, "Gitlab::Audit::CompositeIdentityAuthor", None, "5", None),
        (None, None, None, None, None),
        (0, "User", None, None, "human"),
    ],
)
def test_author_identity(
    author_id: int | None,
    author_class: str | None,
    email: str | None,
    user_id: str | None,
    user_type: str | None,
) -> None:
    details = {"author_class": author_class, "author_email": email}
    event = NORMALIZER.normalize(_minimal(author_id=author_id, details=details))
    assert (event.user_id, event.user_type) == (user_id, user_type)


def test_instance_scope_is_not_an_organization() -> None:
    record = _minimal(entity_type="Gitlab::Audit::InstanceScope", entity_path="gitlab_instance")
    event = NORMALIZER.normalize(record)
    assert (event.organization, event.repository) == (None, None)


# --- detection ------------------------------------------------------------------------


def test_matches_every_fixture_shape() -> None:
    for record in [*STREAM, *API, *LOG]:
        assert NORMALIZER.matches(record), record.get("id")


OTHER_SOURCES: dict[str, dict[str, Any]] = {
    "github repo.create": {
        "@timestamp": 1741611463961,
        "_document_id": "Nm4EoecTsz6kAS-87bAEfA",
        "action": "repo.create",
        "actor": "user_actor",
        "actor_id": 11111,
        "actor_is_bot": False,
        "actor_location": {"country_code": "IN"},
        "business": "enterprise-account",
        "business_id": 222222,
        "created_at": 1741611463961,
        "operation_type": "create",
        "org": "user-delete",
        "org_id": 3333333,
        "repo": "user-delete/private-repo",
        "repo_id": 4444444,
    },
    "github api.request": {
        "@timestamp": 1741611465102,
        "_document_id": "Zt3XoecTsz6kAS-87bAEzQ",
        "action": "api.request",
        "actor": "user_actor",
        "actor_id": 11111,
        "created_at": 1741611465102,
        "hashed_token": "E8Fzcgs3TQXqhrKKC/qNR+2XZnaK3ykQBSAt1kPMiJs=",
        "org": "user-delete",
        "token_id": 555555,
        "user_agent": "curl/7.79.1",
    },
    "github workflow_job": {
        "action": "completed",
        "workflow_job": {"id": 289782451, "run_id": 2202229078, "status": "completed"},
        "repository": {"id": 186853002, "full_name": "octo-org/octo-repo"},
        "organization": {"login": "octo-org", "id": 6811672},
        "sender": {"login": "octocat", "id": 1, "type": "User"},
    },
    "kubernetes audit": {
        "kind": "Event",
        "apiVersion": "audit.k8s.io/v1",
        "level": "Metadata",
        "auditID": "4d2ea5d6-1d3c-4c5e-9b1c-0a1b2c3d4e5f",
        "stage": "ResponseComplete",
        "requestURI": "/api/v1/namespaces/default/pods",
        "verb": "create",
        "user": {"username": "alice", "uid": "1"},
        "sourceIPs": ["10.0.0.1"],
        "objectRef": {"resource": "pods", "namespace": "default"},
        "requestReceivedTimestamp": "2025-03-04T06:22:18.000000Z",
        "stageTimestamp": "2025-03-04T06:22:18.100000Z",
    },
    "registry envelope": {
        "events": [
            {
                "id": "320678d8-ca14-430f-8bb6-4ca139cd83f7",
                "timestamp": "2016-03-09T14:44:26.402973972-08:00",
                "action": "pull",
                "target": {"repository": "hello-world", "tag": "latest"},
                "actor": {},
            }
        ]
    },
    "registry event": {
        "id": "320678d8-ca14-430f-8bb6-4ca139cd83f7",
        "timestamp": "2016-03-09T14:44:26.402973972-08:00",
        "action": "pull",
        "target": {"repository": "hello-world", "tag": "latest"},
        "request": {"addr": "192.168.64.11:42961", "useragent": "curl/7.38.0"},
        "actor": {},
        "source": {"addr": "xtal.local:5000"},
    },
    "cloudtrail": {
        "eventVersion": "1.08",
        "userIdentity": {
            "type": "WebIdentityUser",
            "userName": "repo:acme/app:ref:refs/heads/main",
        },
        "eventTime": "2025-04-16T02:46:56Z",
        "eventSource": "sts.amazonaws.com",
        "eventName": "AssumeRoleWithWebIdentity",
        "sourceIPAddress": "52.154.133.36",
        "eventID": "ef0464cd-918e-4528-9ea3-1a081d39b393",
        "recipientAccountId": "774305579662",
    },
    "harbor webhook": {
        "type": "PUSH_ARTIFACT",
        "occur_at": 1586922308,
        "operator": "admin",
        "event_data": {"repository": {"name": "debian", "namespace": "test-webhook"}},
    },
    "gitlab user contribution event": {
        "id": 3,
        "title": None,
        "project_id": 15,
        "action_name": "closed",
        "target_id": 830,
        "target_type": "Issue",
        "author_id": 1,
        "target_title": "Public project search field",
        "created_at": "2017-02-09T10:43:19.667Z",
        "author_username": "root",
    },
}


@pytest.mark.parametrize("name", sorted(OTHER_SOURCES))
def test_does_not_claim_other_sources(name: str) -> None:
    assert NORMALIZER.matches(OTHER_SOURCES[name]) is False


# --- errors ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"created_at": None}, "no created_at or time"),
        ({"created_at": "yesterday"}, "bad created_at: not an ISO 8601 time: 'yesterday'"),
        ({"created_at": "2025-02-11T09:00:00"}, "bad created_at: time has no zone"),
        ({"created_at": "0001-01-01T00:00:00+01:00"}, "bad created_at: time out of range in UTC"),
        ({"created_at": 1739264400}, "bad created_at: expected an ISO 8601 string, got int"),
        ({"created_at": None, "time": []}, "bad time: expected an ISO 8601 string, got list"),
        ({"details": ["a"]}, "details is a list, not an object"),
        ({"id": {"x": 1}}, "bad id: expected a non-empty string or an integer"),
        ({"id": ""}, "bad id: expected a non-empty string or an integer"),
        ({"id": True}, "bad id: expected a non-empty string or an integer"),
        ({"event_type": 12}, "event_type is a int, not a string"),
        ({"details": {"event_name": ["x"]}}, "event_name is a list, not a string"),
        ({"author_id": "17"}, "author_id is a str, not an integer"),
        ({"author_id": True}, "author_id is a bool, not an integer"),
    ],
)
def test_error_reasons(change: dict[str, Any], reason: str) -> None:
    record = _minimal(**change)
    assert NORMALIZER.matches(record)
    with pytest.raises(NormalizationError) as caught:
        NORMALIZER.normalize(record)
    assert str(caught.value).startswith(reason)


# --- robustness -----------------------------------------------------------------------

_KEYS = st.sampled_from(
    [
        "id",
        "author_id",
        "author_name",
        "entity_id",
        "entity_type",
        "entity_path",
        "event_type",
        "event_name",
        "created_at",
        "time",
        "details",
        "ip_address",
        "target_id",
        "target_type",
        "target_details",
        "author_class",
        "author_email",
        "allowed",
    ]
)
_GITLAB_LIKE = st.dictionaries(_KEYS | st.text(max_size=8), _JSON, max_size=10).map(
    lambda record: {"author_id": None, "entity_id": None, "entity_type": None, **record}
)
_DETAILS_LIKE = st.dictionaries(_KEYS, _JSON, max_size=8).map(
    lambda details: _minimal(details=details)
)


def _check(record: dict[str, Any]) -> None:
    assert isinstance(NORMALIZER.matches(record), bool)
    try:
        event = NORMALIZER.normalize(record)
    except NormalizationError:
        return
    assert event.event_source == "gitlab"
    # Written out, raw is the record with its secrets redacted (and nothing else changed).
    assert orjson.loads(event.to_json())["raw"] == orjson.loads(orjson.dumps(redact(record)))


@given(st.dictionaries(st.text(max_size=8), _JSON, max_size=6))
def test_arbitrary_dicts_never_break_matches_or_normalize(record: dict[str, Any]) -> None:
    _check(record)


@given(_GITLAB_LIKE)
def test_signature_keys_with_arbitrary_values(record: dict[str, Any]) -> None:
    assert NORMALIZER.matches(record)
    _check(record)


@given(_DETAILS_LIKE)
def test_arbitrary_details_of_a_valid_event(record: dict[str, Any]) -> None:
    _check(record)


@given(_KEYS, _JSON)
def test_any_field_of_a_fixture_replaced(key: str, value: Any) -> None:
    for record in (_by_id(STREAM, "48213"), _by_id(API, 1)):
        _check({**record, key: value})


def test_a_refused_token_creation_is_a_failure() -> None:
    record = {
        "id": "9",
        "author_id": 17,
        "entity_id": 17,
        "entity_type": "User",
        "event_type": "personal_access_token_created",
        "created_at": "2025-02-11T09:14:02.331Z",
        "details": {
            "custom_message": "Attempted to create personal access token but failed with message: x"
        },
    }
    assert GitLabAuditNormalizer().normalize(record).event_outcome == "failure"
