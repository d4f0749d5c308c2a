"""Bounds under load: body size, queue capacity (all or nothing), concurrency, slow bodies,
draining, and what the logs and metrics say."""

from __future__ import annotations

import asyncio
import gzip
import logging
from collections.abc import AsyncIterator

import aiohttp
import pytest

from detector.intake.queue import footprint
from detector.sources.records import RawRecord
from tests.intake.support import (
    BITBUCKET_WHSEC,
    GITHUB_WHSEC,
    GITLAB_TOKEN,
    K8S_TOKEN,
    SECRETS,
    StartIntake,
    fixture,
    github_headers,
    intake_settings,
    standard_headers,
)

EVENT_LIST = fixture("kubernetes/webhook-eventlist.json")
GITLAB_EVENT = fixture("gitlab/stream.jsonl").splitlines()[1]
GITHUB_AUDIT_LINES = fixture("github/audit.jsonl")
WORKFLOW_JOB = fixture("github_actions/workflow_job.completed.json")
K8S = {"Authorization": f"Bearer {K8S_TOKEN}"}
GITLAB = {"X-Gitlab-Event-Streaming-Token": GITLAB_TOKEN}
#: the footprint of one queued GitLab record (its origin holds a 32-digit request id)
GITLAB_COST = footprint(RawRecord(GITLAB_EVENT, "http:gitlab:" + "0" * 32, "gitlab"))


async def test_declared_length_over_the_limit_is_413_before_reading(
    start_intake: StartIntake, client: aiohttp.ClientSession
) -> None:
    intake = await start_intake(intake_settings(max_body_bytes=len(EVENT_LIST) - 1))
    async with client.post(
        f"{intake.url}/intake/kubernetes", data=EVENT_LIST, headers=K8S
    ) as response:
        assert response.status == 413
    assert len(intake.queue) == 0
    assert (
        intake.metric("detector_intake_requests_total", route="kubernetes", outcome="too_large")
        == 1
    )


async def test_a_body_of_exactly_the_limit_is_accepted(
    start_intake: StartIntake, client: aiohttp.ClientSession
) -> None:
    intake = await start_intake(intake_settings(max_body_bytes=len(EVENT_LIST)))
    async with client.post(
        f"{intake.url}/intake/kubernetes", data=EVENT_LIST, headers=K8S
    ) as response:
        assert response.status == 202


async def test_a_chunked_body_is_cut_off_one_byte_past_the_limit(
    start_intake: StartIntake, client: aiohttp.ClientSession
) -> None:
    # The sender stalls after limit + 1 bytes: the answer must not wait for the rest.
    limit = 1000
    intake = await start_intake(intake_settings(max_body_bytes=limit))
    release = asyncio.Event()

    async def body() -> AsyncIterator[bytes]:
        yield EVENT_LIST[: limit + 1]
        await release.wait()
        yield EVENT_LIST[limit + 1 :]

    try:
        async with client.post(
            f"{intake.url}/intake/kubernetes", data=body(), headers=K8S
        ) as response:
            assert response.status == 413
    finally:
        release.set()
    assert len(intake.queue) == 0


async def test_the_limit_applies_to_the_decoded_body(
    start_intake: StartIntake, client: aiohttp.ClientSession
) -> None:
    limit = 4096
    intake = await start_intake(intake_settings(max_body_bytes=limit))
    bomb = b"[" + b" " * (100 * limit) + b"]"
    headers = K8S | {"Content-Encoding": "gzip"}
    async with client.post(
        f"{intake.url}/intake/kubernetes", data=gzip.compress(bomb), headers=headers
    ) as response:
        assert response.status == 413
    assert len(intake.queue) == 0


async def test_a_body_whose_content_encoding_is_broken_is_400(
    start_intake: StartIntake, client: aiohttp.ClientSession
) -> None:
    intake = await start_intake()
    headers = GITLAB | {"Content-Encoding": "gzip"}
    async with client.post(
        f"{intake.url}/intake/gitlab", data=GITLAB_EVENT, headers=headers
    ) as response:
        assert response.status == 400
    assert len(intake.queue) == 0


