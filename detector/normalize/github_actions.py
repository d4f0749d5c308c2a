"""GitHub Actions `workflow_job` and `workflow_run` webhook payloads (the POSTed JSON body).

Sigma logsource: `product: github`, `service: actions`. The Sigma taxonomy names the
technology in `product` (SigmaHQ already uses `github` for the audit log) and the log
of that technology in `service`; the webhook payloads are the Actions run/job log of
GitHub, and no SigmaHQ rule uses `service: actions`, so no audit-log rule is pointed at
payloads it was not written for. Mapping choices:

- Detection: a `workflow_job` object, or a `workflow_run` object with its `workflow`
  (both required by the `workflow_run` schemas) and no `deployment`: `deployment`,
  `deployment_status` and `deployment_review` payloads embed a `workflow_run` too.
- `@timestamp` is the time of the transition the delivery reports. `workflow_job`:
  `completed_at` for completed, `started_at` for in_progress, `created_at` for queued and
  waiting (older payloads without `created_at` fall back to `started_at`, which was set
  at queue time), the most advanced of the three for an unknown action.
  `workflow_run`: `updated_at` for every action, because `created_at` keeps the first
  attempt's time on a re-run and `run_started_at` is the attempt's start, not the moment
  it was completed or went in progress.
- `event.id`: the body carries no delivery id, so `<kind>:<id>:<run_attempt>:<action>`,
  the same on every redelivery; without `run_attempt` (older payloads) a hash of the
  body, so re-runs of one run never share an id.
- `event.action` is `<kind>.<action>` (`workflow_job.completed`).
- `user.*` is the person who caused the run: `workflow_run.triggering_actor` (who started
  this attempt; differs from `actor` on a re-run), else `workflow_run.actor`, else
  `sender`; a job carries no actor of its own, so `sender`. `User` is `human`, `Bot` is
  `bot`, other account types stay untyped.
- `event.outcome` only on `completed`: `success` is success; `failure`, `timed_out`,
  `cancelled` and `startup_failure` are failure (the run did not do its job, as a
  Jenkins ABORTED build); `skipped`, `neutral`, `action_required`, `stale` are unknown.
- `event.category` is `process` (a run or job is a unit of execution); `event.type` is
  `start` for in_progress, `end` for completed, `info` otherwise.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Final

from detector.events import Event, Outcome, UserType
from detector.normalize.base import (
    NormalizationError,
    Normalizer,
    content_id,
    dig,
    text,
    trusted_event,
)
from detector.timestamps import TimestampError, from_iso

_JOB: Final = "workflow_job"
_RUN: Final = "workflow_run"

#: Time fields tried in order, per kind and action; `None` key: an unknown action.
_TIME_FIELDS: Final[dict[str, dict[str | None, tuple[str, ...]]]] = {
    _JOB: {
        "completed": ("completed_at",),
        "in_progress": ("started_at",),
        "queued": ("created_at", "started_at"),
        "waiting": ("created_at", "started_at"),
        None: ("completed_at", "started_at", "created_at"),
    },
    _RUN: {None: ("updated_at",)},
}

_USER_TYPES: Final[dict[str, UserType]] = {"User": "human", "Bot": "bot"}

_OUTCOMES: Final[dict[str, Outcome]] = {
    "success": "success",
    "failure": "failure",
    "timed_out": "failure",
    "cancelled": "failure",
    "startup_failure": "failure",
}

_EVENT_TYPES: Final = {"in_progress": "start", "completed": "end"}


class GitHubActionsNormalizer(Normalizer):
    """Actions job/run webhooks; rules for `github`/`actions` see the payload as POSTed."""

    name = "github_actions"
    product = "github"
    service = "actions"

    def matches(self, record: dict[str, Any]) -> bool:
        return _kind(record) is not None

    def normalize(self, record: dict[str, Any]) -> Event:
        kind = _kind(record)
        if kind is None:
            raise NormalizationError("no workflow_job, or workflow_run with workflow, object")
        action = text(record.get("action"))
        if action is None:
            raise NormalizationError("no action")
        job_or_run: dict[str, Any] = record[kind]
        actor = _actor(record, kind)
        return trusted_event(
            timestamp=_timestamp(job_or_run, kind, action),
            event_id=_event_id(record, job_or_run, kind, action),
            event_source=self.name,
            event_action=f"{kind}.{action}",
            event_category=["process"],
            event_type=[_EVENT_TYPES.get(action, "info")],
            event_outcome=_outcome(job_or_run, action),
            user_name=text(dig(actor, "login")),
            user_id=text(dig(actor, "id")),
            user_type=_user_type(dig(actor, "type")),
            repository=text(dig(record, "repository", "full_name")),
            organization=text(dig(record, "organization", "login")),
            resource_kind=kind,
            resource_name=_resource_name(record, job_or_run, kind),
            branch=text(job_or_run.get("head_branch")),
            raw=record,
        )


def _kind(record: dict[str, Any]) -> str | None:
    """`workflow_job` or `workflow_run` for a payload of that webhook event, else None."""
    if not isinstance(record.get("repository"), dict):
        return None
    if isinstance(record.get(_JOB), dict):
        return _JOB
    if (
        isinstance(record.get(_RUN), dict)
        and isinstance(record.get("workflow"), dict)
        and "deployment" not in record
    ):
        return _RUN
    return None


def _timestamp(job_or_run: dict[str, Any], kind: str, action: str) -> datetime:
    by_action = _TIME_FIELDS[kind]
    fields = by_action.get(action, by_action[None])
    for field in fields:
        value = job_or_run.get(field)
        if value is None:
            continue
        try:
            return from_iso(value)
        # OverflowError: an offset that moves the time past year 1 or 9999.
        except (TimestampError, OverflowError) as exc:
            raise NormalizationError(f"bad {kind}.{field}: {exc}") from exc
    raise NormalizationError(f"no {' or '.join(fields)} in {kind} for action {action!r}")


def _event_id(record: dict[str, Any], job_or_run: dict[str, Any], kind: str, action: str) -> str:
    own_id = text(job_or_run.get("id"))
    attempt = text(job_or_run.get("run_attempt"))
    if own_id is None or attempt is None:
        return content_id(record)
    return f"{kind}:{own_id}:{attempt}:{action}"


def _actor(record: dict[str, Any], kind: str) -> dict[str, Any] | None:
    """The account that caused this run or job (see the module docstring)."""
    run: dict[str, Any] = record[_RUN] if kind == _RUN else {}
    for candidate in (run.get("triggering_actor"), run.get("actor"), record.get("sender")):
        if isinstance(candidate, dict) and text(candidate.get("login")) is not None:
            return candidate
    return None


def _user_type(value: Any) -> UserType | None:
    return _USER_TYPES.get(value) if isinstance(value, str) else None


def _outcome(job_or_run: dict[str, Any], action: str) -> Outcome | None:
    if action != "completed":
        return None
    conclusion = job_or_run.get("conclusion")
    return _OUTCOMES.get(conclusion, "unknown") if isinstance(conclusion, str) else "unknown"


def _resource_name(record: dict[str, Any], job_or_run: dict[str, Any], kind: str) -> str | None:
    """The job name, or the run's name (empty in some payloads), else its workflow's."""
    name = text(job_or_run.get("name"))
    if name is None and kind == _RUN:
        return text(dig(record, "workflow", "name"))
    return name
