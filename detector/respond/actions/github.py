"""GitHub response actions, through githubkit against REST API version 2022-11-28.

Each action re-reads its target for `verify`, since several calls answer before the change
is visible (run cancel answers 202). Errors become `ActionError`: 429, 5xx and timeouts are
retryable, the rest (401, 403, 404 where it is not 'already gone', 409, 422) are not.
A rate limit answered as 403 with `x-ratelimit-remaining: 0` counts as a 429.
"""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, Final

from githubkit import GitHub, TokenAuthStrategy, UnauthAuthStrategy
from githubkit.exception import RateLimitExceeded, RequestError, RequestFailed
from pydantic import BaseModel, ConfigDict, Field, SecretStr

from detector.redact import redact_text
from detector.respond.actions.base import (
    Action,
    ActionError,
    ActionOutcome,
    SystemConnection,
    Target,
    register,
)
from detector.respond.actions.errors import status_error

API_VERSION: Final = "2022-11-28"


class _Params(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


def _ssl_verify(connection: SystemConnection) -> bool | ssl.SSLContext:
    if isinstance(connection.verify_tls, str):
        return ssl.create_default_context(cafile=connection.verify_tls)
    return connection.verify_tls


def _client(connection: SystemConnection, *, token: str | None) -> GitHub[Any]:
    """One client per call; no retries or caching here, the responder core decides retries."""
    auth = TokenAuthStrategy(token) if token else UnauthAuthStrategy()
    return GitHub(
        auth,
        base_url=connection.url,
        timeout=connection.timeout_seconds,
        ssl_verify=_ssl_verify(connection),
        auto_retry=False,
        http_cache=False,
        user_agent="detector-responder",
    )


def _message(failed: RequestFailed) -> str:
    try:
        body = failed.response.json()
    except ValueError:
        return ""
    return redact_text(str(body.get("message", ""))) if isinstance(body, dict) else ""


def status_of(error: RequestError[Any]) -> int | None:
    return error.response.status_code if isinstance(error, RequestFailed) else None


def action_error(action: str, error: RequestError[Any]) -> ActionError:
    """The `ActionError` for a failed call; the token never appears in it."""
    if isinstance(error, RateLimitExceeded):
        wait = error.retry_after.total_seconds()
        return ActionError(
            f"{action}: GitHub rate limit, retry after {int(wait)}s",
            status=error.response.status_code,
            retryable=True,
            retry_after=wait,
        )
    if isinstance(error, RequestFailed):
        status = error.response.status_code
        hint = {
            401: "the credential is invalid or expired",
            403: "the credential lacks the permission",
            404: "not found, or not visible to the credential",
            409: "conflicts with the current state",
            422: "GitHub refused the request",
        }.get(status, "GitHub failed")
        detail = _message(error)
        return status_error(
            f"{action}: {status} {hint}" + (f": {detail}" if detail else ""),
            status,
            error.response.headers,
        )
    if _tls_failure(error):
        return ActionError(f"{action}: TLS verification of the GitHub API failed")
    return ActionError(f"{action}: GitHub unreachable: {type(error.exc).__name__}", retryable=True)


def _tls_failure(error: BaseException) -> bool:
    """A certificate problem is final, unlike a network failure."""
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, ssl.SSLError):
            return True
        seen = seen.__cause__ or seen.__context__ or getattr(seen, "exc", None)
    return False


@dataclass(frozen=True)
class _Session:
    github: GitHub[Any]

    @property
    def api(self) -> Any:
        """The REST namespace of API_VERSION (typed per operation by githubkit)."""
        return self.github.rest(API_VERSION)

    def each(self, list_call: Any, **kwargs: Any) -> Any:
        """Every item of a list call, following the Link headers, as plain JSON.

        The version header is passed explicitly: githubkit sends only the caller's headers
        when it follows a next-page link.
        """
        return self.github.rest.paginate(
            list_call,
            map_func=lambda response: response.json(),
            per_page=100,
            headers={"X-GitHub-Api-Version": API_VERSION},
            **kwargs,
        )


class GitHubAction(Action[Any]):
    """Shared plumbing: an authenticated versioned REST client and error translation."""

    system = "github"

    @asynccontextmanager
    async def rest(self, *, authenticated: bool = True) -> AsyncIterator[_Session]:
        """The REST namespace of API_VERSION; failed calls inside become `ActionError`."""
        token = None
        if authenticated and self.connection.token is not None:
            token = self.connection.token.read()
        async with _client(self.connection, token=token) as github:
            try:
                yield _Session(github)
            except RequestError as error:
                raise action_error(self.name, error) from None

    async def gone(self, request: Any) -> bool:
        """True when a read answers 404 (the target no longer exists)."""
        try:
            await request
        except RequestFailed as error:
            if status_of(error) == 404:
                return True
            raise
        return False


