"""Each route over real HTTP: credentials, records on the queue, and what reaches the pipeline."""

from __future__ import annotations

import base64
import gzip
import hashlib
import hmac
from datetime import UTC, datetime, timedelta

import aiohttp
import orjson
import pytest

from detector.config import SourcesSettings
from detector.deadletter import DeadLetter
from detector.events import Event
from detector.normalize import NormalizeStage
from detector.normalize.builtin import build_registry
from detector.normalize.declared import DeclaredSource
from detector.sources.records import RawRecord
from tests.intake.support import (
    BITBUCKET_WHSEC,
    GITHUB_WHSEC,
    GITLAB_TOKEN,
    K8S_TOKEN,
    StartIntake,
    fixture,
    github_headers,
    intake_settings,
    standard_headers,
)

STAGE = NormalizeStage(build_registry(SourcesSettings(declared=[DeclaredSource(name="bitbucket")])))
EVENT_LIST = fixture("kubernetes/webhook-eventlist.json")
GITLAB_EVENTS = fixture("gitlab/stream.jsonl").splitlines()
WORKFLOW_JOB = fixture("github_actions/workflow_job.completed.json")
GITHUB_AUDIT_LINES = fixture("github/audit.jsonl")
GITHUB_REST_EXPORT = fixture("github/rest-export.json")
#: a Bitbucket Data Center audit-log entry (the shape of Elastic's fixture)
BITBUCKET = (
    b'{"affectedObjects":[{"id":"2","name":"admin","type":"USER"}],"auditType":{"action":'
    b'"Global permission granted","actionI18nKey":"bitbucket.service.user.audit.action.'
    b'globalpermissiongranted","area":"PERMISSIONS","category":"Permissions","categoryI18nKey":'
    b'"bitbucket.service.audit.category.permissions","level":"BASE"},"author":{"id":"2","name":'
    b'"admin","type":"NORMAL"},"changedValues":[],"extraAttributes":[{"name":"Permission",'
    b'"nameI18nKey":"bitbucket.service.user.audit.attribute.permission.permission","value":'
    b'"SYS_ADMIN"}],"method":"Browser","node":"8767044c-1b98-4d64-82db-ef29af8c3792","source":'
    b'"10.100.100.2","system":"http://bitbucket.internal:7990","timestamp":{"epochSecond":'
    b'1638034650,"nano":368000000},"version":"1.0"}'
)


def events(records: list[RawRecord]) -> list[Event | DeadLetter]:
    return [result for record in records for result in STAGE.process(record)]


# --- kubernetes -------------------------------------------------------------------------


async def test_kubernetes_event_list_is_one_record_and_normalizes_to_its_items(
    start_intake: StartIntake, client: aiohttp.ClientSession
) -> None:
    intake = await start_intake()
    async with client.post(
        f"{intake.url}/intake/kubernetes",
        data=EVENT_LIST,
        headers={"Authorization": f"Bearer {K8S_TOKEN}", "Content-Type": "application/json"},
    ) as response:
        assert response.status == 202
        assert await response.json() == {"accepted": 1}
        request_id = response.headers["X-Request-Id"]
    [record] = await intake.take_all()
    assert record == RawRecord(EVENT_LIST, f"http:kubernetes:{request_id}", "kubernetes")
    results = events([record])
    assert [type(r) for r in results] == [Event, Event, Event]
    assert [r.event_id for r in results if isinstance(r, Event)] == [
        "1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d:ResponseComplete",
        "2b3c4d5e-6f7a-4b8c-9d0e-1f2a3b4c5d6e:ResponseComplete",
        "3c4d5e6f-7a8b-4c9d-8e0f-2a3b4c5d6e7f:ResponseComplete",
    ]
    assert intake.metric("detector_intake_records_total", route="kubernetes") == 1
    assert intake.metric("detector_intake_requests_total", route="kubernetes", outcome="accepted")


@pytest.mark.parametrize(
    "authorization",
    [None, f"Bearer {K8S_TOKEN}x", f"Basic {K8S_TOKEN}", "Bearer", f"Bearer {K8S_TOKEN[:-1]}"],
)
async def test_kubernetes_without_the_bearer_token_is_401_and_queues_nothing(
    start_intake: StartIntake, client: aiohttp.ClientSession, authorization: str | None
) -> None:
    intake = await start_intake()
    headers = {"Authorization": authorization} if authorization else {}
    async with client.post(
        f"{intake.url}/intake/kubernetes", data=EVENT_LIST, headers=headers
    ) as response:
        assert response.status == 401
    assert len(intake.queue) == 0
    assert (
        intake.metric("detector_intake_requests_total", route="kubernetes", outcome="unauthorized")
        == 1
    )


