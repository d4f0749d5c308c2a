"""GitLab audit events: streaming deliveries, REST API elements and `audit_json.log` lines.

The three shapes carry the same event:

- streaming: `id` is text (the database id, or a UUID for stream-only types);
  `author_name`, `entity_path`, `target_*`, `ip_address` and `event_type` are top level,
  with copies in `details`;
- REST (`GET /audit_events`, `/groups/:id/audit_events`, `/projects/:id/audit_events`):
  `id` is an integer; older elements carry those fields only inside `details` and have no
  `event_type`;
- `audit_json.log`: the stored columns with `details` also merged into the top level, plus
  the logger's `severity`, `time` and `correlation_id`; old releases wrote neither `id` nor
  `created_at`.

Every field is read at the top level first, then in `details`. Mapping choices:

- `@timestamp` is `created_at`; a log line without one uses the logger's `time`, written
  when the event is recorded.
- `event.id` is `id` as text, so a streamed and an API copy of one event share it; a line
  without `id` gets a content hash.
- `event.action` is `event_type`, else `event_name` (the auditor stores the type name in
  `details` of every event it records). Older REST elements have neither; their `details`
  describe the change in prose keys (`add`, `change`, `custom_message`) that are not type
  names, so the action stays absent.
- `event.outcome` is failure for types containing `_failed` (`login_failed_with_*`,
  `*_creation_failed`) and follows `details.allowed` for `ip_restricted_group_accessed`.
  GitLab writes no outcome on other events, so none is set (as for GitHub).
- `event.category`/`event.type` come from `_CLASSIFICATION` (the security-relevant types);
  other types leave them absent. Values match the GitHub normalizer's for the same
  concepts: Git transfers and downloads are `api`/`access`, a skipped or bypassed push
  protection is `api`/`allowed`, membership changes are `iam` with `user`.
- `user.*` is the author. Negative `author_id`s are placeholders, not accounts (-1 an
  unauthenticated author or a runner registration token, -2 a deploy token, -3 a deploy
  key), so `user.id` stays absent for them while `user.name` keeps `author_name` (for a
  failed sign-in that is the login name tried).
- `user.type` follows `author_class`: deploy keys, deploy tokens and runner tokens are
  `token`; `User` is `human` unless its `author_email` is the generated address of a
  project/group access-token bot (`bot`) or of a service account (`service_account`);
  unauthenticated and unknown classes have no type. Without `author_class` the ids -2 and
  -3 still give `token`.
- Impersonation: GitLab records the impersonated user as the author and the administrator
  in `details.impersonated_by`. The flat model has no field for the real actor, so it
  stays in `raw`.
- `organization` is the first segment of `entity_path` for Group and Project entities
  only (a User entity's path is a username, the instance scope's is `gitlab_instance`);
  `repository` is `entity_path` for Project entities.
- `resource.kind`/`resource.name` are `target_type`/`target_details`; `branch` is
  `target_details` when the target is a `ProtectedBranch`; `token.id` is `target_id` when
  the target is a credential (group and project access tokens are `PersonalAccessToken`
  rows too).
"""

from __future__ import annotations

import re
from typing import Any, Final

from detector.events import Event, Outcome, UserType
from detector.normalize.base import (
    NormalizationError,
    Normalizer,
    content_id,
    first_time,
    ip,
    text,
    trusted_event,
)

#: Keys every shape of a GitLab audit event carries, and no other source combines.
_SIGNATURE: Final = ("author_id", "entity_id", "entity_type")

_TOKEN_AUTHORS: Final = frozenset(
    {
        "DeployKey",
        "DeployToken",
        "Gitlab::Audit::DeployKeyAuthor",
        "Gitlab::Audit::DeployTokenAuthor",
        "Gitlab::Audit::CiRunnerTokenAuthor",
        "Gitlab::Audit::RunnerRegistrationTokenAuthor",
    }
)
_DEPLOY_TOKEN_AUTHOR_ID: Final = -2
_DEPLOY_KEY_AUTHOR_ID: Final = -3

