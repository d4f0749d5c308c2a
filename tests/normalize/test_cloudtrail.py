"""CloudTrail normalizer: any record, and the CI workload behind AssumeRoleWithWebIdentity."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from detector.config import SourcesSettings
from detector.events import Event
from detector.normalize import NormalizeStage
from detector.normalize.base import NormalizationError, content_id
from detector.normalize.builtin import build_registry
from detector.normalize.cloudtrail import CloudTrailNormalizer
from detector.sources.files import read_paths
from tests.strategies import JSON_VALUES

FIXTURES = Path(__file__).parent.parent / "fixtures" / "sources"
CLOUDTRAIL = FIXTURES / "cloudtrail"
NORMALIZER = CloudTrailNormalizer()

SNITCH_ROLE = (
    "arn:aws:iam::774305579662:role/"
    "cloud-snitch-github-actio-GithubActionsRoleF5CC769F-MoeCHSu77MYt"
)
NODE_SDK_UA = (
    "aws-sdk-nodejs/2.1112.0 linux/v20.19.0 configure-aws-credentials-for-github-actions promise"
)


def load(name: str) -> Any:
    return orjson.loads((CLOUDTRAIL / name).read_bytes())


def delivered() -> list[dict[str, Any]]:
    records = NORMALIZER.unwrap(load("s3-delivery.json"))
    assert records is not None
    return list(records)


def github(**changes: Any) -> dict[str, Any]:
    return {**load("assume-role-web-identity-github.json"), **changes}


def with_subject(subject: str) -> dict[str, Any]:
    record = github()
    record["userIdentity"]["userName"] = subject
    return record


def normalized_values(event: Event) -> list[str]:
    """Every normalized string value, the raw record left out."""
    fields = event.to_dict()
    del fields["raw"]
    return [v for value in fields.values() for v in (value if isinstance(value, list) else [value])]


# AssumeRoleWithWebIdentity ------------------------------------------------------------


def test_verbatim_github_oidc_role_assumption() -> None:
    record = load("assume-role-web-identity-github.json")
    assert NORMALIZER.matches(record)
    event = NORMALIZER.normalize(record)
    assert event.to_dict() == {
        "@timestamp": "2025-04-16T02:46:56.000000Z",
        "event.id": "ef0464cd-918e-4528-9ea3-1a081d39b393",
        "event.source": "cloudtrail",
        "event.action": "AssumeRoleWithWebIdentity",
        "event.category": ["authentication"],
        "event.type": ["start"],
        "event.outcome": "success",
        "user.name": "repo:ccbrown/cloud-snitch:ref:refs/heads/main",
        "user.id": "arn:aws:iam::774305579662:oidc-provider/token.actions.githubusercontent.com"
        ":sts.amazonaws.com:repo:ccbrown/cloud-snitch:ref:refs/heads/main",
        "user.type": "service_account",
        "source.ip": "52.154.133.36",
        "user_agent.original": NODE_SDK_UA,
        "repository": "ccbrown/cloud-snitch",
        "organization": "ccbrown",
        "resource.kind": "role",
        "resource.name": SNITCH_ROLE,
        "branch": "main",
        "raw": record,
    }
    assert event.timestamp == datetime(2025, 4, 16, 2, 46, 56, tzinfo=UTC)


@pytest.mark.parametrize(
    "name", ["assume-role-web-identity-github.json", "assume-role-web-identity-gitlab.json"]
)
def test_issued_credentials_stay_in_raw_only(name: str) -> None:
    record = load(name)
    credentials = record["responseElements"]["credentials"]
    event = NORMALIZER.normalize(record)
    assert event.token_id is None
    secrets = {credentials["accessKeyId"], credentials["sessionToken"]} - {""}
    assert secrets and secrets.isdisjoint(normalized_values(event))
    assert event.raw["responseElements"]["credentials"] == credentials


def test_rejected_token_is_a_failed_sign_in_of_the_claimed_workload() -> None:
    record = load("assume-role-web-identity-failure.json")
    assert record["responseElements"] is None
    event = NORMALIZER.normalize(record)
    assert event.to_dict() | {"raw": None} == {
        "@timestamp": "2025-04-16T03:05:11.000000Z",
        "event.id": "553d9e9d-0bef-4977-9cf0-024b6b70cabb",
        "event.source": "cloudtrail",
        "event.action": "AssumeRoleWithWebIdentity",
        "event.category": ["authentication"],
        "event.type": ["start"],
        "event.outcome": "failure",
        "user.name": "repo:evil-fork/cloud-snitch:pull_request",
        "user.id": "arn:aws:iam::774305579662:oidc-provider/token.actions.githubusercontent.com"
        ":https://github.com/evil-fork:repo:evil-fork/cloud-snitch:pull_request",
        "user.type": "service_account",
        "source.ip": "20.55.14.190",
        "user_agent.original": NODE_SDK_UA,
        "repository": "evil-fork/cloud-snitch",
        "organization": "evil-fork",
        "resource.kind": "role",
        "resource.name": SNITCH_ROLE,
        "raw": None,
    }


def test_gitlab_subject_gives_project_top_group_and_branch() -> None:
    event = NORMALIZER.normalize(load("assume-role-web-identity-gitlab.json"))
    assert event.user_name == "project_path:acme/platform/deployer:ref_type:branch:ref:main"
    assert (event.repository, event.organization, event.branch) == (
        "acme/platform/deployer",
        "acme",
        "main",
    )
    assert (event.resource_kind, event.resource_name) == (
        "role",
        "arn:aws:iam::111122223333:role/gitlab-deployer",
    )
    assert event.timestamp == datetime(2025, 5, 2, 8, 14, 59, tzinfo=UTC)


@pytest.mark.parametrize(
    ("subject", "repository", "organization", "branch"),
    [
        (
            "repo:octo-org/octo-repo:ref:refs/heads/feature/oidc",
            "octo-org/octo-repo",
            "octo-org",
            "feature/oidc",
        ),
        ("repo:octo-org/octo-repo:ref:refs/tags/v1.2.0", "octo-org/octo-repo", "octo-org", None),
        ("repo:octo-org/octo-repo:environment:prod", "octo-org/octo-repo", "octo-org", None),
        ("repo:octo-org/octo-repo:pull_request", "octo-org/octo-repo", "octo-org", None),
        (
            "repo:octo-org/octo-repo:environment:prod:job_workflow_ref:"
            "octo-org/octo-automation/.github/workflows/oidc.yml@refs/heads/main",
            "octo-org/octo-repo",
            "octo-org",
            None,
        ),
        (
            "repository_owner_id:72338:repo:octo-org/octo-repo:ref:refs/heads/main",
            "octo-org/octo-repo",
            "octo-org",
            "main",
        ),
        (
            "project_path:agroup/bgroup/myproject:ref_type:tag:ref:v4.2.0",
            "agroup/bgroup/myproject",
            "agroup",
            None,
        ),
        (
            "project_path:acme/api:ref_type:branch:ref:main:environment:prod",
            "acme/api",
            "acme",
            "main",
        ),
        ("project_path:acme:ref_type:branch:ref:main", None, None, None),
        ("organization:acme:pipeline:deploy:ref:refs/heads/main:commit:abc123", None, None, None),
        ("system:serviceaccount:ci:deployer", None, None, None),
    ],
)
def test_workload_from_token_subject(
    subject: str, repository: str | None, organization: str | None, branch: str | None
) -> None:
    event = NORMALIZER.normalize(with_subject(subject))
    assert event.user_name == subject
    assert (event.repository, event.organization, event.branch) == (
        repository,
        organization,
        branch,
    )


def test_subject_is_taken_from_the_response_when_the_identity_has_no_user_name() -> None:
    record = github()
    del record["userIdentity"]["userName"]
    event = NORMALIZER.normalize(record)
    assert event.user_name == "repo:ccbrown/cloud-snitch:ref:refs/heads/main"
    assert event.repository == "ccbrown/cloud-snitch"


# Any CloudTrail record ----------------------------------------------------------------


def test_s3_delivery_file_is_split_into_its_records() -> None:
    records = delivered()
    assert [r["eventName"] for r in records] == [
        "AssumeRoleWithWebIdentity",
        "GetAuthorizationToken",
        "CreateAccessKey",
        "ConsoleLogin",
    ]
    assert all(NORMALIZER.matches(r) for r in records)


def test_web_identity_in_an_environment_has_no_branch() -> None:
    event = NORMALIZER.normalize(delivered()[0])
    assert event.user_name == "repo:acme/payments:environment:production"
    assert (event.repository, event.organization, event.branch) == ("acme/payments", "acme", None)
    assert event.resource_name == "arn:aws:iam::111122223333:role/payments-deploy"


def test_call_made_with_the_assumed_role_session() -> None:
    event = NORMALIZER.normalize(delivered()[1])
    assert event.to_dict() | {"raw": None} == {
        "@timestamp": "2025-04-16T02:47:02.000000Z",
        "event.id": "312fb2b6-33ac-4ac2-9a60-44abfb32f4ae",
        "event.source": "cloudtrail",
        "event.action": "GetAuthorizationToken",
        "event.category": ["api"],
        "event.type": ["access"],
        "event.outcome": "success",
        "user.name": "arn:aws:sts::111122223333:assumed-role/payments-deploy/GitHubActions",
        "user.id": "AROA4EXAMPLEROLEID123:GitHubActions",
        "source.ip": "52.154.133.36",
        "user_agent.original": NODE_SDK_UA,
        "token.id": "ASIA4EXAMPLEKEY12345",
        "raw": None,
    }


def test_iam_user_creating_an_access_key() -> None:
    event = NORMALIZER.normalize(delivered()[2])
    assert (event.event_action, event.event_category, event.event_type) == (
        "CreateAccessKey",
        ["api"],
        ["change"],
    )
    assert (event.user_name, event.user_id, event.user_type) == (
        "mary",
        "AIDA6ON6E4XEGIEXAMPLE",
        None,
    )
    assert (event.token_id, event.source_ip) == ("AKIAIOSFODNN7EXAMPLE", "198.51.100.23")
    assert event.resource_kind is None and event.repository is None


def test_failed_console_sign_in_without_error_code() -> None:
    record = delivered()[3]
    assert "errorCode" not in record
    event = NORMALIZER.normalize(record)
    assert (event.event_action, event.event_category, event.event_type) == (
        "ConsoleLogin",
        ["authentication"],
        ["start"],
    )
    assert event.event_outcome == "failure"
    assert event.token_id is None  # an empty accessKeyId is no key


def test_error_code_makes_any_call_a_failure() -> None:
    record = {**delivered()[2], "errorCode": "AccessDenied", "errorMessage": "not authorized"}
    assert NORMALIZER.normalize(record).event_outcome == "failure"


@pytest.mark.parametrize(
    ("address", "ip"),
    [
        ("AWS Internal", None),
        ("ec2.amazonaws.com", None),
        ("2001:db8::1", "2001:db8::1"),
        (None, None),
    ],
)
def test_source_ip_only_when_it_is_an_address(address: Any, ip: str | None) -> None:
    assert NORMALIZER.normalize(github(sourceIPAddress=address)).source_ip == ip


def test_aws_service_acting_is_named_by_the_service() -> None:
    record = {
        **delivered()[2],
        "userIdentity": {"type": "AWSService", "invokedBy": "autoscaling.amazonaws.com"},
        "eventType": "AwsServiceEvent",
    }
    event = NORMALIZER.normalize(record)
    assert event.user_name == "autoscaling.amazonaws.com"
    assert (event.event_category, event.event_type, event.user_type) == (None, None, None)


def test_role_arn_of_other_services_is_not_the_assumed_role() -> None:
    record = {**delivered()[2], "eventSource": "codebuild.amazonaws.com"}
    record["requestParameters"] = {"roleArn": "arn:aws:iam::111122223333:role/x"}
    assert NORMALIZER.normalize(record).resource_kind is None


def test_record_without_id_gets_a_content_id() -> None:
    record = github()
    del record["eventID"]
    assert NORMALIZER.normalize(record).event_id == content_id(record)


@pytest.mark.parametrize(
    ("event_time", "reason"),
    [
        (None, "CloudTrail record without `eventTime`"),
        ("2025-04-16 02:46:56", "bad eventTime: time has no zone"),
        ("16/04/2025", "bad eventTime: not an ISO 8601 time"),
        (1744771616, "bad eventTime: expected an ISO 8601 string, got int"),
        ("0001-01-01T00:00:00+01:00", "bad eventTime: "),
    ],
)
def test_bad_event_time_is_an_error_with_reason(event_time: Any, reason: str) -> None:
    with pytest.raises(NormalizationError) as caught:
        NORMALIZER.normalize(github(eventTime=event_time))
    assert str(caught.value).startswith(reason)


# Envelopes and detection --------------------------------------------------------------

S3_NOTIFICATION = {
    "eventVersion": "2.1",
    "eventSource": "aws:s3",
    "awsRegion": "us-east-1",
    "eventTime": "2025-04-16T02:46:56.000Z",
    "eventName": "ObjectCreated:Put",
    "userIdentity": {"principalId": "AWS:AIDA6ON6E4XEGIEXAMPLE"},
    "s3": {"bucket": {"name": "artifacts"}, "object": {"key": "build.tar"}},
}
GITHUB_AUDIT = {
    "@timestamp": 1741611463961,
    "_document_id": "Nm4EoecTsz6kAS-87bAEfA",
    "action": "repo.create",
    "actor": "user_actor",
    "org": "user-delete",
}
K8S_AUDIT = {
    "kind": "Event",
    "apiVersion": "audit.k8s.io/v1",
    "auditID": "abcde12345",
    "stage": "ResponseComplete",
    "verb": "get",
    "stageTimestamp": "2025-07-16T10:12:56.563177Z",
}


@pytest.mark.parametrize(
    "record",
    [
        S3_NOTIFICATION,
        GITHUB_AUDIT,
        K8S_AUDIT,
        {"eventSource": "sts.amazonaws.com", "eventName": "AssumeRole"},
        {
            "eventVersion": "1.08",
            "eventSource": ["sts.amazonaws.com"],
            "eventName": "X",
            "eventTime": "",
        },
        {
            "eventVersion": "1.08",
            "eventSource": "sts.amazonaws.com",
            "eventName": 7,
            "eventTime": "",
        },
    ],
)
def test_records_of_other_shapes_are_not_claimed(record: dict[str, Any]) -> None:
    assert NORMALIZER.matches(record) is False


def test_eventbridge_event_carries_one_record() -> None:
    record = load("assume-role-web-identity-github.json")
    wrapped = {
        "version": "0",
        "id": "6f2a4c2e-5c2a-4b8e-9d0e-1f6d2c8b7a11",
        "detail-type": "AWS API Call via CloudTrail",
        "source": "aws.sts",
        "account": "774305579662",
        "time": "2025-04-16T02:46:56Z",
        "region": "us-east-1",
        "resources": [],
        "detail": record,
    }
    assert NORMALIZER.unwrap(wrapped) == [record]


@pytest.mark.parametrize(
    "document",
    [
        {"Records": [S3_NOTIFICATION]},
        {"Records": [load("assume-role-web-identity-github.json")], "NextToken": "x"},
        {"Records": "none"},
        {"detail-type": "Object Created", "detail": S3_NOTIFICATION},
        {"detail-type": "AWS API Call via CloudTrail", "detail": GITHUB_AUDIT},
        {"events": []},
        load("assume-role-web-identity-github.json"),
    ],
)
def test_only_cloudtrail_envelopes_are_unwrapped(document: dict[str, Any]) -> None:
    assert NORMALIZER.unwrap(document) is None


def test_empty_delivery_file_has_no_records() -> None:
    assert NORMALIZER.unwrap({"Records": []}) == []


def sources_found(path: Path) -> list[str | None]:
    """The source the whole pipeline (every built-in normalizer) gives each record."""
    stage = NormalizeStage(build_registry(SourcesSettings()))
    results = (result for raw in read_paths([str(path)]) for result in stage.process(raw))
    return [r.event_source if isinstance(r, Event) else r.source for r in results]


def test_every_fixture_record_is_detected_as_cloudtrail() -> None:
    assert sources_found(CLOUDTRAIL) == ["cloudtrail"] * 7


def test_no_other_source_fixture_is_claimed_by_cloudtrail() -> None:
    others = [path for path in FIXTURES.iterdir() if path.is_dir() and path != CLOUDTRAIL]
    found = [source for path in others for source in sources_found(path)]
    assert len(found) > 20
    assert "cloudtrail" not in found


# Properties ---------------------------------------------------------------------------

#: Token subjects: GitHub and GitLab shapes with odd parts, and colon-separated noise.
SUBJECTS = st.from_regex(
    r"(repo:[a-z/]{0,4}/[a-z:]{0,4}(:ref:refs/heads/[a-z/:]{0,5})?"
    r"|project_path:[a-z/]{0,6}(:ref_type:(branch|tag):ref:[a-z]{0,3})?(:[a-z]{0,3})?)",
    fullmatch=True,
) | st.text(alphabet="repo:/abc_-", max_size=30)
CLOUDTRAIL_LIKE = st.fixed_dictionaries(
    {
        "eventVersion": JSON_VALUES,
        "eventSource": st.sampled_from(["sts.amazonaws.com", "iam.amazonaws.com"]) | JSON_VALUES,
        "eventName": st.sampled_from(["AssumeRoleWithWebIdentity", "ConsoleLogin"]) | JSON_VALUES,
        "eventTime": st.sampled_from(["2025-04-16T02:46:56Z", "2025-04-16"]) | JSON_VALUES,
    },
    optional={
        "eventID": JSON_VALUES,
        "eventType": st.just("AwsApiCall") | JSON_VALUES,
        "readOnly": JSON_VALUES,
        "errorCode": JSON_VALUES,
        "sourceIPAddress": JSON_VALUES,
        "userIdentity": st.fixed_dictionaries(
            {"type": st.just("WebIdentityUser") | JSON_VALUES},
            optional={"userName": JSON_VALUES, "arn": JSON_VALUES, "accessKeyId": JSON_VALUES},
        )
        | JSON_VALUES,
        "requestParameters": st.fixed_dictionaries({"roleArn": JSON_VALUES}) | JSON_VALUES,
        "responseElements": st.fixed_dictionaries(
            {"subjectFromWebIdentityToken": SUBJECTS | JSON_VALUES}
        )
        | JSON_VALUES,
    },
)
RECORDS = st.dictionaries(st.text(max_size=10), JSON_VALUES, max_size=6) | st.builds(
    lambda extra, base: {**extra, **base},
    st.dictionaries(st.text(max_size=10), JSON_VALUES, max_size=3),
    CLOUDTRAIL_LIKE,
)


@given(RECORDS)
def test_any_record_is_matched_to_a_bool_and_normalized_or_refused(record: dict[str, Any]) -> None:
    assert isinstance(NORMALIZER.matches(record), bool)
    try:
        event = NORMALIZER.normalize(record)
    except NormalizationError as exc:
        assert str(exc)
        return
    assert event.event_source == "cloudtrail" and event.raw is record
    assert orjson.loads(event.to_json())["event.id"] == event.event_id


@given(
    st.dictionaries(st.text(max_size=10), JSON_VALUES, max_size=3)
    | st.builds(
        lambda records: {"Records": records}, st.lists(CLOUDTRAIL_LIKE | JSON_VALUES, max_size=3)
    )
    | st.builds(
        lambda detail: {"detail-type": "AWS API Call via CloudTrail", "detail": detail},
        CLOUDTRAIL_LIKE | JSON_VALUES,
    )
)
def test_unwrap_of_any_document_is_none_or_its_records(document: dict[str, Any]) -> None:
    records = NORMALIZER.unwrap(document)
    assert records is None or records in (document.get("Records"), [document.get("detail")])


NAMES = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._-]{0,15}", fullmatch=True)
BRANCHES = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._/-]{0,20}", fullmatch=True)


@given(NAMES, NAMES, BRANCHES)
def test_any_github_branch_subject_gives_its_parts(owner: str, name: str, branch: str) -> None:
    event = NORMALIZER.normalize(with_subject(f"repo:{owner}/{name}:ref:refs/heads/{branch}"))
    assert (event.repository, event.organization, event.branch) == (
        f"{owner}/{name}",
        owner,
        branch,
    )


@given(st.lists(NAMES, min_size=2, max_size=4), BRANCHES)
def test_any_gitlab_branch_subject_gives_its_parts(path: list[str], branch: str) -> None:
    project = "/".join(path)
    event = NORMALIZER.normalize(
        with_subject(f"project_path:{project}:ref_type:branch:ref:{branch}")
    )
    assert (event.repository, event.organization, event.branch) == (project, path[0], branch)