# --- tokens -------------------------------------------------------------------------------


class PatAccessParams(_Params):
    org: str
    pat_id: int = Field(description="Id of the fine-grained PAT's grant in the org.")


@register
class RevokePatAccess(GitHubAction):
    name = "github.revoke_pat_access"
    description = "Revoke a fine-grained personal access token's access to an organization."
    permissions = ("GitHub App: organization_personal_access_tokens: write",)
    reversible = False
    params_model = PatAccessParams

    def targets(self, params: PatAccessParams) -> list[Target]:
        return [Target(kind="identity", system="github", name=f"pat:{params.pat_id}")]

    async def execute(self, params: PatAccessParams) -> ActionOutcome:
        async with self.rest() as rest:
            try:
                await rest.api.orgs.async_update_pat_access(
                    params.org, params.pat_id, action="revoke"
                )
            except RequestFailed as error:
                if status_of(error) == 404:
                    return ActionOutcome(state="already_done", detail="no such grant any more")
                raise
        return ActionOutcome(state="done", detail=f"revoked PAT {params.pat_id} in {params.org}")

    async def verify(self, params: PatAccessParams) -> bool:
        async with self.rest() as rest:
            async for grant in rest.each(rest.api.orgs.async_list_pat_grants, org=params.org):
                if grant.get("id") == params.pat_id:
                    return False
        return True


_CREDENTIAL_KINDS = ("github_pat_", "ghp_", "gho_", "ghu_", "ghr_", "ghs_")


def _kind(credential: str) -> str:
    """The token type, the only part of a credential that may be shown."""
    return next((kind for kind in _CREDENTIAL_KINDS if credential.startswith(kind)), "unknown")


class CredentialsParams(_Params):
    credentials: list[SecretStr] = Field(min_length=1, max_length=1000)
    authenticate: bool = Field(
        default=False,
        description="github.com answers 403 to authenticated calls; GHES requires them.",
    )


@register
class RevokeCredentials(GitHubAction):
    name = "github.revoke_credentials"
    description = "Revoke leaked GitHub tokens (ghp_, github_pat_, gho_, ghu_, ghr_) by value."
    permissions = ("none on github.com (unauthenticated, 60 calls/hour)",)
    reversible = False
    params_model = CredentialsParams

    def targets(self, params: CredentialsParams) -> list[Target]:
        return [
            Target(kind="identity", system="github", name=f"{_kind(c.get_secret_value())} #{i}")
            for i, c in enumerate(params.credentials, 1)
        ]

    async def execute(self, params: CredentialsParams) -> ActionOutcome:
        values = [c.get_secret_value() for c in params.credentials]
        async with self.rest(authenticated=params.authenticate) as rest:
            await rest.api.credentials.async_revoke(credentials=values)
        return ActionOutcome(state="done", detail=f"submitted {len(values)} credentials")

    async def verify(self, params: CredentialsParams) -> bool:
        """A revoked token no longer authenticates: GET /user with it answers 401."""
        for credential in params.credentials:
            async with _client(self.connection, token=credential.get_secret_value()) as github:
                try:
                    await github.rest(API_VERSION).users.async_get_authenticated()
                except RequestFailed as error:
                    if status_of(error) == 401:
                        continue
                    raise action_error(self.name, error) from None
                except RequestError as error:
                    raise action_error(self.name, error) from None
            return False
        return True


# --- workflows and runs ---------------------------------------------------------------------


class WorkflowParams(_Params):
    owner: str
    repo: str
    workflow_id: int | str = Field(description="Numeric id or file name such as main.yaml.")


@register
class DisableWorkflow(GitHubAction):
    name = "github.disable_workflow"
    description = "Disable a GitHub Actions workflow so that no new run starts."
    permissions = ("GitHub App: actions: write", "classic PAT: repo")
    reversible = True
    params_model = WorkflowParams

    def targets(self, params: WorkflowParams) -> list[Target]:
        name = f"{params.owner}/{params.repo}/workflows/{params.workflow_id}"
        return [Target(kind="resource", system="github", name=name)]

    async def _state(self, rest: _Session, params: WorkflowParams) -> str:
        workflow = await rest.api.actions.async_get_workflow(
            params.owner, params.repo, params.workflow_id
        )
        return str(workflow.json()["state"])

    async def execute(self, params: WorkflowParams) -> ActionOutcome:
        async with self.rest() as rest:
            before = await self._state(rest, params)
            if before.startswith("disabled"):
                return ActionOutcome(state="already_done", detail=f"workflow is {before}")
            await rest.api.actions.async_disable_workflow(
                params.owner, params.repo, params.workflow_id
            )
        return ActionOutcome(
            state="done", detail="workflow disabled", undo_state={"previous_state": before}
        )

    async def verify(self, params: WorkflowParams) -> bool:
        async with self.rest() as rest:
            return (await self._state(rest, params)) == "disabled_manually"

    async def undo(self, params: WorkflowParams, outcome: ActionOutcome) -> ActionOutcome:
        if outcome.undo_state.get("previous_state") != "active":
            return ActionOutcome(state="already_done", detail="the workflow was not active")
        async with self.rest() as rest:
            await rest.api.actions.async_enable_workflow(
                params.owner, params.repo, params.workflow_id
            )
        return ActionOutcome(state="done", detail="workflow enabled again")