#: Generated addresses: `project_{id}_bot_{hex}@noreply.{host}`, `group_{id}_bot_...`.
_BOT_EMAIL: Final = re.compile(r"^(?:project|group)_\d+_bot_[0-9a-f]+@noreply\.", re.IGNORECASE)
#: Generated service-account addresses: `service_account_[group_{id}_]{hex}@noreply.{host}`.
_SERVICE_ACCOUNT_EMAIL: Final = re.compile(r"^service_account_[0-9a-z_]+@noreply\.", re.IGNORECASE)

_CREDENTIAL_TARGETS: Final = frozenset(
    {"PersonalAccessToken", "DeployToken", "DeployKey", "Clusters::AgentToken"}
)
_REPOSITORY_ENTITIES: Final = frozenset({"Project"})
_ORGANIZATION_ENTITIES: Final = frozenset({"Group", "Project"})

_IAM_CREATE: Final = (("iam",), ("creation",))
_IAM_DELETE: Final = (("iam",), ("deletion",))
_IAM_USER_CREATE: Final = (("iam",), ("user", "creation"))
_IAM_USER_CHANGE: Final = (("iam",), ("user", "change"))
_IAM_USER_DELETE: Final = (("iam",), ("user", "deletion"))
_CONFIG_CREATE: Final = (("configuration",), ("creation",))
_CONFIG_CHANGE: Final = (("configuration",), ("change",))
_CONFIG_DELETE: Final = (("configuration",), ("deletion",))
_CONFIG_ACCESS: Final = (("configuration",), ("access",))
_AUTH_START: Final = (("authentication",), ("start",))
_API_ACCESS: Final = (("api",), ("access",))
_API_ALLOWED: Final = (("api",), ("allowed",))

