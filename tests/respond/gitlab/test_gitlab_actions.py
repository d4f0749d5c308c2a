"""GitLab actions against the contract-checked fake: effect on the server, verify, undo, errors."""

from __future__ import annotations

import pytest

from detector.respond.actions.base import ActionError, NotReversible, SystemConnection
from detector.respond.actions.gitlab import (
    BlockUser,
    CancelPipeline,
    DeactivateSchedules,
    GroupTokenParams,
    PauseRunner,
    PersonalTokenParams,
    PipelineParams,
    ProjectTokenParams,
    RevokeGroupToken,
    RevokePersonalToken,
    RevokeProjectToken,
    RunnerParams,
    ScheduleParams,
    UserParams,
)
from tests.respond.contract_server import Reply
from tests.respond.gitlab.fake_gitlab import TOKEN, FakeGitLab, connection, error


@pytest.mark.parametrize(
    ("action_type", "params", "store"),
    [
        (RevokePersonalToken, PersonalTokenParams(token_id=41), "personal_tokens"),
        (RevokeProjectToken, ProjectTokenParams(project="acme/app", token_id=51), "project_tokens"),
        (RevokeProjectToken, ProjectTokenParams(project=5, token_id=51), "project_tokens"),
        (RevokeGroupToken, GroupTokenParams(group="acme", token_id=61), "group_tokens"),
    ],
)
async def test_revoke_token_then_repeat_is_already_done(
    gitlab: FakeGitLab, action_type: type, params: object, store: str
) -> None:
    action = action_type(connection(gitlab))
    assert not await action.verify(params)

    outcome = await action.execute(params)

    assert outcome.state == "done"
    token_id = params.token_id  # type: ignore[attr-defined]
    assert getattr(gitlab, store)[token_id]["revoked"] is True
    assert await action.verify(params)
    assert (await action.execute(params)).state == "already_done"
    with pytest.raises(NotReversible):
        await action.undo(params, outcome)


async def test_revoke_of_an_unknown_or_revoked_token_is_already_done(gitlab: FakeGitLab) -> None:
    action = RevokePersonalToken(connection(gitlab))
    for token_id in (42, 404):
        outcome = await action.execute(PersonalTokenParams(token_id=token_id))
        assert outcome.state == "already_done"
        assert await action.verify(PersonalTokenParams(token_id=token_id))
    assert not gitlab.server.calls_of("personal_access_tokens/revoke")


async def test_a_token_gone_between_read_and_revoke_is_already_done(gitlab: FakeGitLab) -> None:
    gitlab.server.fail_next("group_access_tokens/revoke", error(404, "404 Not Found"))
    outcome = await RevokeGroupToken(connection(gitlab)).execute(
        GroupTokenParams(group=3, token_id=61)
    )
    assert outcome.state == "already_done"


async def test_a_rate_limit_is_retryable_and_not_slept_through(gitlab: FakeGitLab) -> None:
    gitlab.server.fail_next(
        "personal_access_tokens/revoke",
        Reply(429, {"message": "Retry later"}, {"Retry-After": "3600"}),
    )
    with pytest.raises(ActionError) as raised:
        await RevokePersonalToken(connection(gitlab)).execute(PersonalTokenParams(token_id=41))
    assert (raised.value.status, raised.value.retryable, raised.value.retry_after) == (
        429,
        True,
        3600,
    )
    assert len(gitlab.server.calls_of("personal_access_tokens/revoke")) == 1
    assert gitlab.personal_tokens[41]["revoked"] is False


@pytest.mark.parametrize("status", [500, 502, 503])
async def test_server_errors_are_retryable(gitlab: FakeGitLab, status: int) -> None:
    gitlab.server.fail_next("runners/update", error(status, "Internal Server Error"))
    with pytest.raises(ActionError) as raised:
        await PauseRunner(connection(gitlab)).execute(RunnerParams(runner_id=30))
    assert (raised.value.status, raised.value.retryable) == (status, True)
    assert gitlab.runners[30] is False


async def test_a_bad_token_is_final_and_never_shown(
    gitlab: FakeGitLab, monkeypatch: pytest.MonkeyPatch
) -> None:
    wrong = "glpat-" + "W" * 20
    monkeypatch.setenv("GITLAB_RESPONDER_TOKEN", wrong)
    with pytest.raises(ActionError) as raised:
        await PauseRunner(connection(gitlab)).execute(RunnerParams(runner_id=30))
    assert (raised.value.status, raised.value.retryable) == (401, False)
    assert wrong not in str(raised.value) and TOKEN not in str(raised.value)


async def test_block_user_and_undo(gitlab: FakeGitLab) -> None:
    action, params = BlockUser(connection(gitlab)), UserParams(user_id=7, username="mallory")
    assert [t.name for t in action.targets(params)] == ["mallory"]

    outcome = await action.execute(params)

    assert outcome.state == "done" and gitlab.users[7] == "blocked"
    assert await action.verify(params)
    assert (await action.execute(params)).state == "already_done"
    assert (await action.undo(params, outcome)).state == "done"
    assert gitlab.users[7] == "active" and not await action.verify(params)