async def test_a_non_ascii_token_is_refused_not_an_error(
    start_intake: StartIntake, client: aiohttp.ClientSession
) -> None:
    intake = await start_intake()
    async with client.post(
        f"{intake.url}/intake/kubernetes",
        data=EVENT_LIST,
        headers={"Authorization": "Bearer jéton".encode().decode("latin-1")},
    ) as response:
        assert response.status == 401


# --- gitlab -----------------------------------------------------------------------------


async def test_gitlab_streamed_events_are_queued_one_per_request(
    start_intake: StartIntake, client: aiohttp.ClientSession
) -> None:
    intake = await start_intake()
    ids = []
    for body in GITLAB_EVENTS[:3]:
        event_type = orjson.loads(body)["event_type"]
        async with client.post(
            f"{intake.url}/intake/gitlab",
            data=body,
            headers={
                "Content-Type": "application/json",
                "X-Gitlab-Event-Streaming-Token": GITLAB_TOKEN,
                "X-Gitlab-Audit-Event-Type": event_type,
            },
        ) as response:
            assert response.status == 202
            ids.append(response.headers["X-Request-Id"])
    records = await intake.take_all()
    assert records == [
        RawRecord(body, f"http:gitlab:{rid}", "gitlab")
        for body, rid in zip(GITLAB_EVENTS[:3], ids, strict=True)
    ]
    assert [r.event_id for r in events(records) if isinstance(r, Event)] == ["1", "48190", "48201"]


@pytest.mark.parametrize("token", [None, "", GITLAB_TOKEN.upper(), K8S_TOKEN])
async def test_gitlab_without_its_verification_token_is_401(
    start_intake: StartIntake, client: aiohttp.ClientSession, token: str | None
) -> None:
    intake = await start_intake()
    headers = {"X-Gitlab-Event-Streaming-Token": token} if token is not None else {}
    async with client.post(
        f"{intake.url}/intake/gitlab", data=GITLAB_EVENTS[0], headers=headers
    ) as response:
        assert response.status == 401
    assert len(intake.queue) == 0


# --- github -----------------------------------------------------------------------------


async def test_github_workflow_job_is_a_github_actions_record(
    start_intake: StartIntake, client: aiohttp.ClientSession
) -> None:
    intake = await start_intake()
    async with client.post(
        f"{intake.url}/intake/github", data=WORKFLOW_JOB, headers=github_headers(WORKFLOW_JOB)
    ) as response:
        assert response.status == 202
        assert response.headers["X-Request-Id"] == "72d3162e-cc78-11e3-81ab-4c9367dc0958"
    [record] = await intake.take_all()
    assert record == RawRecord(
        WORKFLOW_JOB, "http:github:72d3162e-cc78-11e3-81ab-4c9367dc0958", "github_actions"
    )
    [event] = events([record])
    assert isinstance(event, Event)
    assert (event.event_source, event.event_action) == ("github_actions", "workflow_job.completed")


async def test_github_other_events_are_left_to_source_detection(
    start_intake: StartIntake, client: aiohttp.ClientSession
) -> None:
    intake = await start_intake()
    body = b'{"action":"created","hook_id":1,"sender":{"login":"octocat","type":"User"}}'
    async with client.post(
        f"{intake.url}/intake/github", data=body, headers=github_headers(body, event="meta")
    ) as response:
        assert response.status == 202
    [record] = await intake.take_all()
    assert record.source is None


async def test_github_ping_is_acknowledged_and_not_queued(
    start_intake: StartIntake, client: aiohttp.ClientSession
) -> None:
    intake = await start_intake()
    body = b'{"zen":"Keep it logically awesome.","hook_id":292430182}'
    async with client.post(
        f"{intake.url}/intake/github", data=body, headers=github_headers(body, event="ping")
    ) as response:
        assert response.status == 204
    assert len(intake.queue) == 0
    assert intake.metric("detector_intake_requests_total", route="github", outcome="ignored") == 1


@pytest.mark.parametrize(
    "signature",
    [
        None,
        "sha1=" + "0" * 40,
        "sha256=" + "0" * 64,
        "sha256=",
        github_headers(WORKFLOW_JOB, secret="other")["X-Hub-Signature-256"],
        github_headers(WORKFLOW_JOB + b" ")["X-Hub-Signature-256"],
        github_headers(WORKFLOW_JOB)["X-Hub-Signature-256"].upper(),
    ],
)
async def test_github_without_a_valid_signature_is_401(
    start_intake: StartIntake, client: aiohttp.ClientSession, signature: str | None
) -> None:
    intake = await start_intake()
    headers = github_headers(WORKFLOW_JOB)
    del headers["X-Hub-Signature-256"]
    if signature is not None:
        headers["X-Hub-Signature-256"] = signature
    async with client.post(
        f"{intake.url}/intake/github", data=WORKFLOW_JOB, headers=headers
    ) as response:
        assert response.status == 401
    assert len(intake.queue) == 0