class RunParams(_Params):
    owner: str
    repo: str
    run_id: int
    force: bool = Field(
        default=False, description="force-cancel: also stops jobs with always() conditions."
    )


@register
class CancelRun(GitHubAction):
    name = "github.cancel_run"
    description = "Cancel (or force-cancel) a GitHub Actions workflow run."
    permissions = ("GitHub App: actions: write", "classic PAT: repo")
    reversible = False
    params_model = RunParams

    def targets(self, params: RunParams) -> list[Target]:
        name = f"{params.owner}/{params.repo}/runs/{params.run_id}"
        return [Target(kind="resource", system="github", name=name)]

    async def _status(self, rest: _Session, params: RunParams) -> str:
        run = await rest.api.actions.async_get_workflow_run(
            params.owner, params.repo, params.run_id
        )
        return str(run.json()["status"])

    async def execute(self, params: RunParams) -> ActionOutcome:
        async with self.rest() as rest:
            cancel = (
                rest.api.actions.async_force_cancel_workflow_run
                if params.force
                else rest.api.actions.async_cancel_workflow_run
            )
            try:
                await cancel(params.owner, params.repo, params.run_id)
            except RequestFailed as error:
                # 409: the run cannot be cancelled; fine when it has already finished.
                if status_of(error) == 409 and await self._status(rest, params) == "completed":
                    return ActionOutcome(state="already_done", detail="the run had completed")
                raise
        return ActionOutcome(state="done", detail="cancel requested (202)")

    async def verify(self, params: RunParams) -> bool:
        async with self.rest() as rest:
            return (await self._status(rest, params)) == "completed"


# --- runners --------------------------------------------------------------------------------


class RunnerParams(_Params):
    owner: str = Field(description="Organization, or repository owner when `repo` is set.")
    repo: str | None = Field(default=None, description="Unset for an organization runner.")
    runner_id: int


@register
class RemoveRunner(GitHubAction):
    name = "github.remove_runner"
    description = "Remove a self-hosted runner from a repository or an organization."
    permissions = (
        "GitHub App: administration: write (repository runner)",
        "GitHub App: organization_self_hosted_runners: write (organization runner)",
        "classic PAT: repo (repository runner) or admin:org (organization runner)",
    )
    reversible = False
    params_model = RunnerParams

    def targets(self, params: RunnerParams) -> list[Target]:
        scope = f"{params.owner}/{params.repo}" if params.repo else params.owner
        return [
            Target(kind="resource", system="github", name=f"{scope}/runners/{params.runner_id}")
        ]

    def _get(self, rest: _Session, params: RunnerParams) -> Any:
        if params.repo:
            return rest.api.actions.async_get_self_hosted_runner_for_repo(
                params.owner, params.repo, params.runner_id
            )
        return rest.api.actions.async_get_self_hosted_runner_for_org(params.owner, params.runner_id)

    async def execute(self, params: RunnerParams) -> ActionOutcome:
        async with self.rest() as rest:
            try:
                if params.repo:
                    await rest.api.actions.async_delete_self_hosted_runner_from_repo(
                        params.owner, params.repo, params.runner_id
                    )
                else:
                    await rest.api.actions.async_delete_self_hosted_runner_from_org(
                        params.owner, params.runner_id
                    )
            except RequestFailed as error:
                if status_of(error) == 404:
                    return ActionOutcome(state="already_done", detail="no such runner any more")
                raise
        return ActionOutcome(state="done", detail=f"runner {params.runner_id} removed")

    async def verify(self, params: RunnerParams) -> bool:
        async with self.rest() as rest:
            return await self.gone(self._get(rest, params))


# --- people ---------------------------------------------------------------------------------


class OrgUserParams(_Params):
    org: str
    username: str


