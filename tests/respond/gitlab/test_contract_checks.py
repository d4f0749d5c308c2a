"""The GitLab stand-in refuses what the REST docs do not allow, so the action tests prove
something: each bad request below is answered 400 and recorded as a violation."""

from __future__ import annotations

import pytest

from tests.respond.contract_server import assert_refused
from tests.respond.gitlab.fake_gitlab import TOKEN, FakeGitLab

GOOD = {"PRIVATE-TOKEN": TOKEN}


@pytest.mark.parametrize(
    ("method", "path", "headers", "body", "complaint"),
    [
        ("PUT", "/runners/30", GOOD, {"paused": "yes"}, "not of type 'boolean'"),
        ("PUT", "/runners/30", GOOD, {"pause": True}, "additional properties"),
        ("PUT", "/runners/30", {}, {"paused": True}, "PRIVATE-TOKEN"),
        ("PUT", "/runners/abc", GOOD, {"paused": True}, "path parameter id"),
        ("POST", "/users/7/block", GOOD, {"reason": "x"}, "takes none"),
        ("PATCH", "/runners/30", GOOD, {"paused": True}, "not a described operation"),
        ("GET", "/projects/5/pipeline_schedules?scope=all", GOOD, None, "scope"),
        ("PUT", "/projects/5/pipeline_schedules/1", GOOD, {}, "should be non-empty"),
    ],
)
async def test_requests_off_the_contract_are_refused(
    gitlab: FakeGitLab,
    method: str,
    path: str,
    headers: dict[str, str],
    body: object,
    complaint: str,
) -> None:
    url = f"{gitlab.server.url}/api/v4{path}"
    await assert_refused(
        gitlab.server, method, url, headers=headers, body=body, complaint=complaint
    )
    assert gitlab.runners[30] is False and gitlab.users[7] == "active"
