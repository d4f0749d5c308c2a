"""AWS CloudTrail records, and what a CI workload's OIDC role assumption tells about it.

Sigma rules with `product: aws, service: cloudtrail` (SigmaHQ's logsource) match the raw
record, so `eventSource`, `eventName`, `userIdentity.type`, `errorCode`... keep their
names. S3 delivery wraps records in `{"Records": [...]}` and EventBridge wraps one in
`detail`; CloudWatch Logs carries them bare.

Every record is normalized the same way:
- `event.action` is `eventName`, as SigmaHQ rules name calls (the service stays in raw
  `eventSource`); `event.outcome` is failure when the call has an `errorCode` (or is a
  console sign-in answered `Failure`, which has none), else success.
- `user.name` is the web identity token's subject, else `userIdentity.userName`, else the
  principal's ARN, else the AWS service that acted (`invokedBy`).
- `user.type` is `service_account` for a `WebIdentityUser`: a CI workload that federated
  with an OIDC token is a non-human identity named by the token's subject, like a
  Kubernetes service account. The other identity types do not tell humans from machines.
- `token.id` is `userIdentity.accessKeyId`, the id (not a secret) of the key a call was
  signed with. The credentials an STS call returns are never copied: `raw` keeps them
  and the output layer redacts them.
- For a web identity, `repository`, `organization` and `branch` come from the token
  subject when it has the default shape of GitHub Actions
  (`repo:ORG/REPO:ref:refs/heads/BRANCH`) or GitLab CI
  (`project_path:GROUP/PROJECT:ref_type:branch:ref:BRANCH`); the shape, not the issuer,
  is checked, so GitHub Enterprise Server and self-managed GitLab read the same.
- An STS call names the role it assumes: `resource.kind` role, `resource.name` its ARN.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any, Final

from detector.events import Event, Outcome
from detector.normalize.base import (
    NormalizationError,
    Normalizer,
    content_id,
    dig,
    ip,
    text,
    trusted_event,
)
from detector.timestamps import TimestampError, from_iso

#: Calls that sign a principal in or hand it credentials: ECS authentication / start.
_AUTHENTICATION_CALLS: Final = frozenset(
    (
        "AssumeRole",
        "AssumeRoleWithSAML",
        "AssumeRoleWithWebIdentity",
        "GetFederationToken",
        "GetSessionToken",
        "ConsoleLogin",
    )
)

_GITHUB_REPO: Final = re.compile(r"(?:^|:)repo:(?P<owner>[^:/]+)/(?P<name>[^:/]+)(?::|$)")
_GITHUB_BRANCH: Final = re.compile(r"(?:^|:)ref:refs/heads/(?P<branch>[^:]+)")
_GITLAB_FIRST_CLAIM: Final = "project_path"


class CloudTrailNormalizer(Normalizer):
    """CloudTrail events of any service, with the OIDC workload of a web identity."""

    name = "cloudtrail"
    product = "aws"
    service = "cloudtrail"

    def unwrap(self, document: dict[str, Any]) -> Sequence[Any] | None:
        """The records of an S3 delivery file, or the one in an EventBridge event."""
        # every document is asked: the cheapest test that rules it out goes first
        if len(document) == 1:
            records = document.get("Records")
            if not isinstance(records, list):
                return None
            if not records or any(isinstance(r, dict) and _is_cloudtrail(r) for r in records):
                return records
            return None
        detail_type = document.get("detail-type")
        if not isinstance(detail_type, str) or not detail_type.endswith("via CloudTrail"):
            return None
        detail = document.get("detail")
        if isinstance(detail, dict) and _is_cloudtrail(detail):
            return [detail]
        return None

    def matches(self, record: dict[str, Any]) -> bool:
        return _is_cloudtrail(record)

    def normalize(self, record: dict[str, Any]) -> Event:
        if record.get("eventTime") is None:
            raise NormalizationError("CloudTrail record without `eventTime`")
        try:
            timestamp = from_iso(record["eventTime"])
        except TimestampError as exc:
            raise NormalizationError(f"bad eventTime: {exc}") from exc
        action = text(record.get("eventName"))
        categories, types = _classify(record, action)
        web_identity = dig(record, "userIdentity", "type") == "WebIdentityUser"
        subject = _token_subject(record, web_identity)
        repository, organization, branch = _workload(subject)
        role = (
            text(dig(record, "requestParameters", "roleArn"))
            if record.get("eventSource") == "sts.amazonaws.com"
            else None
        )
        return trusted_event(
            timestamp=timestamp,
            event_id=text(record.get("eventID")) or content_id(record),
            event_source=self.name,
            event_action=action,
            event_category=categories,
            event_type=types,
            event_outcome=_outcome(record),
            user_name=subject or _principal_name(record),
            user_id=text(dig(record, "userIdentity", "principalId")),
            user_type="service_account" if web_identity else None,
            # A service acting for the caller writes its name here, not an IP.
            source_ip=ip(record.get("sourceIPAddress")),
            user_agent=text(record.get("userAgent")),
            repository=repository,
            organization=organization,
            branch=branch,
            resource_kind="role" if role is not None else None,
            resource_name=role,
            token_id=text(dig(record, "userIdentity", "accessKeyId")),
            raw=record,
        )


def _is_cloudtrail(record: dict[str, Any]) -> bool:
    """CloudTrail's own keys; an S3 event notification (`eventSource` `aws:s3`) is not."""
    source = record.get("eventSource")
    return (
        isinstance(source, str)
        and source.endswith(".amazonaws.com")
        and isinstance(record.get("eventName"), str)
        and "eventTime" in record
        and "eventVersion" in record
    )