@register
class BlockUser(GitHubAction):
    name = "github.block_user"
    description = "Block a user from an organization (undo: unblock)."
    permissions = ("GitHub App: organization blocking: write", "classic PAT: admin:org")
    reversible = True
    params_model = OrgUserParams

    def targets(self, params: OrgUserParams) -> list[Target]:
        return [Target(kind="identity", system="github", name=params.username)]

    async def _blocked(self, rest: _Session, params: OrgUserParams) -> bool:
        return not await self.gone(
            rest.api.orgs.async_check_blocked_user(params.org, params.username)
        )

    async def execute(self, params: OrgUserParams) -> ActionOutcome:
        async with self.rest() as rest:
            if await self._blocked(rest, params):
                return ActionOutcome(state="already_done", detail="already blocked")
            await rest.api.orgs.async_block_user(params.org, params.username)
        return ActionOutcome(state="done", detail=f"{params.username} blocked in {params.org}")

    async def verify(self, params: OrgUserParams) -> bool:
        async with self.rest() as rest:
            return await self._blocked(rest, params)

    async def undo(self, params: OrgUserParams, outcome: ActionOutcome) -> ActionOutcome:
        if outcome.state == "already_done":
            return ActionOutcome(state="already_done", detail="the block was not ours to lift")
        async with self.rest() as rest:
            await rest.api.orgs.async_unblock_user(params.org, params.username)
        return ActionOutcome(state="done", detail=f"{params.username} unblocked")


@register
class RemoveOutsideCollaborator(GitHubAction):
    name = "github.remove_outside_collaborator"
    description = "Remove an outside collaborator from every repository of an organization."
    permissions = ("GitHub App: members: write", "classic PAT: admin:org")
    # Re-adding means one invitation per repository, which the user has to accept.
    reversible = False
    params_model = OrgUserParams

    def targets(self, params: OrgUserParams) -> list[Target]:
        return [Target(kind="identity", system="github", name=params.username)]

    async def _is_collaborator(self, rest: _Session, params: OrgUserParams) -> bool:
        async for user in rest.each(rest.api.orgs.async_list_outside_collaborators, org=params.org):
            if str(user.get("login", "")).lower() == params.username.lower():
                return True
        return False

    async def execute(self, params: OrgUserParams) -> ActionOutcome:
        async with self.rest() as rest:
            if not await self._is_collaborator(rest, params):
                return ActionOutcome(state="already_done", detail="not an outside collaborator")
            await rest.api.orgs.async_remove_outside_collaborator(params.org, params.username)
        return ActionOutcome(state="done", detail=f"{params.username} removed from {params.org}")

    async def verify(self, params: OrgUserParams) -> bool:
        async with self.rest() as rest:
            return not await self._is_collaborator(rest, params)


# --- deploy keys ----------------------------------------------------------------------------


class DeployKeyParams(_Params):
    owner: str
    repo: str
    key_id: int


@register
class DeleteDeployKey(GitHubAction):
    name = "github.delete_deploy_key"
    description = "Delete a repository deploy key; its public part is kept so undo can re-add it."
    permissions = ("GitHub App: administration: write", "classic PAT: repo")
    reversible = True
    params_model = DeployKeyParams

    def targets(self, params: DeployKeyParams) -> list[Target]:
        name = f"{params.owner}/{params.repo}/keys/{params.key_id}"
        return [Target(kind="resource", system="github", name=name)]

    async def execute(self, params: DeployKeyParams) -> ActionOutcome:
        async with self.rest() as rest:
            try:
                read = await rest.api.repos.async_get_deploy_key(
                    params.owner, params.repo, params.key_id
                )
            except RequestFailed as error:
                if status_of(error) == 404:
                    return ActionOutcome(state="already_done", detail="no such deploy key any more")
                raise
            key = read.json()
            await rest.api.repos.async_delete_deploy_key(params.owner, params.repo, params.key_id)
        # A deploy key's `key` is its public half: safe to keep for the undo.
        backup = {"title": key["title"], "key": key["key"], "read_only": key["read_only"]}
        return ActionOutcome(
            state="done", detail=f"deploy key {key['title']!r} deleted", undo_state=backup
        )

    async def verify(self, params: DeployKeyParams) -> bool:
        async with self.rest() as rest:
            return await self.gone(
                rest.api.repos.async_get_deploy_key(params.owner, params.repo, params.key_id)
            )

    async def undo(self, params: DeployKeyParams, outcome: ActionOutcome) -> ActionOutcome:
        backup = outcome.undo_state
        if not backup.get("key"):
            return ActionOutcome(state="already_done", detail="nothing was deleted")
        async with self.rest() as rest:
            created = await rest.api.repos.async_create_deploy_key(
                params.owner,
                params.repo,
                title=backup["title"],
                key=backup["key"],
                read_only=backup["read_only"],
            )
        return ActionOutcome(
            state="done", detail=f"deploy key re-added as id {created.json()['id']}"
        )
