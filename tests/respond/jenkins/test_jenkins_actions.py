"""Jenkins actions against a local stand-in checked against the remote access API docs."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest

from detector.respond.actions.base import ActionError, SystemConnection
from detector.respond.actions.jenkins import (
    DisableJob,
    DisableJobParams,
    QuietDown,
    QuietDownParams,
    job_path,
)
from detector.secrets import SecretRef
from tests.respond.contract_server import serve
from tests.respond.jenkins.jenkins_server import JenkinsServer

USER, API_TOKEN = "responder", "11aa22bb33cc44dd55ee"


@pytest.fixture
async def jenkins(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[JenkinsServer]:
    monkeypatch.setenv("JENKINS_RESPONDER", f"{USER}:{API_TOKEN}")
    server = JenkinsServer(USER, API_TOKEN)
    async with serve(server):
        yield server


def connection(server: JenkinsServer, variable: str = "JENKINS_RESPONDER") -> SystemConnection:
    return SystemConnection(url=server.url + "/", token=SecretRef(env=variable), timeout_seconds=5)


def test_job_path_nests_folders_and_quotes_names() -> None:
    assert job_path("team/app/deploy") == "/job/team/job/app/job/deploy"
    assert job_path("/my job/") == "/job/my%20job"


async def test_disable_a_job_in_a_folder_then_undo(jenkins: JenkinsServer) -> None:
    jenkins.add_job("team", "deploy")
    jenkins.add_job("team", "build")
    action = DisableJob(connection(jenkins))
    params = DisableJobParams(job="team/deploy")

    assert await action.verify(params) is False
    outcome = await action.execute(params)

    assert outcome.state == "done"
    assert jenkins.job_disabled("team", "deploy") is True
    assert jenkins.job_disabled("team", "build") is False
    assert await action.verify(params) is True
    assert ("GET", "/crumbIssuer/api/json") in jenkins.requests

    undone = await action.undo(params, outcome)
    assert undone.state == "done"
    assert jenkins.job_disabled("team", "deploy") is False
    assert await action.verify(params) is False


async def test_a_job_disabled_before_is_already_done_and_undo_leaves_it(
    jenkins: JenkinsServer,
) -> None:
    jenkins.add_job("deploy", disabled=True)
    action = DisableJob(connection(jenkins))
    params = DisableJobParams(job="deploy")

    outcome = await action.execute(params)
    assert outcome.state == "already_done"
    assert (await action.undo(params, outcome)).state == "already_done"
    assert jenkins.job_disabled("deploy") is True
    assert not any(method == "POST" for method, _ in jenkins.requests)


async def test_missing_job_is_a_clear_non_retryable_error(jenkins: JenkinsServer) -> None:
    with pytest.raises(ActionError) as raised:
        await DisableJob(connection(jenkins)).execute(DisableJobParams(job="nope"))
    assert raised.value.status == 404
    assert raised.value.retryable is False
    assert "no such job" in str(raised.value)


async def test_without_csrf_protection_no_crumb_is_sent(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JENKINS_RESPONDER", f"{USER}:{API_TOKEN}")
    server = JenkinsServer(USER, API_TOKEN, csrf=False)
    async with serve(server):
        server.add_job("deploy")
        assert (
            await DisableJob(connection(server)).execute(DisableJobParams(job="deploy"))
        ).state == "done"
        assert server.job_disabled("deploy") is True


async def test_quiet_down_and_cancel(jenkins: JenkinsServer) -> None:
    action = QuietDown(connection(jenkins))
    params = QuietDownParams()

    outcome = await action.execute(params)
    assert outcome.state == "done"
    assert jenkins.quieting_down is True
    assert await action.verify(params) is True
    assert (await action.execute(params)).state == "already_done"

    await action.undo(params, outcome)
    assert jenkins.quieting_down is False
    assert await action.verify(params) is False


@pytest.mark.parametrize("status", [429, 500, 503])
async def test_rate_limit_and_server_errors_are_retryable(
    jenkins: JenkinsServer, status: int
) -> None:
    jenkins.fail_next = [(status, {"Retry-After": "30"})]
    with pytest.raises(ActionError) as raised:
        await QuietDown(connection(jenkins)).execute(QuietDownParams())
    assert raised.value.retryable is True
    assert raised.value.status == status
    assert raised.value.retry_after == 30
    assert jenkins.quieting_down is False


@pytest.mark.parametrize("status", [403, 409, 422])
async def test_refusals_are_not_retryable(jenkins: JenkinsServer, status: int) -> None:
    jenkins.fail_next = [(status, {})]
    with pytest.raises(ActionError) as raised:
        await QuietDown(connection(jenkins)).execute(QuietDownParams())
    assert raised.value.retryable is False


async def test_wrong_token_is_refused_and_never_shown(
    jenkins: JenkinsServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JENKINS_WRONG", f"{USER}:wrong-token-value")
    with pytest.raises(ActionError) as raised:
        await QuietDown(connection(jenkins, "JENKINS_WRONG")).execute(QuietDownParams())
    assert raised.value.status == 401
    assert raised.value.retryable is False
    assert "wrong-token-value" not in str(raised.value)


async def test_a_secret_without_user_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JENKINS_BARE", "just-a-token")
    connection_ = SystemConnection(url="http://127.0.0.1:9", token=SecretRef(env="JENKINS_BARE"))
    with pytest.raises(ActionError, match="not user:token") as raised:
        await QuietDown(connection_).execute(QuietDownParams())
    assert "just-a-token" not in str(raised.value)


async def test_the_server_rejects_what_the_docs_do_not_allow(jenkins: JenkinsServer) -> None:
    """The stand-in is a real check: quietDown by GET, or a body on an action URL, is refused."""
    async with aiohttp.ClientSession() as session:
        by_get = await session.get(f"{jenkins.url}/quietDown")
        with_body = await session.post(f"{jenkins.url}/cancelQuietDown", data=b"x=1")
    assert (by_get.status, with_body.status) == (400, 400)
    assert len(jenkins.violations) == 2
    jenkins.violations.clear()
