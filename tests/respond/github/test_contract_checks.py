"""The GitHub stand-in refuses what GitHub's description does not allow, so the action tests
prove something: each bad request below is answered 400 and recorded as a violation."""

from __future__ import annotations

import pytest

from detector.respond.actions.base import ActionError
from detector.respond.actions.github import PatAccessParams, RevokePatAccess
from tests.respond.contract_server import assert_refused
from tests.respond.github.fake_github import API_VERSION, TOKEN, FakeGitHub, connection, error

GOOD = {
    "Accept": "application/vnd.github+json",
    "X-GitHub-Api-Version": API_VERSION,
    "Authorization": f"Bearer {TOKEN}",
}


@pytest.mark.parametrize(
    ("method", "path", "headers", "body", "complaint"),
    [
        (
            "POST",
            "/orgs/acme/personal-access-tokens/11",
            GOOD,
            {"action": "approve"},
            "body action",
        ),
        ("POST", "/orgs/acme/personal-access-tokens/11", GOOD, {}, "'action' is a required"),
        ("POST", "/orgs/acme/personal-access-tokens/11", GOOD, None, "missing required body"),
        ("POST", "/orgs/acme/personal-access-tokens/x1", GOOD, {"action": "revoke"}, "pat_id"),
        (
            "POST",
            "/orgs/acme/personal-access-tokens/11",
            {**GOOD, "X-GitHub-Api-Version": "2026-03-10"},
            {"action": "revoke"},
            "X-GitHub-Api-Version",
        ),
        ("PUT", "/orgs/acme/personal-access-tokens/11", GOOD, None, "not a described operation"),
        ("POST", "/credentials/revoke", GOOD, {"credentials": ["ghp_x"]}, "Authorization"),
        (
            "POST",
            "/credentials/revoke",
            {**GOOD, "Authorization": ""},
            {"credentials": []},
            "non-empty",
        ),
        ("GET", "/orgs/acme/outside_collaborators?per_page=all", GOOD, None, "per_page"),
        ("GET", "/orgs/acme/outside_collaborators?colour=red", GOOD, None, "colour"),
    ],
)
async def test_requests_off_the_description_are_refused(
    github: FakeGitHub,
    method: str,
    path: str,
    headers: dict[str, str],
    body: object,
    complaint: str,
) -> None:
    headers = {k: v for k, v in headers.items() if v}
    url = f"{github.server.url}/api/v3{path}"
    await assert_refused(
        github.server, method, url, headers=headers, body=body, complaint=complaint
    )
    assert github.pat_grants == {11: "mallory", 12: "alice"}


async def test_an_undocumented_answer_from_the_fake_is_a_violation(github: FakeGitHub) -> None:
    github.server.fail_next("orgs/update-pat-access", error(418, "I'm a teapot"))
    with pytest.raises(ActionError):
        await RevokePatAccess(connection(github)).execute(PatAccessParams(org="acme", pat_id=11))
    assert github.server.violations == [
        "orgs/update-pat-access: the fake answered undocumented 418"
    ]
    github.server.violations.clear()