async def test_an_unsigned_ping_is_401(
    start_intake: StartIntake, client: aiohttp.ClientSession
) -> None:
    intake = await start_intake()
    body = b'{"zen":"Design for failure."}'
    headers = github_headers(body, event="ping", secret="guess")
    async with client.post(f"{intake.url}/intake/github", data=body, headers=headers) as response:
        assert response.status == 401


# --- generic (Standard Webhooks) --------------------------------------------------------


async def test_generic_json_lines_become_one_record_per_line(
    start_intake: StartIntake, client: aiohttp.ClientSession
) -> None:
    intake = await start_intake()
    headers = standard_headers(GITHUB_AUDIT_LINES, GITHUB_WHSEC, msg_id="msg_lines1")
    async with client.post(
        f"{intake.url}/intake/generic/github", data=GITHUB_AUDIT_LINES, headers=headers
    ) as response:
        assert response.status == 202
        assert await response.json() == {"accepted": 40}
    records = await intake.take_all()
    lines = GITHUB_AUDIT_LINES.splitlines()
    assert records == [
        RawRecord(line, f"http:github:msg_lines1:{n}", "github")
        for n, line in enumerate(lines, start=1)
    ]
    assert all(isinstance(result, Event) for result in events(records))


async def test_generic_json_array_elements_are_records(
    start_intake: StartIntake, client: aiohttp.ClientSession
) -> None:
    intake = await start_intake()
    headers = standard_headers(GITHUB_REST_EXPORT, GITHUB_WHSEC, msg_id="msg_array1")
    async with client.post(
        f"{intake.url}/intake/generic/github", data=GITHUB_REST_EXPORT, headers=headers
    ) as response:
        assert response.status == 202
    records = await intake.take_all()
    assert [orjson.loads(r.data) for r in records] == orjson.loads(GITHUB_REST_EXPORT)
    assert all(r.origin.startswith("http:github:msg_array1@") for r in records)
    assert {r.source for r in records} == {"github"}


async def test_generic_declared_source_is_served_with_its_own_secret(
    start_intake: StartIntake, client: aiohttp.ClientSession
) -> None:
    intake = await start_intake()
    url = f"{intake.url}/intake/generic/bitbucket"
    wrong = standard_headers(BITBUCKET, GITHUB_WHSEC)
    async with client.post(url, data=BITBUCKET, headers=wrong) as response:
        assert response.status == 401
    right = standard_headers(BITBUCKET, BITBUCKET_WHSEC, msg_id="msg_bb1")
    async with client.post(url, data=BITBUCKET, headers=right) as response:
        assert response.status == 202
    [record] = await intake.take_all()
    assert record == RawRecord(BITBUCKET, "http:bitbucket:msg_bb1:1", "bitbucket")


@pytest.mark.parametrize(
    "change",
    [
        {"webhook-signature": None},
        {"webhook-id": None},
        {"webhook-timestamp": None},
        {"webhook-id": "msg_other"},
        {"webhook-signature": "v1,AAAA"},
        {"webhook-signature": "v1a,AAAA"},
        {"webhook-signature": "garbage"},
        {"webhook-timestamp": "soon"},
        {"webhook-timestamp": "1e9"},
    ],
)
async def test_generic_without_a_valid_signature_is_401(
    start_intake: StartIntake, client: aiohttp.ClientSession, change: dict[str, str | None]
) -> None:
    intake = await start_intake()
    headers = standard_headers(BITBUCKET, BITBUCKET_WHSEC)
    for name, value in change.items():
        if value is None:
            del headers[name]
        else:
            headers[name] = value
    async with client.post(
        f"{intake.url}/intake/generic/bitbucket", data=BITBUCKET, headers=headers
    ) as response:
        assert response.status == 401
    assert len(intake.queue) == 0


@pytest.mark.parametrize("skew", [timedelta(minutes=-2), timedelta(minutes=2)])
async def test_generic_timestamps_outside_the_tolerance_are_401(
    start_intake: StartIntake, client: aiohttp.ClientSession, skew: timedelta
) -> None:
    intake = await start_intake(intake_settings(webhook_tolerance_seconds=60))
    url = f"{intake.url}/intake/generic/bitbucket"
    stale = standard_headers(BITBUCKET, BITBUCKET_WHSEC, when=datetime.now(UTC) + skew)
    async with client.post(url, data=BITBUCKET, headers=stale) as response:
        assert response.status == 401
    fresh = standard_headers(BITBUCKET, BITBUCKET_WHSEC, when=datetime.now(UTC) - skew / 8)
    async with client.post(url, data=BITBUCKET, headers=fresh) as response:
        assert response.status == 202