async def test_a_client_that_leaves_mid_body_queues_nothing(
    start_intake: StartIntake, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    rejected = asyncio.Event()

    class Watch(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if "rejected disconnected" in record.getMessage():
                rejected.set()

    watch = Watch()
    logging.getLogger("detector.intake").addHandler(watch)
    try:
        intake = await start_intake()
        _, writer = await asyncio.open_connection("127.0.0.1", intake.server.port)
        head = (
            "POST /intake/gitlab HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"X-Gitlab-Event-Streaming-Token: {GITLAB_TOKEN}\r\n"
            f"Content-Length: {len(GITLAB_EVENT)}\r\n\r\n"
        )
        writer.write(head.encode() + GITLAB_EVENT[:20])
        await writer.drain()
        writer.close()
        await writer.wait_closed()
        await rejected.wait()
    finally:
        logging.getLogger("detector.intake").removeHandler(watch)
    assert len(intake.queue) == 0
    assert (
        intake.metric("detector_intake_requests_total", route="gitlab", outcome="disconnected") == 1
    )
    assert "Traceback" not in caplog.text


async def test_a_batch_that_could_never_fit_the_queue_is_413(
    start_intake: StartIntake, client: aiohttp.ClientSession
) -> None:
    # 40 records cost more than their bytes: a queue as large as the body cannot hold them.
    size = len(GITHUB_AUDIT_LINES)
    intake = await start_intake(intake_settings(max_body_bytes=size, queue_capacity_bytes=size))
    headers = standard_headers(GITHUB_AUDIT_LINES, GITHUB_WHSEC)
    async with client.post(
        f"{intake.url}/intake/generic/github", data=GITHUB_AUDIT_LINES, headers=headers
    ) as response:
        assert response.status == 413
    assert len(intake.queue) == 0


async def test_a_burst_of_ten_times_the_capacity_queues_each_accepted_record_once(
    start_intake: StartIntake, client: aiohttp.ClientSession
) -> None:
    capacity_records = 5
    settings = intake_settings(
        max_body_bytes=len(GITLAB_EVENT),
        queue_capacity_bytes=capacity_records * GITLAB_COST + GITLAB_COST // 2,
        retry_after_seconds=7,
        max_concurrent_requests=1000,
    )
    intake = await start_intake(settings)

    async def send() -> tuple[int, str | None, str]:
        async with client.post(
            f"{intake.url}/intake/gitlab", data=GITLAB_EVENT, headers=GITLAB
        ) as response:
            await response.read()
            return (
                response.status,
                response.headers.get("Retry-After"),
                response.headers["X-Request-Id"],
            )

    answers = await asyncio.gather(*(send() for _ in range(10 * capacity_records)))
    accepted = [rid for status, _, rid in answers if status == 202]
    refused = [(status, retry) for status, retry, _ in answers if status != 202]
    assert len(accepted) == capacity_records
    assert refused == [(429, "7")] * (9 * capacity_records)
    records = await intake.take_all()
    assert sorted(r.origin for r in records) == sorted(f"http:gitlab:{rid}" for rid in accepted)
    assert all(r.data == GITLAB_EVENT for r in records)
    assert intake.metric("detector_intake_records_total", route="gitlab") == capacity_records
    assert (
        intake.metric("detector_intake_requests_total", route="gitlab", outcome="queue_full")
        == 9 * capacity_records
    )


async def test_a_batch_enters_whole_or_not_at_all(
    start_intake: StartIntake, client: aiohttp.ClientSession
) -> None:
    msg_id = "msg_batch"
    lines = GITHUB_AUDIT_LINES.splitlines()
    cost = sum(
        footprint(RawRecord(line, f"http:github:{msg_id}:{n}", "github"))
        for n, line in enumerate(lines, start=1)
    )
    settings = intake_settings(
        max_body_bytes=len(GITHUB_AUDIT_LINES), queue_capacity_bytes=2 * cost + cost // 2
    )
    intake = await start_intake(settings)

    async def post_lines() -> int:
        headers = standard_headers(GITHUB_AUDIT_LINES, GITHUB_WHSEC, msg_id=msg_id)
        async with client.post(
            f"{intake.url}/intake/generic/github", data=GITHUB_AUDIT_LINES, headers=headers
        ) as response:
            return response.status

    assert [await post_lines() for _ in range(3)] == [202, 202, 429]
    assert len(intake.queue) == 2 * len(lines)
    assert intake.queue.used == 2 * cost
    await intake.take_all()
    assert await post_lines() == 202
    assert [r.data for r in await intake.take_all()] == lines


async def held_request(
    client: aiohttp.ClientSession, url: str
) -> tuple[asyncio.Task[int], asyncio.Event]:
    """A Kubernetes POST whose body waits for the returned event; returns once the server
    handler is reading it (with Expect: 100-continue the client sends no body before)."""
    reading = asyncio.Event()
    release = asyncio.Event()

    async def body() -> AsyncIterator[bytes]:
        reading.set()
        await release.wait()
        yield EVENT_LIST

    async def send() -> int:
        async with client.post(url, data=body(), headers=K8S, expect100=True) as response:
            return response.status

    task = asyncio.create_task(send())
    await reading.wait()
    return task, release


async def test_too_many_bodies_in_flight_are_429(
    start_intake: StartIntake, client: aiohttp.ClientSession
) -> None:
    intake = await start_intake(intake_settings(max_concurrent_requests=1, retry_after_seconds=3))
    first, release = await held_request(client, f"{intake.url}/intake/kubernetes")
    async with client.post(
        f"{intake.url}/intake/kubernetes", data=EVENT_LIST, headers=K8S
    ) as response:
        assert (response.status, response.headers["Retry-After"]) == (429, "3")
    release.set()
    assert await first == 202
    assert len(intake.queue) == 1
    assert intake.metric("detector_intake_requests_total", route="kubernetes", outcome="busy") == 1


async def test_a_body_that_does_not_arrive_in_time_is_408(
    start_intake: StartIntake, client: aiohttp.ClientSession
) -> None:
    intake = await start_intake(intake_settings(body_timeout_seconds=0.05))
    release = asyncio.Event()

    async def stalled() -> AsyncIterator[bytes]:
        yield EVENT_LIST[:10]
        await release.wait()

    try:
        async with client.post(
            f"{intake.url}/intake/kubernetes", data=stalled(), headers=K8S
        ) as response:
            assert response.status == 408
    finally:
        release.set()
    assert len(intake.queue) == 0


async def test_draining_answers_503_and_not_ready(
    start_intake: StartIntake, client: aiohttp.ClientSession
) -> None:
    intake = await start_intake(intake_settings(retry_after_seconds=11))
    async with client.get(f"{intake.url}/readyz") as response:
        assert response.status == 200
    intake.server.drain()
    async with client.get(f"{intake.url}/readyz") as response:
        assert response.status == 503
    async with client.get(f"{intake.url}/healthz") as response:
        assert response.status == 200
    async with client.post(
        f"{intake.url}/intake/kubernetes", data=EVENT_LIST, headers=K8S
    ) as response:
        assert (response.status, response.headers["Retry-After"]) == (503, "11")
    assert len(intake.queue) == 0
    assert (
        intake.metric("detector_intake_requests_total", route="kubernetes", outcome="shutting_down")
        == 1
    )


async def test_requests_admitted_before_draining_finish(
    start_intake: StartIntake, client: aiohttp.ClientSession
) -> None:
    intake = await start_intake()
    first, release = await held_request(client, f"{intake.url}/intake/kubernetes")
    intake.server.drain()
    async with client.post(
        f"{intake.url}/intake/kubernetes", data=EVENT_LIST, headers=K8S
    ) as response:
        assert response.status == 503
    release.set()
    assert await first == 202
    assert len(intake.queue) == 1


async def test_a_closed_queue_answers_503(
    start_intake: StartIntake, client: aiohttp.ClientSession
) -> None:
    intake = await start_intake()
    intake.queue.close()
    async with client.post(
        f"{intake.url}/intake/gitlab", data=GITLAB_EVENT, headers=GITLAB
    ) as response:
        assert response.status == 503 and "Retry-After" in response.headers
    async with client.get(f"{intake.url}/readyz") as response:
        assert response.status == 503


async def test_queue_gauges_follow_the_queue(
    start_intake: StartIntake, client: aiohttp.ClientSession
) -> None:
    intake = await start_intake()
    assert intake.metric("detector_intake_queue_records") == 0
    for _ in range(2):
        async with client.post(
            f"{intake.url}/intake/gitlab", data=GITLAB_EVENT, headers=GITLAB
        ) as response:
            assert response.status == 202
    assert intake.metric("detector_intake_queue_records") == 2
    assert intake.metric("detector_intake_queue_bytes") == 2 * GITLAB_COST
    assert intake.metric("detector_intake_queue_capacity_bytes") == intake.queue.capacity
    await intake.queue.get()
    assert intake.metric("detector_intake_queue_records") == 1
    assert intake.metric("detector_intake_queue_bytes") == GITLAB_COST


async def test_logs_name_outcomes_but_no_credential(
    start_intake: StartIntake, client: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    intake = await start_intake()
    wrong_token = "Wr0ngTokenValue-5d1e"
    signed = github_headers(WORKFLOW_JOB)
    forged = github_headers(WORKFLOW_JOB, secret=wrong_token)
    generic = standard_headers(GITHUB_AUDIT_LINES, GITHUB_WHSEC)
    generic_forged = standard_headers(GITHUB_AUDIT_LINES, BITBUCKET_WHSEC)
    attempts = [
        ("kubernetes", EVENT_LIST, K8S),
        ("kubernetes", EVENT_LIST, {"Authorization": f"Bearer {wrong_token}"}),
        ("gitlab", GITLAB_EVENT, GITLAB),
        ("gitlab", GITLAB_EVENT, {"X-Gitlab-Event-Streaming-Token": wrong_token}),
        ("github", WORKFLOW_JOB, signed),
        ("github", WORKFLOW_JOB, forged),
        ("generic/github", GITHUB_AUDIT_LINES, generic),
        ("generic/github", GITHUB_AUDIT_LINES, generic_forged),
    ]
    statuses = []
    for route, body, headers in attempts:
        async with client.post(f"{intake.url}/intake/{route}", data=body, headers=headers) as r:
            statuses.append(r.status)
    assert statuses == [202, 401] * 4
    logged = caplog.text
    assert "intake gitlab: rejected unauthorized (401)" in logged
    assert "intake kubernetes: accepted 1 records" in logged
    secrets = [
        *SECRETS,
        wrong_token,
        signed["X-Hub-Signature-256"].removeprefix("sha256="),
        forged["X-Hub-Signature-256"].removeprefix("sha256="),
        generic["webhook-signature"].removeprefix("v1,"),
        generic_forged["webhook-signature"].removeprefix("v1,"),
    ]
    assert [secret for secret in secrets if secret in logged] == []