#: ECS (category, type) of the security-relevant event types.
_CLASSIFICATION: Final[dict[str, tuple[tuple[str, ...], tuple[str, ...]]]] = {
    # access tokens, deploy tokens and keys, other credentials
    "personal_access_token_created": _IAM_CREATE,
    "personal_access_token_revoked": _IAM_DELETE,
    "group_access_token_created": _IAM_CREATE,
    "group_access_token_deleted": _IAM_DELETE,
    "group_access_token_creation_failed": _IAM_CREATE,
    "project_access_token_created": _IAM_CREATE,
    "project_access_token_deleted": _IAM_DELETE,
    "project_access_token_creation_failed": _IAM_CREATE,
    "deploy_token_created": _IAM_CREATE,
    "group_deploy_token_created": _IAM_CREATE,
    "deploy_token_revoked": _IAM_DELETE,
    "deploy_token_destroyed": _IAM_DELETE,
    "deploy_key_added": _IAM_CREATE,
    "deploy_key_removed": _IAM_DELETE,
    "cluster_agent_token_created": _IAM_CREATE,
    "add_ssh_key": _IAM_CREATE,
    "add_gpg_key": _IAM_CREATE,
    "oauth_application_created": _IAM_CREATE,
    "user_authorized_oauth_application": _IAM_USER_CHANGE,
    # protected branches and environments
    "protected_branch_created": _CONFIG_CREATE,
    "protected_branch_removed": _CONFIG_DELETE,
    "protected_branch_updated": _CONFIG_CHANGE,
    "protected_branch_allow_force_push_updated": _CONFIG_CHANGE,
    "protected_branch_code_owner_approval_required_updated": _CONFIG_CHANGE,
    "environment_unprotected": _CONFIG_DELETE,
    "protected_environment_deploy_access_level_added": _CONFIG_CREATE,
    "deployment_approved": _CONFIG_CHANGE,
    # CI/CD variables
    "ci_variable_created": _CONFIG_CREATE,
    "ci_variable_updated": _CONFIG_CHANGE,
    "ci_variable_deleted": _CONFIG_DELETE,
    "ci_group_variable_created": _CONFIG_CREATE,
    "ci_group_variable_updated": _CONFIG_CHANGE,
    "ci_group_variable_deleted": _CONFIG_DELETE,
    "ci_instance_variable_created": _CONFIG_CREATE,
    "ci_instance_variable_updated": _CONFIG_CHANGE,
    "ci_instance_variable_deleted": _CONFIG_DELETE,
    "variable_viewed_api": _CONFIG_ACCESS,
    # runners
    "ci_runner_registered": _CONFIG_CREATE,
    "ci_runner_created": _CONFIG_CREATE,
    "ci_runner_unregistered": _CONFIG_DELETE,
    "ci_runners_bulk_deleted": _CONFIG_DELETE,
    "ci_runner_token_reset": _CONFIG_CHANGE,
    "ci_runner_assigned_to_project": _CONFIG_CHANGE,
    "allow_runner_registration_token_updated": _CONFIG_CHANGE,
    "runner_registration_enabled_updated": _CONFIG_CHANGE,
    # CI job token
    "secure_ci_job_token_inbound_disabled": _CONFIG_CHANGE,
    "secure_ci_job_token_project_added": _CONFIG_CHANGE,
    "secure_ci_job_token_policies_updated": _CONFIG_CHANGE,
    "user_authenticated_using_job_token": _AUTH_START,
    # repository access and project lifecycle
    "repository_git_operation": _API_ACCESS,
    "repository_download_operation": _API_ACCESS,
    "public_repository_download_operation": _API_ACCESS,
    "project_export_file_download_started": _API_ACCESS,
    "project_feature_repository_access_level_updated": _CONFIG_CHANGE,
    "project_feature_builds_access_level_updated": _CONFIG_CHANGE,
    "project_feature_container_registry_access_level_updated": _CONFIG_CHANGE,
    "project_destroyed": _CONFIG_DELETE,
    "project_deletion_marked": _CONFIG_DELETE,
    "project_fork_operation": _CONFIG_CREATE,
    "project_blobs_removal": _CONFIG_DELETE,
    "container_repository_tags_deleted": (("package",), ("deletion",)),
    # membership, administrators, sign-in
    "member_created": _IAM_USER_CREATE,
    "member_updated": _IAM_USER_CHANGE,
    "member_destroyed": _IAM_USER_DELETE,
    "user_admin_status_updated": (("iam",), ("user", "admin", "change")),
    "user_enable_admin_mode": (("iam",), ("admin", "change")),
    "user_impersonation": (("iam",), ("admin", "user", "info")),
    "user_disable_two_factor": _IAM_USER_CHANGE,
    "group_require_two_factor_authentication_updated": _CONFIG_CHANGE,
    "login_failed_with_standard_authentication": _AUTH_START,
    "login_failed_with_otp_authentication": _AUTH_START,
    "authenticated_with_password": _AUTH_START,
    "authenticated_with_group_saml": _AUTH_START,
    "ip_restrictions_changed": _CONFIG_CHANGE,
    "ip_restricted_group_accessed": (("network",), ("access",)),
    # secret push protection and security policies
    "skip_secret_push_protection": _API_ALLOWED,
    "group_secret_push_protection_updated": _CONFIG_CHANGE,
    "security_policy_delete": _CONFIG_DELETE,
    "security_policy_user_push_bypass": _API_ALLOWED,
    "policy_project_updated": _CONFIG_CHANGE,
    # the audit stream itself
    "create_event_streaming_destination": _CONFIG_CREATE,
    "update_event_streaming_destination": _CONFIG_CHANGE,
    "destroy_event_streaming_destination": _CONFIG_DELETE,
    "destroy_instance_event_streaming_destination": _CONFIG_DELETE,
    "deleted_group_audit_event_streaming_destination": _CONFIG_DELETE,
    "deleted_instance_audit_event_streaming_destination": _CONFIG_DELETE,
    "event_type_filters_created": _CONFIG_CREATE,
    "event_type_filters_deleted": _CONFIG_DELETE,
    "audit_events_streaming_instance_headers_create": _CONFIG_CREATE,
    "audit_events_streaming_instance_headers_destroy": _CONFIG_DELETE,
}