async def test_generic_rotated_signatures_pass_when_one_matches(
    start_intake: StartIntake, client: aiohttp.ClientSession
) -> None:
    intake = await start_intake()
    headers = standard_headers(BITBUCKET, BITBUCKET_WHSEC)
    old = standard_headers(BITBUCKET, GITHUB_WHSEC)["webhook-signature"]
    headers["webhook-signature"] = f"{old} {headers['webhook-signature']}"
    async with client.post(
        f"{intake.url}/intake/generic/bitbucket", data=BITBUCKET, headers=headers
    ) as response:
        assert response.status == 202


async def test_generic_body_that_is_not_utf8_cannot_be_verified(
    start_intake: StartIntake, client: aiohttp.ClientSession
) -> None:
    # A gzip body sent without Content-Encoding: correctly signed, yet no JSON text.
    intake = await start_intake()
    body = gzip.compress(BITBUCKET)
    key = base64.b64decode(BITBUCKET_WHSEC.removeprefix("whsec_"))
    stamp = str(int(datetime.now(UTC).timestamp()))
    digest = hmac.new(key, b"msg_gz." + stamp.encode() + b"." + body, hashlib.sha256).digest()
    headers = {
        "webhook-id": "msg_gz",
        "webhook-timestamp": stamp,
        "webhook-signature": "v1," + base64.b64encode(digest).decode(),
    }
    async with client.post(
        f"{intake.url}/intake/generic/bitbucket", data=body, headers=headers
    ) as response:
        assert response.status == 401
    assert len(intake.queue) == 0


async def test_content_encoding_gzip_is_decoded_before_verification(
    start_intake: StartIntake, client: aiohttp.ClientSession
) -> None:
    intake = await start_intake()
    headers = standard_headers(BITBUCKET, BITBUCKET_WHSEC) | {"Content-Encoding": "gzip"}
    async with client.post(
        f"{intake.url}/intake/generic/bitbucket", data=gzip.compress(BITBUCKET), headers=headers
    ) as response:
        assert response.status == 202
    [record] = await intake.take_all()
    assert record.data == BITBUCKET


# --- routing ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path", ["/intake/generic/jenkins", "/intake/generic/nosuch", "/intake/generic/", "/intake/x"]
)
async def test_sources_without_a_route_are_404(
    start_intake: StartIntake, client: aiohttp.ClientSession, path: str
) -> None:
    intake = await start_intake()
    headers = standard_headers(BITBUCKET, BITBUCKET_WHSEC)
    async with client.post(f"{intake.url}{path}", data=BITBUCKET, headers=headers) as response:
        assert response.status == 404
    assert len(intake.queue) == 0


async def test_routes_without_settings_or_disabled_are_404(
    start_intake: StartIntake, client: aiohttp.ClientSession
) -> None:
    settings = intake_settings(
        kubernetes=None, gitlab={"enabled": False, "secret": {"env": "GITLAB_TOKEN"}}, generic={}
    )
    intake = await start_intake(settings)
    for path, headers in [
        ("/intake/kubernetes", {"Authorization": f"Bearer {K8S_TOKEN}"}),
        ("/intake/gitlab", {"X-Gitlab-Event-Streaming-Token": GITLAB_TOKEN}),
        ("/intake/generic/github", standard_headers(BITBUCKET, GITHUB_WHSEC)),
    ]:
        async with client.post(f"{intake.url}{path}", data=BITBUCKET, headers=headers) as response:
            assert response.status == 404, path
    async with client.post(
        f"{intake.url}/intake/github", data=WORKFLOW_JOB, headers=github_headers(WORKFLOW_JOB)
    ) as response:
        assert response.status == 202


async def test_only_post_is_served(
    start_intake: StartIntake, client: aiohttp.ClientSession
) -> None:
    intake = await start_intake()
    async with client.get(
        f"{intake.url}/intake/gitlab", headers={"X-Gitlab-Event-Streaming-Token": GITLAB_TOKEN}
    ) as response:
        assert response.status == 405


async def test_empty_body_is_400(start_intake: StartIntake, client: aiohttp.ClientSession) -> None:
    intake = await start_intake()
    async with client.post(
        f"{intake.url}/intake/gitlab",
        data=b" \n",
        headers={"X-Gitlab-Event-Streaming-Token": GITLAB_TOKEN},
    ) as response:
        assert response.status == 400
    assert len(intake.queue) == 0
