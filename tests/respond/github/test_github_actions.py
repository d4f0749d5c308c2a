"""GitHub actions against the contract-checked fake: effect on the server, verify, undo, errors."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from detector.respond.actions.base import (
    ActionError,
    ActionOutcome,
    NotReversible,
    SystemConnection,
)
from detector.respond.actions.github import (
    BlockUser,
    CancelRun,
    CredentialsParams,
    DeleteDeployKey,
    DeployKeyParams,
    DisableWorkflow,
    OrgUserParams,
    PatAccessParams,
    RemoveOutsideCollaborator,
    RemoveRunner,
    RevokeCredentials,
    RevokePatAccess,
    RunnerParams,
    RunParams,
    WorkflowParams,
)
from tests.respond.contract_server import Reply
from tests.respond.github.fake_github import TOKEN, FakeGitHub, connection, error

LEAKED = "ghp_" + "Zz9Yy8Xx7W" * 4
OTHER = "github_pat_" + "Q1w2E3r4T5y6U7i8O9p0aS" * 2


async def test_revoke_pat_access_removes_the_grant_and_a_repeat_is_already_done(
    github: FakeGitHub,
) -> None:
    action, params = RevokePatAccess(connection(github)), PatAccessParams(org="acme", pat_id=11)
    assert not await action.verify(params)

    outcome = await action.execute(params)

    assert outcome.state == "done"
    assert 11 not in github.pat_grants and 12 in github.pat_grants
    assert github.server.calls_of("orgs/update-pat-access")[0].body == {"action": "revoke"}
    assert await action.verify(params)
    assert (await action.execute(params)).state == "already_done"
    with pytest.raises(NotReversible):
        await action.undo(params, outcome)


async def test_a_rate_limit_is_retryable_and_names_the_wait(github: FakeGitHub) -> None:
    github.server.fail_next(
        "orgs/update-pat-access",
        Reply(429, {"message": "secondary rate limit"}, {"Retry-After": "30"}),
    )
    with pytest.raises(ActionError) as raised:
        await RevokePatAccess(connection(github)).execute(PatAccessParams(org="acme", pat_id=11))
    assert raised.value.retryable and raised.value.status == 429
    assert "30s" in str(raised.value) and raised.value.retry_after == 30
    assert 11 in github.pat_grants


async def test_a_primary_rate_limit_answered_as_403_is_retryable(github: FakeGitHub) -> None:
    github.server.fail_next(
        "orgs/block-user",
        Reply(
            403,
            {"message": "API rate limit exceeded"},
            {"x-ratelimit-remaining": "0", "x-ratelimit-reset": "4102444800"},
        ),
    )
    with pytest.raises(ActionError) as raised:
        await BlockUser(connection(github)).execute(OrgUserParams(org="acme", username="mallory"))
    assert raised.value.retryable and raised.value.status == 403
    # x-ratelimit-reset is 2100-01-01: the wait runs until then
    assert raised.value.retry_after is not None and raised.value.retry_after > 365 * 86400


@pytest.mark.parametrize("status", [500, 502, 503])
async def test_server_errors_are_retryable(github: FakeGitHub, status: int) -> None:
    github.server.fail_next("repos/delete-deploy-key", error(status, "Server Error"))
    github.add_deploy_key("ci", "ssh-ed25519 AAAAC3Nza", read_only=True)
    with pytest.raises(ActionError) as raised:
        await DeleteDeployKey(connection(github)).execute(
            DeployKeyParams(owner="acme", repo="app", key_id=100)
        )
    assert raised.value.retryable and raised.value.status == status
    assert 100 in github.deploy_keys


async def test_a_permission_error_is_final_and_never_shows_the_token(github: FakeGitHub) -> None:
    github.server.fail_next(
        "orgs/update-pat-access", error(403, f"Resource not accessible by integration {TOKEN}")
    )
    with pytest.raises(ActionError) as raised:
        await RevokePatAccess(connection(github)).execute(PatAccessParams(org="acme", pat_id=11))
    assert not raised.value.retryable and raised.value.status == 403
    assert "lacks the permission" in str(raised.value)
    assert TOKEN not in str(raised.value)


async def test_bad_credentials_are_final(
    github: FakeGitHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GITHUB_RESPONDER_TOKEN", "ghs_" + "x" * 36)
    with pytest.raises(ActionError) as raised:
        await RevokePatAccess(connection(github)).execute(PatAccessParams(org="acme", pat_id=11))
    assert (raised.value.status, raised.value.retryable) == (401, False)
    assert "x" * 36 not in str(raised.value)


async def test_revoke_credentials_is_unauthenticated_and_verified_by_the_token_failing(
    github: FakeGitHub,
) -> None:
    github.live_credentials |= {LEAKED, OTHER}
    action = RevokeCredentials(connection(github))
    params = CredentialsParams.model_validate({"credentials": [LEAKED, OTHER]})
    assert not await action.verify(params)

    outcome = await action.execute(params)

    assert outcome.state == "done" and not github.live_credentials
    assert github.server.calls_of("credentials/revoke")[0].body == {"credentials": [LEAKED, OTHER]}
    assert await action.verify(params)
    assert [t.name for t in action.targets(params)] == ["ghp_ #1", "github_pat_ #2"]
    assert LEAKED not in repr(params) + params.model_dump_json() + outcome.model_dump_json()
    with pytest.raises(NotReversible):
        await action.undo(params, outcome)


async def test_revoke_credentials_rejects_more_than_the_api_takes() -> None:
    with pytest.raises(ValidationError):
        CredentialsParams.model_validate({"credentials": [LEAKED] * 1001})
    with pytest.raises(ValidationError):
        CredentialsParams.model_validate({"credentials": []})


async def test_disable_workflow_then_undo_enables_it(github: FakeGitHub) -> None:
    action = DisableWorkflow(connection(github))
    params = WorkflowParams(owner="acme", repo="app", workflow_id="deploy.yml")

    outcome = await action.execute(params)

    assert outcome.state == "done" and github.workflows["deploy.yml"] == "disabled_manually"
    assert await action.verify(params)
    assert (await action.execute(params)).state == "already_done"
    assert (await action.undo(params, outcome)).state == "done"
    assert github.workflows["deploy.yml"] == "active"
    assert not await action.verify(params)


async def test_undo_leaves_a_workflow_that_was_already_disabled(github: FakeGitHub) -> None:
    action = DisableWorkflow(connection(github))
    params = WorkflowParams(owner="acme", repo="app", workflow_id="old.yml")

    outcome = await action.execute(params)

    assert outcome.state == "already_done"
    assert (await action.undo(params, outcome)).state == "already_done"
    assert github.workflows["old.yml"] == "disabled_manually"
    assert not github.server.calls_of("actions/enable-workflow")


async def test_disable_an_unknown_workflow_is_an_error(github: FakeGitHub) -> None:
    with pytest.raises(ActionError) as raised:
        await DisableWorkflow(connection(github)).execute(
            WorkflowParams(owner="acme", repo="app", workflow_id=404)
        )
    assert (raised.value.status, raised.value.retryable) == (404, False)


@pytest.mark.parametrize(
    ("force", "endpoint"),
    [(False, "actions/cancel-workflow-run"), (True, "actions/force-cancel-workflow-run")],
)
async def test_cancel_run_is_verified_only_once_the_run_has_completed(
    github: FakeGitHub, force: bool, endpoint: str
) -> None:
    action = CancelRun(connection(github))
    params = RunParams(owner="acme", repo="app", run_id=501, force=force)

    outcome = await action.execute(params)

    assert outcome.state == "done" and len(github.server.calls_of(endpoint)) == 1
    assert not await action.verify(params), "202 is not the end of the run"
    github.finish_cancellations()
    assert await action.verify(params)
    assert (await action.execute(params)).state == "already_done"


async def test_cancel_conflict_on_a_live_run_is_an_error(github: FakeGitHub) -> None:
    github.uncancellable.add(501)
    with pytest.raises(ActionError) as raised:
        await CancelRun(connection(github)).execute(RunParams(owner="acme", repo="app", run_id=501))
    assert (raised.value.status, raised.value.retryable) == (409, False)


async def test_cancel_of_a_completed_run_is_already_done(github: FakeGitHub) -> None:
    params = RunParams(owner="acme", repo="app", run_id=502)
    assert (await CancelRun(connection(github)).execute(params)).state == "already_done"


@pytest.mark.parametrize(
    ("repo", "runner_id", "runners"), [("app", 7, "repo_runners"), (None, 70, "org_runners")]
)
async def test_remove_runner_at_repo_and_org_level(
    github: FakeGitHub, repo: str | None, runner_id: int, runners: str
) -> None:
    action = RemoveRunner(connection(github))
    params = RunnerParams(owner="acme", repo=repo, runner_id=runner_id)
    assert not await action.verify(params)

    assert (await action.execute(params)).state == "done"

    assert runner_id not in getattr(github, runners)
    assert await action.verify(params)
    assert (await action.execute(params)).state == "already_done"


async def test_remove_a_busy_runner_is_a_final_error(github: FakeGitHub) -> None:
    with pytest.raises(ActionError) as raised:
        await RemoveRunner(connection(github)).execute(
            RunnerParams(owner="acme", repo="app", runner_id=8)
        )
    assert (raised.value.status, raised.value.retryable) == (422, False)
    assert "running a job" in str(raised.value)
    assert 8 in github.repo_runners


async def test_block_user_and_undo(github: FakeGitHub) -> None:
    action, params = BlockUser(connection(github)), OrgUserParams(org="acme", username="mallory")

    outcome = await action.execute(params)

    assert outcome.state == "done" and "mallory" in github.blocks
    assert await action.verify(params)
    assert (await action.execute(params)).state == "already_done"
    assert (await action.undo(params, outcome)).state == "done"
    assert "mallory" not in github.blocks and not await action.verify(params)


async def test_undo_keeps_a_block_someone_else_set(github: FakeGitHub) -> None:
    github.blocks.add("mallory")
    action, params = BlockUser(connection(github)), OrgUserParams(org="acme", username="mallory")
    outcome = await action.execute(params)
    assert (await action.undo(params, outcome)).state == "already_done"
    assert "mallory" in github.blocks


async def test_remove_outside_collaborator(github: FakeGitHub) -> None:
    action = RemoveOutsideCollaborator(connection(github))
    params = OrgUserParams(org="acme", username="mallory")

    outcome = await action.execute(params)

    assert outcome.state == "done" and github.outside_collaborators == ["bob"]
    assert await action.verify(params)
    assert (await action.execute(params)).state == "already_done"
    with pytest.raises(NotReversible):
        await action.undo(params, outcome)


async def test_outside_collaborators_are_read_across_pages(github: FakeGitHub) -> None:
    github.outside_collaborators[:] = [f"user{i}" for i in range(250)] + ["mallory"]
    action = RemoveOutsideCollaborator(connection(github))
    params = OrgUserParams(org="acme", username="mallory")

    assert (await action.execute(params)).state == "done"

    assert "mallory" not in github.outside_collaborators
    calls = github.server.calls_of("orgs/list-outside-collaborators")
    assert [c.query.get("page", "1") for c in calls] == ["1", "2", "3"]
    assert await action.verify(params)


async def test_delete_deploy_key_keeps_the_public_key_and_undo_restores_it(
    github: FakeGitHub,
) -> None:
    github.add_deploy_key("deploy bot", "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIK", read_only=False)
    action = DeleteDeployKey(connection(github))
    params = DeployKeyParams(owner="acme", repo="app", key_id=100)

    outcome = await action.execute(params)

    assert outcome.state == "done" and not github.deploy_keys
    assert await action.verify(params)
    assert (await action.execute(params)).state == "already_done"
    assert (await action.undo(params, outcome)).state == "done"
    (restored,) = github.deploy_keys.values()
    assert restored["key"] == "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIK"
    assert restored["title"] == "deploy bot" and restored["read_only"] is False


async def test_undo_of_a_key_that_was_already_gone_does_nothing(github: FakeGitHub) -> None:
    action = DeleteDeployKey(connection(github))
    params = DeployKeyParams(owner="acme", repo="app", key_id=123)
    outcome = await action.execute(params)
    assert outcome == ActionOutcome(state="already_done", detail="no such deploy key any more")
    assert (await action.undo(params, outcome)).state == "already_done"
    assert not github.server.calls_of("repos/create-deploy-key")


async def test_an_unreachable_api_is_retryable(unused_tcp_port: int) -> None:
    unreachable = SystemConnection(url=f"http://127.0.0.1:{unused_tcp_port}/api/v3")
    with pytest.raises(ActionError) as raised:
        await BlockUser(unreachable).execute(OrgUserParams(org="acme", username="mallory"))
    assert raised.value.retryable and raised.value.status is None