def _classify(
    record: dict[str, Any], action: str | None
) -> tuple[list[str] | None, list[str] | None]:
    """ECS (event.category, event.type): sign-ins, else API calls by `readOnly`."""
    if action in _AUTHENTICATION_CALLS:
        return ["authentication"], ["start"]
    if record.get("eventType") != "AwsApiCall":
        return None, None
    read_only = record.get("readOnly")
    if isinstance(read_only, bool):
        return ["api"], ["access" if read_only else "change"]
    return ["api"], None


def _outcome(record: dict[str, Any]) -> Outcome:
    if text(record.get("errorCode")) is not None:
        return "failure"
    if dig(record, "responseElements", "ConsoleLogin") == "Failure":
        return "failure"
    return "success"


def _token_subject(record: dict[str, Any], web_identity: bool) -> str | None:
    """The `sub` claim of the OIDC token a web identity presented."""
    name = text(dig(record, "userIdentity", "userName")) if web_identity else None
    return name or text(dig(record, "responseElements", "subjectFromWebIdentityToken"))


def _principal_name(record: dict[str, Any]) -> str | None:
    for field in ("userName", "arn", "invokedBy"):
        value = text(dig(record, "userIdentity", field))
        if value is not None:
            return value
    return None


def _workload(subject: str | None) -> tuple[str | None, str | None, str | None]:
    """(repository, organization, branch) of a GitHub Actions or GitLab CI token subject.

    Neither repository paths nor git ref names can hold a colon, so splitting the subject
    on colons is exact. A tag, an environment or a pull request is not a branch.
    """
    if subject is None:
        return None, None, None
    github = _GITHUB_REPO.search(subject)
    if github is not None:
        owner = github["owner"]
        branch = _GITHUB_BRANCH.search(subject)
        return f"{owner}/{github['name']}", owner, branch["branch"] if branch else None
    parts = subject.split(":")
    if parts[0] == _GITLAB_FIRST_CLAIM and len(parts) % 2 == 0:
        claims = dict(zip(parts[::2], parts[1::2], strict=True))
        path = claims[_GITLAB_FIRST_CLAIM]
        group, slash, project = path.partition("/")
        if group and slash and project:
            ref = claims.get("ref") if claims.get("ref_type") == "branch" else None
            return path, group, ref or None
    return None, None, None
