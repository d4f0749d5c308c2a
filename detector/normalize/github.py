"""GitHub organization / enterprise audit log: REST export, audit log streaming, UI export.

Sigma rules with `product: github, service: audit` match the raw record, so GitHub's own
field names (`action`, `actor`, `repo`...) are never renamed; the normalized fields are
derived from them. One record is one audit entry; the REST API returns a JSON array of
them and streaming writes them as JSON lines, so there is no envelope to unwrap.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any, Final

from detector.events import Event, Outcome, UserType
from detector.json_keys import parsed_key
from detector.memo import remember
from detector.normalize.base import (
    NormalizationError,
    Normalizer,
    content_id,
    dig,
    first_time,
    ip,
    text,
    trusted_event,
)
from detector.timestamps import from_any, from_epoch

#: `category.verb` as GitHub names its audit actions (`repo.create`,
#: `org.members_can_update_protected_branches.disable`).
_ACTION_SHAPE: Final = re.compile(r"[a-z][a-z0-9_]*(?:\.[a-z0-9_]+)+")

#: Fields of the common audit field set that name who did it or where; an entry without
#: `_document_id` (older exports) still carries one of them next to its time.
_CONTEXT_FIELDS: Final = ("actor", "actor_id", "org", "org_id", "business", "business_id", "repo")

#: Keys of other sources whose records may also carry a dotted `action`: GitHub webhooks
#: (`workflow_run`, `workflow_job`, `sender`), registry notifications (`target`,
#: `request`), GitLab audit events, Kubernetes audit events, CloudTrail.
_FOREIGN_FIELDS: Final = frozenset(
    {
        "workflow_run",
        "workflow_job",
        "sender",
        "target",
        "request",
        "event_type",
        "author_id",
        "auditID",
        "apiVersion",
        "eventSource",
    }
)

#: Action texts met so far, and whether each has GitHub's shape: a stream repeats a few
#: hundred actions, and the expression costs more than looking one up (up to
#: `_ACTIONS_KEPT` of them, then it starts over).
_SHAPED: Final[dict[str, bool]] = {}
_ACTIONS_KEPT: Final = 4096

#: The allowed ECS `event.type` values of each ECS `event.category` used below
#: (ECS `ecs_flat.yml`, expected event types per category).
ECS_TYPES_BY_CATEGORY: Final[Mapping[str, frozenset[str]]] = {
    "api": frozenset(
        (
            "access",
            "admin",
            "allowed",
            "change",
            "creation",
            "deletion",
            "denied",
            "end",
            "info",
            "start",
            "user",
        )
    ),
    "authentication": frozenset(("start", "end", "info")),
    "configuration": frozenset(("access", "change", "creation", "deletion", "info")),
    "iam": frozenset(("admin", "change", "creation", "deletion", "group", "info", "user")),
    "process": frozenset(("access", "change", "end", "info", "start")),
    "vulnerability": frozenset(("info",)),
}

#: Actions whose meaning their category does not give: (event.category, event.type).
#: Git transfers and API calls are requests to GitHub (`api`); a rejected push and a
#: bypassed protection are a control denying or letting through a request; workflow
#: runs and jobs are the lifecycle of a process run on a runner.
ACTION_CLASSES: Final[Mapping[str, tuple[tuple[str, ...], tuple[str, ...]]]] = {
    "api.request": (("api",), ("access",)),
    "git.clone": (("api",), ("access",)),
    "git.fetch": (("api",), ("access",)),
    "git.push": (("api",), ("change",)),
    "repo.download_zip": (("api",), ("access",)),
    "protected_branch.rejected_ref_update": (("api",), ("denied",)),
    "protected_branch.policy_override": (("api",), ("allowed",)),
    "secret_scanning_push_protection.bypass": (("api",), ("allowed",)),
    "user.login": (("authentication",), ("start",)),
    "org.recovery_code_used": (("authentication",), ("start",)),
    "user.failed_login": (("authentication",), ("start",)),
    "user.logout": (("authentication",), ("end",)),
    "workflows.created_workflow_run": (("process",), ("start",)),
    "workflows.prepared_workflow_job": (("process",), ("start",)),
    "workflows.rerun_workflow_run": (("process",), ("start",)),
    "workflows.completed_workflow_run": (("process",), ("end",)),
    "workflows.cancel_workflow_run": (("process",), ("end",)),
}

#: ECS category by action category (the text before the first dot). Everything not
#: listed, and not a membership change (below), is a setting of a repository,
#: organization or enterprise: `configuration`.
CATEGORY_BY_PREFIX: Final[Mapping[str, str]] = {
    "team": "iam",
    "role": "iam",
    "user": "iam",
    "personal_access_token": "iam",
    "oauth_access": "iam",
    "oauth_authorization": "iam",
    "oauth_application": "iam",
    "integration": "iam",
    "integration_installation": "iam",
    "integration_installation_request": "iam",
    "public_key": "iam",
    "secret_scanning_alert": "vulnerability",
    "repository_vulnerability_alert": "vulnerability",
    "code_scanning": "vulnerability",
}

#: Action categories whose verbs may change who has access.
MEMBERSHIP_PREFIXES: Final = frozenset({"org", "business", "repo", "team"})
#: Verb words that make such an action a change of who has access (`org.add_member`,
#: `repo.remove_member`, `business.add_admin`): `iam`, with `user` in event.type ...
MEMBERSHIP_WORDS: Final = frozenset(
    {"member", "admin", "admins", "owner", "collaborator", "manager", "identity", "session"}
)
#: ... unless the verb sets a policy for members (`update_member_repository_creation_permission`,
#: `members_can_update_protected_branches.disable`): that is `configuration`.
POLICY_WORDS: Final = frozenset({"permission", "can"})
#: Verb words that grant administrative rights: they add `admin` to event.type.
ADMIN_WORDS: Final = frozenset({"admin", "admins", "owner"})

#: Verb words and the ECS event.type they give; the first such word of the verb wins
#: (`remove_self_hosted_runner` is a deletion, `runner_group_runners_added` a creation).
#: A verb without one (`update_member`, `disable_two_factor_requirement`) is a change.
VERB_TYPES: Final[Mapping[str, str]] = {
    **dict.fromkeys(
        [
            "create",
            "created",
            "add",
            "added",
            "register",
            "registered",
            "invite",
            "invited",
            "install",
            "installed",
            "generate",
            "generated",
            "granted",
        ],
        "creation",
    ),
    **dict.fromkeys(
        [
            "destroy",
            "destroyed",
            "delete",
            "deleted",
            "remove",
            "removed",
            "revoke",
            "revoked",
            "uninstall",
            "uninstalled",
        ],
        "deletion",
    ),
    **dict.fromkeys(["clone", "fetch", "download", "downloaded", "export", "exported"], "access"),
}

#: Verbs of entries that record a rejection or a failed attempt: `event.outcome` failure.
#: Every other entry records something that happened; GitHub writes no outcome for it,
#: so none is set (`api.request` carries its HTTP status and gets one from it).
FAILURE_VERBS: Final = frozenset(
    {
        "rejected_ref_update",
        "request_denied",
        "reject_workflow_job",
        "deny",
        "failed_login",
        "recovery_code_failed",
    }
)

#: resource.kind and the fields naming it (most specific first) for verbs containing a
#: word: runners and secrets appear under several categories (`org.`, `repo.`...).
RESOURCE_BY_VERB_PART: Final[tuple[tuple[str, str, tuple[str, ...]], ...]] = (
    ("runner_group", "runner_group", ("runner_group_name", "runner_group_id")),
    ("self_hosted_runner", "runner", ("runner_name", "runner_id")),
    ("jit_runner", "runner", ("runner_name", "runner_id")),
    ("_secret", "secret", ("key",)),
    ("_variable", "variable", ("key",)),
)
#: resource.kind and the fields naming it, by action category.
RESOURCE_BY_PREFIX: Final[Mapping[str, tuple[str, tuple[str, ...]]]] = {
    "hook": ("hook", ("hook_id",)),
    "integration": ("integration", ("integration",)),
    "integration_installation": ("integration", ("integration",)),
    "integration_installation_request": ("integration", ("integration",)),
    "oauth_application": ("oauth_application", ("oauth_application",)),
    "personal_access_token": ("personal_access_token", ("user_programmatic_access_name",)),
    "team": ("team", ("team",)),
    "role": ("role", ("name",)),
    "environment": ("environment", ("name", "environment_name")),
    "workflows": ("workflow", ("name", "workflow_id")),
}

_HEADS: Final = "refs/heads/"
#: the keys every entry is read for, as orjson's key objects (see `detector.json_keys`):
#: an entry has more than five keys, so a look-up by an equal string compares by value
_ACTION: Final = parsed_key("action")
_DOCUMENT_ID: Final = parsed_key("_document_id")
_ACTOR: Final = parsed_key("actor")
_ACTOR_ID: Final = parsed_key("actor_id")
_ACTOR_IP: Final = parsed_key("actor_ip")
_USER_AGENT: Final = parsed_key("user_agent")
_REPO: Final = parsed_key("repo")
_ORG: Final = parsed_key("org")
_TOKEN_ID: Final = parsed_key("token_id")
_TIMES: Final = (parsed_key("@timestamp"), parsed_key("created_at"))


class GitHubAuditNormalizer(Normalizer):
    """Audit entries of GitHub organizations and enterprises.

    `user.*` describe the actor (`actor`, `actor_id`), not the affected `user`. The actor's
    `user.type` is `bot` for GitHub App and bot accounts (`actor_is_bot`, or a login ending
    in `[bot]`) and `human` for any other account, also when it acted with a personal
    access token: the token is an attribute of the request (`token.id`), not an identity.
    """

    name = "github"
    product = "github"
    service = "audit"

    def matches(self, record: dict[str, Any]) -> bool:
        action = record.get(_ACTION)
        if not isinstance(action, str) or not _shaped(action):
            return False
        if not record.keys().isdisjoint(_FOREIGN_FIELDS):
            return False
        if isinstance(record.get("repository"), dict):
            return False
        if isinstance(record.get(_DOCUMENT_ID), str):
            return True
        timed = record.get("@timestamp") is not None or record.get("created_at") is not None
        return timed and any(text(record.get(key)) for key in _CONTEXT_FIELDS)

    def normalize(self, record: dict[str, Any]) -> Event:
        action = record.get(_ACTION)
        if not isinstance(action, str) or not action:
            raise NormalizationError("GitHub audit entry without a string `action`")
        prefix, _, verb = action.partition(".")
        categories, types = classify(action)
        actor = text(record.get(_ACTOR))
        kind, resource = _resource(record, prefix, verb)
        return trusted_event(
            timestamp=_event_time(record),
            event_id=text(record.get(_DOCUMENT_ID)) or content_id(record),
            event_source=self.name,
            event_action=action,
            event_category=list(categories),
            event_type=list(types),
            event_outcome=_outcome(record, action, verb),
            user_name=actor,
            user_id=text(record.get(_ACTOR_ID)),
            user_type=_actor_type(record, actor),
            source_ip=ip(record.get(_ACTOR_IP)),
            user_agent=text(record.get(_USER_AGENT)),
            repository=text(record.get(_REPO)) or text(record.get("repository")),
            organization=text(record.get(_ORG)) or text(record.get("business")),
            resource_kind=kind,
            resource_name=resource,
            branch=_branch(record, prefix),
            token_id=text(record.get(_TOKEN_ID)),
            raw=record,
        )


def classify(action: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """ECS (event.category, event.type) of an action, from the tables above."""
    if action in ACTION_CLASSES:
        return ACTION_CLASSES[action]
    prefix, _, verb = action.partition(".")
    words = re.split(r"[._]", verb)
    category = CATEGORY_BY_PREFIX.get(prefix, "configuration")
    membership = (
        prefix in MEMBERSHIP_PREFIXES
        and not MEMBERSHIP_WORDS.isdisjoint(words)
        and POLICY_WORDS.isdisjoint(words)
    )
    if membership:
        category = "iam"
    allowed = ECS_TYPES_BY_CATEGORY[category]
    # The verb leads (`create_actions_secret`) or trails (`access_granted`); words in
    # between are objects (`enable_for_installed_apps` installs nothing).
    verb_type = next(
        (VERB_TYPES[word] for word in (words[0], words[-1]) if word in VERB_TYPES), "change"
    )
    types: list[str] = []
    if prefix == "team":
        types.append("group")
    if membership:
        types.append("user")
        if not ADMIN_WORDS.isdisjoint(words):
            types.append("admin")
    types.append(verb_type if verb_type in allowed else "info")
    return (category,), tuple(types)


def _event_time(record: dict[str, Any]) -> datetime:
    """`@timestamp` (when it happened), else `created_at` (when it was recorded).

    Both are epoch milliseconds in the API and streams; exports and re-shippers may
    write ISO 8601 text, which must carry its zone.
    """
    return first_time(record, _TIMES, _parse_time)


def _shaped(action: str) -> bool:
    """`action` has the shape of GitHub's audit actions (`_ACTION_SHAPE`)."""
    shaped = _SHAPED.get(action)
    if shaped is None:
        shaped = remember(
            _SHAPED, action, _ACTION_SHAPE.fullmatch(action) is not None, _ACTIONS_KEPT
        )
    return shaped


