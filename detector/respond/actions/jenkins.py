"""Jenkins response actions over the remote access API: disable a job, quiet the instance down.

The credential is `user:api-token` (HTTP Basic). POSTs carry a CSRF crumb from
/crumbIssuer/api/json when the instance issues one (API-token requests do not need it since
Jenkins 2.96, but a crumb is harmless and older instances want it).
"""

from __future__ import annotations

import ssl
from typing import Any
from urllib.parse import quote

import aiohttp
from pydantic import BaseModel, ConfigDict, Field

from detector.respond.actions.base import (
    Action,
    ActionError,
    ActionOutcome,
    SystemConnection,
    Target,
    register,
)
from detector.respond.actions.errors import aiohttp_failures, status_error

_MEANING = {
    401: "the Jenkins user or API token is not accepted",
    403: "the Jenkins user lacks the permission, or the CSRF crumb was refused",
    404: "Jenkins has no such job or page",
    409: "Jenkins reports a conflict",
    422: "Jenkins refused the request as invalid",
}


class JenkinsClient:
    """One session against a Jenkins instance: Basic auth, a cookie jar for the crumb's session."""

    def __init__(self, connection: SystemConnection) -> None:
        self.base = connection.url.rstrip("/")
        if connection.token is None:
            raise ActionError("a Jenkins connection needs a token secret holding user:api-token")
        user, sep, api_token = connection.token.read().partition(":")
        if not sep:
            raise ActionError(f"the Jenkins secret in {connection.token.where()} is not user:token")
        verify = connection.verify_tls
        self._ssl: ssl.SSLContext | bool = (
            ssl.create_default_context(cafile=verify) if isinstance(verify, str) else verify
        )
        self._session = aiohttp.ClientSession(
            headers={"Authorization": aiohttp.encode_basic_auth(user, api_token)},
            timeout=aiohttp.ClientTimeout(total=connection.timeout_seconds),
            cookie_jar=aiohttp.CookieJar(unsafe=True),
        )
        self._crumb: dict[str, str] | None = None

    async def __aenter__(self) -> JenkinsClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._session.close()

    async def _request(self, method: str, path: str, what: str, **kwargs: Any) -> Any:
        with aiohttp_failures("Jenkins", what):
            async with self._session.request(
                method, self.base + path, ssl=self._ssl, allow_redirects=False, **kwargs
            ) as response:
                # Jenkins answers a successful form POST with a redirect to the object's page.
                if response.status < 400:
                    if response.content_type == "application/json":
                        return await response.json()
                    return None
                meaning = _MEANING.get(response.status, "Jenkins answered with an error")
                raise status_error(
                    f"Jenkins refused to {what} (HTTP {response.status}): {meaning}",
                    response.status,
                    response.headers,
                )

    async def get_json(self, path: str, what: str, tree: str) -> dict[str, Any]:
        data = await self._request("GET", f"{path}/api/json", what, params={"tree": tree})
        return data if isinstance(data, dict) else {}

    async def post(self, path: str, what: str) -> None:
        if self._crumb is None:
            try:
                issued = await self.get_json(
                    "/crumbIssuer", "get a CSRF crumb", "crumb,crumbRequestField"
                )
                self._crumb = {str(issued["crumbRequestField"]): str(issued["crumb"])}
            except ActionError as exc:
                if exc.status != 404:  # 404: CSRF protection is off, no crumb needed
                    raise
                self._crumb = {}
        await self._request("POST", path, what, headers=self._crumb)


def job_path(name: str) -> str:
    """'team/app/deploy' -> '/job/team/job/app/job/deploy' (folders nest as /job/ segments)."""
    parts = [p for p in name.strip("/").split("/") if p]
    return "".join(f"/job/{quote(p, safe='')}" for p in parts)


class DisableJobParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    job: str = Field(min_length=1, description="Full job name; folders separated by '/'.")


def _disabled(data: dict[str, Any]) -> bool:
    return data.get("buildable") is False and str(data.get("color", "")).startswith("disabled")


@register
class DisableJob(Action[DisableJobParams]):
    """Stop a job from building: triggers are ignored, its queued builds are cancelled, running
    builds go on."""

    name = "jenkins.disable_job"
    system = "jenkins"
    description = "Disable a Jenkins job (POST /job/<name>/disable); undo enables it again."
    permissions = ("Item/Configure on the job", "Item/Read on the job and its folders")
    reversible = True
    params_model = DisableJobParams

    def targets(self, params: DisableJobParams) -> list[Target]:
        return [Target(kind="resource", system="jenkins", name=params.job)]

    async def _state(self, jenkins: JenkinsClient, params: DisableJobParams) -> dict[str, Any]:
        return await jenkins.get_json(job_path(params.job), "read the job", "buildable,color")

    async def execute(self, params: DisableJobParams) -> ActionOutcome:
        async with JenkinsClient(self.connection) as jenkins:
            if _disabled(await self._state(jenkins, params)):
                return ActionOutcome(state="already_done", detail="the job was already disabled")
            await jenkins.post(f"{job_path(params.job)}/disable", "disable the job")
        return ActionOutcome(state="done", detail="job disabled", undo_state={"enable": True})

    async def verify(self, params: DisableJobParams) -> bool:
        async with JenkinsClient(self.connection) as jenkins:
            return _disabled(await self._state(jenkins, params))

    async def undo(self, params: DisableJobParams, outcome: ActionOutcome) -> ActionOutcome:
        if not outcome.undo_state.get("enable"):
            return ActionOutcome(
                state="already_done", detail="the job was disabled before; left so"
            )
        async with JenkinsClient(self.connection) as jenkins:
            await jenkins.post(f"{job_path(params.job)}/enable", "enable the job")
        return ActionOutcome(state="done", detail="job enabled again")


class QuietDownParams(BaseModel):
    model_config = ConfigDict(extra="forbid")


@register
class QuietDown(Action[QuietDownParams]):
    """Stop the whole instance from starting builds; running builds finish."""

    name = "jenkins.quiet_down"
    system = "jenkins"
    description = "Put Jenkins in quiet-down mode (POST /quietDown); undo is /cancelQuietDown."
    permissions = ("Overall/Manage (Overall/Administer on older cores)",)
    reversible = True
    params_model = QuietDownParams

    def targets(self, params: QuietDownParams) -> list[Target]:
        return [Target(kind="resource", system="jenkins", name=self.connection.url)]

    async def _quieting(self, jenkins: JenkinsClient) -> bool:
        data = await jenkins.get_json("", "read the instance state", "quietingDown")
        return data.get("quietingDown") is True

    async def execute(self, params: QuietDownParams) -> ActionOutcome:
        async with JenkinsClient(self.connection) as jenkins:
            if await self._quieting(jenkins):
                return ActionOutcome(
                    state="already_done", detail="Jenkins was already quieting down"
                )
            await jenkins.post("/quietDown", "quiet Jenkins down")
        return ActionOutcome(state="done", detail="quiet-down mode on", undo_state={"cancel": True})

    async def verify(self, params: QuietDownParams) -> bool:
        async with JenkinsClient(self.connection) as jenkins:
            return await self._quieting(jenkins)

    async def undo(self, params: QuietDownParams, outcome: ActionOutcome) -> ActionOutcome:
        if not outcome.undo_state.get("cancel"):
            return ActionOutcome(state="already_done", detail="quiet-down was on before; left so")
        async with JenkinsClient(self.connection) as jenkins:
            await jenkins.post("/cancelQuietDown", "cancel quiet-down")
        return ActionOutcome(state="done", detail="quiet-down mode off")