async def test_an_ldap_blocked_user_is_already_blocked_and_undo_leaves_it(
    gitlab: FakeGitLab,
) -> None:
    action, params = BlockUser(connection(gitlab)), UserParams(user_id=8)
    outcome = await action.execute(params)
    assert outcome.state == "already_done"
    assert (await action.undo(params, outcome)).state == "already_done"
    assert gitlab.users[8] == "ldap_blocked"
    assert not gitlab.server.calls_of("users/block") + gitlab.server.calls_of("users/unblock")


async def test_blocking_an_internal_user_is_a_final_error(gitlab: FakeGitLab) -> None:
    with pytest.raises(ActionError) as raised:
        await BlockUser(connection(gitlab)).execute(UserParams(user_id=9))
    assert (raised.value.status, raised.value.retryable) == (403, False)
    assert "internal user" in str(raised.value)


async def test_pause_runner_and_resume(gitlab: FakeGitLab) -> None:
    action, params = PauseRunner(connection(gitlab)), RunnerParams(runner_id=30)

    outcome = await action.execute(params)

    assert outcome.state == "done" and gitlab.runners[30] is True
    assert gitlab.server.calls_of("runners/update")[0].body == {"paused": True}
    assert await action.verify(params)
    assert (await action.undo(params, outcome)).state == "done"
    assert gitlab.runners[30] is False


async def test_a_runner_paused_by_someone_else_stays_paused(gitlab: FakeGitLab) -> None:
    action, params = PauseRunner(connection(gitlab)), RunnerParams(runner_id=31)
    outcome = await action.execute(params)
    assert outcome.state == "already_done"
    assert (await action.undo(params, outcome)).state == "already_done"
    assert gitlab.runners[31] is True


async def test_cancel_pipeline_is_verified_only_when_it_has_stopped(gitlab: FakeGitLab) -> None:
    action = CancelPipeline(connection(gitlab))
    params = PipelineParams(project="acme/app", pipeline_id=900)

    assert (await action.execute(params)).state == "done"

    assert not await action.verify(params), "200 from cancel says nothing"
    gitlab.finish_cancellations()
    assert await action.verify(params)
    assert (await action.execute(params)).state == "already_done"


async def test_cancel_of_a_finished_pipeline_is_already_done(gitlab: FakeGitLab) -> None:
    params = PipelineParams(project=5, pipeline_id=901)
    assert (await CancelPipeline(connection(gitlab)).execute(params)).state == "already_done"
    assert not gitlab.server.calls_of("pipelines/cancel")


async def test_cancel_in_an_unknown_project_is_an_error(gitlab: FakeGitLab) -> None:
    with pytest.raises(ActionError) as raised:
        await CancelPipeline(connection(gitlab)).execute(
            PipelineParams(project="other/app", pipeline_id=900)
        )
    assert (raised.value.status, raised.value.retryable) == (404, False)


async def test_deactivate_schedules_and_undo_reactivates_exactly_those(gitlab: FakeGitLab) -> None:
    action, params = DeactivateSchedules(connection(gitlab)), ScheduleParams(project="acme/app")
    assert not await action.verify(params)

    outcome = await action.execute(params)

    assert outcome.state == "done" and outcome.undo_state == {"schedule_ids": [1, 3]}
    assert not any(gitlab.schedules.values())
    assert await action.verify(params)
    assert (await action.execute(params)).state == "already_done"

    assert (await action.undo(params, outcome)).state == "done"
    assert gitlab.schedules == {1: True, 2: False, 3: True}


async def test_schedules_are_read_across_pages(gitlab: FakeGitLab) -> None:
    gitlab.schedules.update({sid: sid % 2 == 0 for sid in range(4, 60)})
    action, params = DeactivateSchedules(connection(gitlab)), ScheduleParams(project=5)

    outcome = await action.execute(params)

    assert outcome.state == "done" and not any(gitlab.schedules.values())
    assert len(gitlab.server.calls_of("pipeline_schedules/list")) > 1


async def test_undo_skips_a_schedule_deleted_since(gitlab: FakeGitLab) -> None:
    action, params = DeactivateSchedules(connection(gitlab)), ScheduleParams(project=5)
    outcome = await action.execute(params)
    del gitlab.schedules[3]

    undone = await action.undo(params, outcome)

    assert undone.state == "done" and "deleted since: [3]" in undone.detail
    assert gitlab.schedules == {1: True, 2: False}


async def test_an_unreachable_api_is_retryable(unused_tcp_port: int) -> None:
    unreachable = SystemConnection(url=f"http://127.0.0.1:{unused_tcp_port}")
    with pytest.raises(ActionError) as raised:
        await PauseRunner(unreachable).execute(RunnerParams(runner_id=30))
    assert raised.value.retryable and raised.value.status is None
