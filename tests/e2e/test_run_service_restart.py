"""`detector run` end to end through an alert outage and a restart: nothing lost, nothing twice.

Two webhook sinks point at one receiver. While it answers 503, detections pile up in the
sinks' outboxes; GitLab streams a burst of events and the service gets SIGTERM in the
middle of it: what it accepted (202) it still processes, what it refused the sender
posts again later. The service starts again on the same outbox directory while the
receiver is not even listening, and more events arrive, one of them a redelivery. Once
the receiver is back, each sink has delivered every detection exactly once, by id.
"""

from __future__ import annotations

import asyncio
import itertools
from pathlib import Path

import aiohttp
import pytest

from tests.e2e.service_helpers import (
    EVENT_LIST,
    EVENT_LIST_ALERTS,
    JOB_ALERT,
    ROUTES,
    DetectorService,
    Receiver,
    alerts,
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

SINKS = {"oncall": "/oncall", "siem": "/siem"}


async def failing(client: aiohttp.ClientSession, service: DetectorService, records: int) -> bool:
    """`records` processed, and every sink has failed to deliver at least twice."""
    metrics = await service.metrics(client)
    return metrics.value("detector_events_in_total") == records and all(
        metrics.value("detector_sink_failures_total", sink=sink) >= 2 for sink in SINKS
    )


async def stop_under_load(
    client: aiohttp.ClientSession, service: DetectorService
) -> dict[str, int]:
    """GitLab streams events, fifty at once and then one after another, and the service
    gets SIGTERM as soon as one is accepted; the answer to each event (0: no answer)."""
    answers: dict[str, int] = {}

    async def send(event: str) -> int:
        body = gitlab_event(event)
        try:
            answer = await post(client, service.url("gitlab"), body, gitlab_headers(body))
            answers[event] = answer.status
        except aiohttp.ClientConnectionError:  # the listener is gone
            answers[event] = 0
        return answers[event]

    async def trickle() -> None:
        for number in itertools.count(94100):
            if await send(str(number)) != 202:
                return

    burst = {asyncio.create_task(send(str(94000 + n))) for n in range(50)}
    stream = asyncio.create_task(trickle())
    pending = burst
    while pending:
        done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
        if any(task.result() == 202 for task in done):
            break
    assert await service.stop() == 0
    await asyncio.wait({*burst, stream})
    assert set(answers.values()) <= {202, 503, 0}, answers
    return answers


@pytest.mark.timeout(120)
async def test_every_detection_is_delivered_once_per_sink_across_an_outage_and_a_restart(
    tmp_path: Path,
) -> None:
    receiver = Receiver()
    receiver.status = 503
    await receiver.start()
    outputs = [webhook_output(name, receiver.url(path)) for name, path in SINKS.items()]
    service = DetectorService(service_config(tmp_path, outputs, ROUTES), tmp_path)
    gitlab = gitlab_event()
    try:
        async with aiohttp.ClientSession() as client:
            service.start()
            await service.ready(client)
            url = service.url("kubernetes")
            answer = await post(client, url, EVENT_LIST, kubernetes_headers())
            assert answer.status == 202
            answer = await post(client, service.url("gitlab"), gitlab, gitlab_headers(gitlab))
            assert answer.status == 202
            await wait_for(lambda: failing(client, service, 2), 30, "failed deliveries")
            assert receiver.arrivals and not receiver.delivered(SINKS["oncall"])
            answers = await stop_under_load(client, service)
            assert 202 in answers.values() and set(answers.values()) != {202}

            await receiver.stop()  # now the endpoint is gone altogether
            refused = len(receiver.arrivals)
            service.start()
            await service.ready(client)
            job = public_workflow_job()
            headers = github_job_headers(job, "a9f3c2d0-cc78-11ef-8d1e-0b6c4e2f9a33")
            assert (await post(client, service.url("github"), job, headers)).status == 202
            # GitLab streams an event again, and the sender posts what the stop refused.
            again = ["48230", *(event for event, status in answers.items() if status != 202)]
            for event in again:
                body = gitlab_event(event)
                answer = await post(client, service.url("gitlab"), body, gitlab_headers(body))
                assert answer.status == 202
            records = 1 + len(again)
            await wait_for(lambda: failing(client, service, records), 30, "refused connections")
            assert len(receiver.arrivals) == refused, "nothing reached a closed port"
            pending = await service.metrics(client)

            receiver.status = 204
            await receiver.start()
            await wait_for(lambda: service.settled(client, records), 30, "every alert delivered")
            metrics = await service.metrics(client)
    finally:
        code = await service.stop()
        await receiver.stop()
    assert code == 0, service.output()
    assert receiver.forged == 0
    oncall, siem = (receiver.delivered(path) for path in SINKS.values())
    expected = {*EVENT_LIST_ALERTS, JOB_ALERT, *gitlab_alerts("48230", *answers)}
    assert alerts(oncall) == alerts(siem) == dict.fromkeys(expected, 1)
    assert len({d["id"] for d in oncall}) == len(oncall), "no detection twice"
    assert sorted(d["id"] for d in siem) == sorted(d["id"] for d in oncall)
    for sink in SINKS:
        waiting = pending.value("detector_sink_outbox_depth", sink=sink)
        assert metrics.value("detector_sink_deliveries_total", sink=sink) == waiting == len(oncall)
    assert metrics.value("detector_sink_dead_letters_total") == 0