def _parse_time(value: Any) -> datetime:
    return from_any(value) if isinstance(value, str) else from_epoch(value, "ms")


def _outcome(record: dict[str, Any], action: str, verb: str) -> Outcome | None:
    if action == "api.request":
        status = record.get("status_code")
        if isinstance(status, int) and not isinstance(status, bool):
            return "success" if status < 400 else "failure"
        return None
    return "failure" if verb in FAILURE_VERBS else None


def _actor_type(record: dict[str, Any], actor: str | None) -> UserType | None:
    if record.get("actor_is_bot") is True or (actor is not None and actor.endswith("[bot]")):
        return "bot"
    return "human" if actor is not None else None


def _extra(record: dict[str, Any], field: str) -> str | None:
    """An action-specific field: top level, or under `data` in the older export shape."""
    value = record.get(field)
    return text(value if value is not None else dig(record, "data", field))


def _resource(record: dict[str, Any], prefix: str, verb: str) -> tuple[str | None, str | None]:
    rules = [(kind, fields) for part, kind, fields in RESOURCE_BY_VERB_PART if part in verb]
    if prefix in RESOURCE_BY_PREFIX:
        rules.append(RESOURCE_BY_PREFIX[prefix])
    for kind, fields in rules:
        for field in fields:
            value = _extra(record, field)
            if value is not None:
                return kind, value
    return None, None


def _branch(record: dict[str, Any], prefix: str) -> str | None:
    """The branch the entry is about, without `refs/heads/`; tags and other refs are not."""
    for field in ("branch", "head_branch"):
        value = _extra(record, field)
        if value is not None:
            return _branch_of(value)
    if prefix == "protected_branch":
        name = _extra(record, "name")
        if name is not None:
            return _branch_of(name)
    ref = _extra(record, "ref")
    if ref is not None and ref.startswith(_HEADS):
        return _branch_of(ref)
    return None


def _branch_of(value: str) -> str | None:
    if value.startswith(_HEADS):
        return value[len(_HEADS) :] or None
    return None if value.startswith("refs/") else value
