"""GitLab response actions, through python-gitlab against REST API v4.

python-gitlab is synchronous, so every call runs in a worker thread. It would sleep and retry
on 429 by itself; that is switched off (`obey_rate_limit=False`) because retries belong to
the responder core. Cancel answers 200 whatever the pipeline's state, so `verify` re-reads it.
"""

from __future__ import annotations

import asyncio
from abc import abstractmethod
from collections.abc import Callable, Mapping
from typing import Any, ClassVar, Final, TypeVar

import gitlab
import requests
from gitlab.exceptions import GitlabError
from pydantic import BaseModel, ConfigDict, Field

from detector.redact import redact_text
from detector.respond.actions.base import (
    Action,
    ActionError,
    ActionOutcome,
    Target,
    register,
)
from detector.respond.actions.errors import status_error

#: Passed to every call: no sleeping through rate limits inside the action.
ONCE: Final[dict[str, Any]] = {"obey_rate_limit": False}
#: User states in which the user cannot sign in or use the API.
BLOCKED: Final = frozenset({"blocked", "ldap_blocked"})
#: Pipeline states in which nothing runs any more.
FINISHED: Final = frozenset({"canceled", "success", "failed", "skipped"})

T = TypeVar("T")


class _Params(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


def action_error(
    action: str,
    error: GitlabError | requests.RequestException,
    headers: Mapping[str, str] | None = None,
) -> ActionError:
    """The `ActionError` for a failed call; the token never appears in it. `headers`: those
    of the failed answer (python-gitlab's errors do not keep them), for the wait it asks."""
    if isinstance(error, requests.exceptions.SSLError):
        return ActionError(f"{action}: TLS verification of the GitLab API failed")
    if isinstance(error, requests.RequestException):
        return ActionError(f"{action}: GitLab unreachable: {type(error).__name__}", retryable=True)
    status = error.response_code
    hint = {
        400: "GitLab refused the request",
        401: "the token is invalid, expired or revoked",
        403: "the token lacks the scope or role",
        404: "not found, or not visible to the token",
        409: "conflicts with the current state",
        422: "GitLab refused the request",
        429: "GitLab rate limit",
    }.get(status or 0, "GitLab failed")
    detail = redact_text(str(error.error_message or ""))[:200]
    return status_error(
        f"{action}: {status} {hint}" + (f": {detail}" if detail else ""), status, headers
    )


def not_found(error: GitlabError) -> bool:
    return error.response_code == 404


class GitLabAction(Action[Any]):
    """Shared plumbing: a client per call, run in a thread, errors translated."""

    system = "gitlab"

    def _client(self) -> gitlab.Gitlab:
        token = self.connection.token.read() if self.connection.token is not None else None
        return gitlab.Gitlab(
            self.connection.url,
            private_token=token,
            ssl_verify=self.connection.verify_tls,
            timeout=self.connection.timeout_seconds,
            retry_transient_errors=False,
            user_agent="detector-responder",
        )

    async def call(self, work: Callable[[gitlab.Gitlab], T]) -> T:
        """Run `work` with a fresh client in a worker thread."""

        answers: list[requests.Response] = []

        def run() -> T:
            with self._client() as client:
                client.session.hooks["response"].append(
                    lambda response, *args, **kwargs: answers.append(response)
                )
                return work(client)

        try:
            return await asyncio.to_thread(run)
        except (GitlabError, requests.RequestException) as error:
            failed = answers[-1] if answers and isinstance(error, GitlabError) else None
            headers = failed.headers if failed is not None else None
            raise action_error(self.name, error, headers) from None


# --- tokens -------------------------------------------------------------------------------


class _RevokeToken(GitLabAction):
    """Revoke an access token: read it first, so that a revoked or missing one is 'already'."""

    permissions = ("api scope",)
    reversible = False
    kind: ClassVar[str]

    @abstractmethod
    def tokens(self, client: gitlab.Gitlab, params: Any) -> Any:
        """The python-gitlab manager that holds the token."""

    def targets(self, params: Any) -> list[Target]:
        return [Target(kind="identity", system="gitlab", name=f"{self.kind}:{params.token_id}")]

    def _revoked(self, client: gitlab.Gitlab, params: Any) -> bool:
        try:
            token = self.tokens(client, params).get(params.token_id, **ONCE)
        except GitlabError as error:
            if not_found(error):
                return True
            raise
        return bool(token.revoked) or not token.active

    async def execute(self, params: Any) -> ActionOutcome:
        def revoke(client: gitlab.Gitlab) -> bool:
            if self._revoked(client, params):
                return False
            try:
                self.tokens(client, params).delete(params.token_id, **ONCE)
            except GitlabError as error:
                if not_found(error):
                    return False
                raise
            return True

        if await self.call(revoke):
            return ActionOutcome(state="done", detail=f"{self.kind} {params.token_id} revoked")
        return ActionOutcome(state="already_done", detail="revoked, expired or gone already")

    async def verify(self, params: Any) -> bool:
        return await self.call(lambda client: self._revoked(client, params))


class PersonalTokenParams(_Params):
    token_id: int


@register
class RevokePersonalToken(_RevokeToken):
    name = "gitlab.revoke_personal_token"
    description = "Revoke a personal access token (administrators can revoke anyone's)."
    permissions = ("api scope; administrator for other users' tokens",)
    params_model = PersonalTokenParams
    kind = "personal_access_token"

    def tokens(self, client: gitlab.Gitlab, params: PersonalTokenParams) -> Any:
        return client.personal_access_tokens


class ProjectTokenParams(_Params):
    project: int | str = Field(description="Project id or full path.")
    token_id: int


@register
class RevokeProjectToken(_RevokeToken):
    name = "gitlab.revoke_project_token"
    description = "Revoke a project access token."
    permissions = ("api scope; Maintainer role on the project",)
    params_model = ProjectTokenParams
    kind = "project_access_token"

    def tokens(self, client: gitlab.Gitlab, params: ProjectTokenParams) -> Any:
        return client.projects.get(params.project, lazy=True).access_tokens


class GroupTokenParams(_Params):
    group: int | str = Field(description="Group id or full path.")
    token_id: int


@register
class RevokeGroupToken(_RevokeToken):
    name = "gitlab.revoke_group_token"
    description = "Revoke a group access token."
    permissions = ("api scope; Owner role on the group",)
    params_model = GroupTokenParams
    kind = "group_access_token"

    def tokens(self, client: gitlab.Gitlab, params: GroupTokenParams) -> Any:
        return client.groups.get(params.group, lazy=True).access_tokens


# --- users ----------------------------------------------------------------------------------


class UserParams(_Params):
    user_id: int
    username: str | None = Field(default=None, description="For protected-identity checks.")


@register
class BlockUser(GitLabAction):
    name = "gitlab.block_user"
    description = "Block a user: no sign-in, no API, no Git (undo: unblock)."
    permissions = ("api scope; administrator",)
    reversible = True
    params_model = UserParams

    def targets(self, params: UserParams) -> list[Target]:
        return [
            Target(kind="identity", system="gitlab", name=params.username or str(params.user_id))
        ]

    async def execute(self, params: UserParams) -> ActionOutcome:
        def block(client: gitlab.Gitlab) -> str | None:
            user = client.users.get(params.user_id, **ONCE)
            if user.state in BLOCKED:
                return str(user.state)
            user.block(**ONCE)
            return None

        if already := await self.call(block):
            return ActionOutcome(state="already_done", detail=f"user is {already}")
        return ActionOutcome(state="done", detail=f"user {params.user_id} blocked")

    async def verify(self, params: UserParams) -> bool:
        state = await self.call(lambda client: client.users.get(params.user_id, **ONCE).state)
        return state in BLOCKED

    async def undo(self, params: UserParams, outcome: ActionOutcome) -> ActionOutcome:
        if outcome.state == "already_done":
            return ActionOutcome(state="already_done", detail="the block was not ours to lift")
        await self.call(lambda client: client.users.get(params.user_id, lazy=True).unblock(**ONCE))
        return ActionOutcome(state="done", detail=f"user {params.user_id} unblocked")


# --- runners --------------------------------------------------------------------------------


class RunnerParams(_Params):
    runner_id: int


@register
class PauseRunner(GitLabAction):
    name = "gitlab.pause_runner"
    description = "Pause a runner so it takes no new jobs; running jobs go on (undo: resume)."
    permissions = (
        "api or manage_runner scope; Maintainer (project runner), Owner (group runner) "
        "or administrator (instance runner)",
    )
    reversible = True
    params_model = RunnerParams

    def targets(self, params: RunnerParams) -> list[Target]:
        return [Target(kind="resource", system="gitlab", name=f"runner:{params.runner_id}")]

    async def _paused(self, params: RunnerParams) -> bool:
        return await self.call(
            lambda client: bool(client.runners.get(params.runner_id, **ONCE).paused)
        )

    async def _set(self, params: RunnerParams, paused: bool) -> None:
        await self.call(
            lambda client: client.runners.update(params.runner_id, {"paused": paused}, **ONCE)
        )

    async def execute(self, params: RunnerParams) -> ActionOutcome:
        if await self._paused(params):
            return ActionOutcome(state="already_done", detail="runner is paused")
        await self._set(params, paused=True)
        return ActionOutcome(state="done", detail=f"runner {params.runner_id} paused")

    async def verify(self, params: RunnerParams) -> bool:
        return await self._paused(params)

    async def undo(self, params: RunnerParams, outcome: ActionOutcome) -> ActionOutcome:
        if outcome.state == "already_done":
            return ActionOutcome(state="already_done", detail="the pause was not ours to lift")
        await self._set(params, paused=False)
        return ActionOutcome(state="done", detail=f"runner {params.runner_id} resumed")


# --- pipelines ------------------------------------------------------------------------------


class PipelineParams(_Params):
    project: int | str = Field(description="Project id or full path.")
    pipeline_id: int


@register
class CancelPipeline(GitLabAction):
    name = "gitlab.cancel_pipeline"
    description = "Cancel a pipeline's jobs; verified by re-reading its status."
    permissions = ("api scope; Developer role on the project",)
    reversible = False
    params_model = PipelineParams

    def targets(self, params: PipelineParams) -> list[Target]:
        name = f"{params.project}/pipelines/{params.pipeline_id}"
        return [Target(kind="resource", system="gitlab", name=name)]

    async def _status(self, params: PipelineParams) -> str:
        return await self.call(
            lambda client: str(
                client.projects.get(params.project, lazy=True)
                .pipelines.get(params.pipeline_id, **ONCE)
                .status
            )
        )

    async def execute(self, params: PipelineParams) -> ActionOutcome:
        status = await self._status(params)
        if status in FINISHED:
            return ActionOutcome(state="already_done", detail=f"pipeline is {status}")
        await self.call(
            lambda client: (
                client.projects.get(params.project, lazy=True)
                .pipelines.get(params.pipeline_id, lazy=True)
                .cancel(**ONCE)
            )
        )
        return ActionOutcome(state="done", detail=f"cancel requested (pipeline was {status})")

    async def verify(self, params: PipelineParams) -> bool:
        return await self._status(params) in FINISHED


class ScheduleParams(_Params):
    project: int | str = Field(description="Project id or full path.")


@register
class DeactivateSchedules(GitLabAction):
    name = "gitlab.deactivate_schedules"
    description = "Deactivate a project's active pipeline schedules; undo re-activates those."
    permissions = ("api scope; Maintainer role, or owning the schedules",)
    reversible = True
    params_model = ScheduleParams

    def targets(self, params: ScheduleParams) -> list[Target]:
        return [Target(kind="resource", system="gitlab", name=f"{params.project}/schedules")]

    def _schedules(self, client: gitlab.Gitlab, params: ScheduleParams) -> Any:
        return client.projects.get(params.project, lazy=True).pipelineschedules

    def _active(self, client: gitlab.Gitlab, params: ScheduleParams) -> list[int]:
        return [
            schedule.id
            for schedule in self._schedules(client, params).list(get_all=True, **ONCE)
            if schedule.active
        ]

    async def execute(self, params: ScheduleParams) -> ActionOutcome:
        def deactivate(client: gitlab.Gitlab) -> list[int]:
            active = self._active(client, params)
            for schedule_id in active:
                self._schedules(client, params).update(schedule_id, {"active": False}, **ONCE)
            return active

        # A failure part-way leaves some schedules inactive; a repeat finishes the rest.
        done = await self.call(deactivate)
        if not done:
            return ActionOutcome(state="already_done", detail="no active schedule")
        return ActionOutcome(
            state="done",
            detail=f"deactivated schedules {done}",
            undo_state={"schedule_ids": list(done)},
        )

    async def verify(self, params: ScheduleParams) -> bool:
        return not await self.call(lambda client: self._active(client, params))

    async def undo(self, params: ScheduleParams, outcome: ActionOutcome) -> ActionOutcome:
        ids = outcome.undo_state.get("schedule_ids")
        if not isinstance(ids, list) or not ids:
            return ActionOutcome(state="already_done", detail="no schedule was deactivated")

        def reactivate(client: gitlab.Gitlab) -> list[int]:
            gone = []
            for schedule_id in ids:
                try:
                    self._schedules(client, params).update(schedule_id, {"active": True}, **ONCE)
                except GitlabError as error:
                    if not not_found(error):
                        raise
                    gone.append(int(str(schedule_id)))
            return gone

        gone = await self.call(reactivate)
        detail = f"re-activated schedules {ids}" + (f"; deleted since: {gone}" if gone else "")
        return ActionOutcome(state="done", detail=detail)
