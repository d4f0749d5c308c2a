"""`detector run` end to end at its limits: credentials, body size and a full queue.

Wrong or missing credentials on any route get 401 and nothing of the request reaches
the pipeline; a body over the limit gets 413, declared or streamed; a burst of ten
times what the (tiny) queue holds gets 429 with `Retry-After` for what does not fit,
every accepted event makes its detection, and a sender that posts the refused ones
again once the queue has drained loses none.
"""

from __future__ import annotations

import asyncio
import math
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import orjson
import pytest

from detector.intake.queue import footprint
from detector.sources.records import RawRecord
from tests.e2e.service_helpers import (
    EVENT_LIST,
    ROUTES,
    DetectorService,
    Receiver,
    alerts,
    bitbucket_permission_granted,
    github_job_headers,
    gitlab_alerts,
    gitlab_event,
    gitlab_headers,
    kubernetes_headers,
    post,
    public_workflow_job,
    service_config,
    wait_for,
    webhook_output,
)
from tests.intake.support import BITBUCKET_WHSEC, GITHUB_WHSEC, standard_headers

MAX_BODY = 8192  # a workflow_job delivery fits, so its signature is checked
QUEUE = 8192  # about ten GitLab records
RETRY_AFTER = 1


@pytest.mark.timeout(120)
async def test_credentials_size_and_a_full_queue(tmp_path: Path) -> None:
    receiver = Receiver()
    await receiver.start()
    intake = {
        **ROUTES,
        "max_body_bytes": MAX_BODY,
        "queue_capacity_bytes": QUEUE,
        "retry_after_seconds": RETRY_AFTER,
    }
    config = service_config(tmp_path, [webhook_output("hooks", receiver.url("/alerts"))], intake)
    service = DetectorService(config, tmp_path)
    service.start()
    try:
        async with aiohttp.ClientSession() as client:
            await service.ready(client)
            await refused_without_credentials(client, service)
            await refused_when_too_large(client, service)
            await burst(client, service, receiver)
    finally:
        code = await service.stop()
        await receiver.stop()
    assert code == 0, service.output()
    assert receiver.forged == 0
    assert not (tmp_path / "dead.jsonl").exists(), "no record was dead-lettered"


async def refused_without_credentials(
    client: aiohttp.ClientSession, service: DetectorService
) -> None:
    """Every route: no credential, a wrong one, a signature of another body or an old one."""
    gitlab = gitlab_event()
    job = public_workflow_job()
    bitbucket = bitbucket_permission_granted()
    stale = datetime.now(UTC) - timedelta(minutes=10)
    attempts = [
        ("kubernetes", EVENT_LIST, {"Content-Type": "application/json"}),
        ("kubernetes", EVENT_LIST, kubernetes_headers("not-the-token")),
        ("kubernetes", EVENT_LIST, {"Authorization": "Basic azhzOnNlY3JldA=="}),
        ("gitlab", gitlab, {"Content-Type": "application/json"}),
        ("gitlab", gitlab, gitlab_headers(gitlab, token="not-the-token")),
        ("github", job, {"X-GitHub-Event": "workflow_job"}),
        ("github", job, github_job_headers(job, "d1", secret="not-the-secret")),
        ("github", job, github_job_headers(job.replace(b"public", b"PUBLIC"), "d2")),
        ("generic/bitbucket", bitbucket, {"Content-Type": "application/json"}),
        ("generic/bitbucket", bitbucket, standard_headers(bitbucket, GITHUB_WHSEC, "msg_1")),
        ("generic/bitbucket", bitbucket, standard_headers(b"{}", BITBUCKET_WHSEC, "msg_2")),
        ("generic/bitbucket", bitbucket, standard_headers(bitbucket, BITBUCKET_WHSEC, "m", stale)),
    ]
    for route, body, headers in attempts:
        answer = await post(client, service.url(route), body, headers)
        assert answer.status == 401, (route, headers)
    metrics = await service.metrics(client)
    assert metrics.value("detector_intake_requests_total", outcome="unauthorized") == len(attempts)
    assert metrics.value("detector_intake_requests_total", outcome="accepted") == 0
    assert metrics.value("detector_intake_records_total") == 0
    assert metrics.value("detector_events_in_total") == 0


async def refused_when_too_large(client: aiohttp.ClientSession, service: DetectorService) -> None:
    """Over `max_body_bytes`: declared in Content-Length, or only found while reading."""
    record = orjson.loads(gitlab_event("93999"))
    record["details"]["custom_message"] = "Unprotected branch " + "x" * MAX_BODY
    body = orjson.dumps(record)

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(body), 512):
            yield body[start : start + 512]

    declared = await post(client, service.url("gitlab"), body, gitlab_headers(body))
    streamed = await post(client, service.url("gitlab"), chunks(), gitlab_headers(body))
    assert (declared.status, streamed.status) == (413, 413)
    metrics = await service.metrics(client)
    assert metrics.value("detector_intake_requests_total", outcome="too_large") == 2
    assert metrics.value("detector_intake_records_total") == 0


async def burst(
    client: aiohttp.ClientSession, service: DetectorService, receiver: Receiver
) -> None:
    """Ten queues' worth at once: what fits is processed, the rest is told to come back."""
    sample = RawRecord(gitlab_event("93000"), f"http:gitlab:{uuid.uuid4().hex}", "gitlab")
    count = math.ceil(10 * QUEUE / footprint(sample))
    bodies = {f"{93000 + n}": gitlab_event(f"{93000 + n}") for n in range(count)}

    async def send(body: bytes) -> tuple[int, str | None]:
        answer = await post(client, service.url("gitlab"), body, gitlab_headers(body))
        return answer.status, answer.headers.get("Retry-After")

    answers = dict(
        zip(bodies, await asyncio.gather(*(send(body) for body in bodies.values())), strict=True)
    )
    accepted = {event for event, (status, _) in answers.items() if status == 202}
    refused = {event for event, (status, _) in answers.items() if status == 429}
    assert accepted | refused == set(bodies), f"only 202 and 429: {answers}"
    assert accepted and refused, f"a burst of {count} into a queue of about 10: {answers}"
    assert {answers[event][1] for event in refused} == {str(RETRY_AFTER)}

    async def delivered(events: set[str]) -> bool:
        return alerts(receiver.delivered("/alerts")) == dict.fromkeys(gitlab_alerts(*events), 1)

    await wait_for(lambda: delivered(accepted), 30, "a detection for every accepted event")
    metrics = await service.metrics(client)
    assert metrics.value("detector_events_in_total") == len(accepted)
    assert metrics.value("detector_intake_records_total", route="gitlab") == len(accepted)
    rejected = metrics.value("detector_intake_requests_total", outcome="queue_full")
    rejected += metrics.value("detector_intake_requests_total", outcome="busy")
    assert rejected == len(refused)

    async def drained() -> bool:
        metrics = await service.metrics(client)
        return metrics.value("detector_intake_queue_records") == 0

    await wait_for(drained, 30, "the queue to drain")
    for event in sorted(refused):  # the sender's retries, one at a time
        assert (await send(bodies[event]))[0] == 202
    await wait_for(lambda: delivered(set(bodies)), 30, "a detection for every event")
    metrics = await service.metrics(client)
    assert metrics.value("detector_events_in_total") == count