class GitLabAuditNormalizer(Normalizer):
    """GitLab audit events in every shape; `gitlab/audit` Sigma rules see the raw record."""

    name = "gitlab"
    product = "gitlab"
    service = "audit"

    def matches(self, record: dict[str, Any]) -> bool:
        return all(key in record for key in _SIGNATURE)

    def normalize(self, record: dict[str, Any]) -> Event:
        details = record.get("details")
        if details is None:
            details = {}
        elif not isinstance(details, dict):
            raise NormalizationError(f"details is a {type(details).__name__}, not an object")
        fields = _Fields(record, details)
        author_id = record.get("author_id")
        if author_id is not None and (
            isinstance(author_id, bool) or not isinstance(author_id, int)
        ):
            raise NormalizationError(f"author_id is a {type(author_id).__name__}, not an integer")
        action = _action(fields)
        category, types = _CLASSIFICATION.get(action or "", (None, None))
        entity_type = text(record.get("entity_type"))
        entity_path = fields.text("entity_path")
        target_type = fields.text("target_type")
        target_details = fields.text("target_details")
        return trusted_event(
            timestamp=first_time(record, ("created_at", "time")),
            event_id=_event_id(record),
            event_source=self.name,
            event_action=action,
            event_category=list(category) if category else None,
            event_type=list(types) if types else None,
            event_outcome=_outcome(action, fields),
            user_name=fields.text("author_name"),
            user_id=str(author_id) if author_id is not None and author_id > 0 else None,
            user_type=_user_type(fields, author_id),
            source_ip=ip(fields.text("ip_address")),
            repository=entity_path if entity_type in _REPOSITORY_ENTITIES else None,
            organization=_organization(entity_type, entity_path),
            resource_kind=target_type,
            resource_name=target_details,
            branch=target_details if target_type == "ProtectedBranch" else None,
            token_id=fields.text("target_id") if target_type in _CREDENTIAL_TARGETS else None,
            raw=record,
        )


class _Fields:
    """A field's value at the top level, else in `details` (older REST elements)."""

    def __init__(self, record: dict[str, Any], details: dict[str, Any]) -> None:
        self.record = record
        self.details = details

    def get(self, key: str) -> Any:
        value = self.record.get(key)
        return self.details.get(key) if value is None else value

    def text(self, key: str) -> str | None:
        return text(self.get(key))


def _event_id(record: dict[str, Any]) -> str:
    value = record.get("id")
    if value is None:
        return content_id(record)
    own = text(value)
    if own is None:
        raise NormalizationError("bad id: expected a non-empty string or an integer")
    return own


def _action(fields: _Fields) -> str | None:
    for key in ("event_type", "event_name"):
        value = fields.get(key)
        if value is None:
            continue
        if not isinstance(value, str):
            raise NormalizationError(f"{key} is a {type(value).__name__}, not a string")
        if value:
            return value
    return None


def _outcome(action: str | None, fields: _Fields) -> Outcome | None:
    if action is not None and "_failed" in action:
        return "failure"
    # GitLab records a refused token creation under the success type, saying so in words.
    message = fields.text("custom_message") or ""
    if message.startswith("Attempted to create") and "but failed" in message:
        return "failure"
    if action == "ip_restricted_group_accessed":
        allowed = fields.get("allowed")
        if isinstance(allowed, bool):
            return "success" if allowed else "failure"
    return None


def _user_type(fields: _Fields, author_id: int | None) -> UserType | None:
    author_class = fields.text("author_class")
    if author_class == "User":
        email = fields.text("author_email") or ""
        if _BOT_EMAIL.match(email):
            return "bot"
        if _SERVICE_ACCOUNT_EMAIL.match(email):
            return "service_account"
        return "human"
    if author_class in _TOKEN_AUTHORS:
        return "token"
    if author_class is None and author_id in (_DEPLOY_TOKEN_AUTHOR_ID, _DEPLOY_KEY_AUTHOR_ID):
        return "token"
    return None


def _organization(entity_type: str | None, entity_path: str | None) -> str | None:
    if entity_type not in _ORGANIZATION_ENTITIES or entity_path is None:
        return None
    return entity_path.split("/", 1)[0] or None
