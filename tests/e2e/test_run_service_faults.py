"""`detector run` end to end when things break: a record it cannot finish, and a crash.

A record whose processing fails (here: a staged detection whose staging file cannot be
created) is dead-lettered with the error, and the records after it are still processed;
when even its dead letter cannot be written, the service stops with an error rather
than go on accepting records it cannot process. Both hold with the records' work in
worker processes too, and a worker process that dies stops the service the same way.
A crash (SIGKILL) loses no alert that was handed to a sink, and at most one checkpoint
interval of correlation state: a correlation that started before the crash completes
after the restart.
"""

from __future__ import annotations

import os
import signal
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import orjson
import pytest

from detector.config import DEFAULT_RULES
from tests.e2e.service_helpers import (
    ROUTES,
    DetectorService,
    Receiver,
    alerts,
    github_job_headers,
    gitlab_alerts,
    gitlab_event,
    gitlab_headers,
    post,
    service_config,
    wait_for,
    webhook_output,
)
from tests.intake.support import fixture

PROTECTED_BRANCH_REMOVED = DEFAULT_RULES / "gitlab" / "gitlab_protected_branch_removed.yml"
TWICE = """\
title: Protected Branches Removed Twice By One Author Within An Hour
id: 6f1c2b9e-3d4a-4e8b-9c7d-1a2b3c4d5e6f
name: protected_branches_removed_twice
status: test
correlation:
  type: event_count
  rules:
    - da43e022-ecf1-4b44-b21e-52591d6fa7f4   # GitLab Protected Branch Removed
  group-by:
    - author_name
  timespan: 1h
  condition:
    gte: 2
  generate: true
level: high
"""


def feature_branch_deploy_job() -> bytes:
    """A deploy job of a feature branch on the production runners: only an experimental
    rule fires, so its detection goes to the staging file."""
    job = orjson.loads(fixture("github_actions/workflow_job.in_progress.json"))
    job["workflow_job"]["head_branch"] = "feature/deploy-fix"
    return orjson.dumps(job)


async def stopped_by_itself(service: DetectorService) -> None:
    async def exited() -> bool:
        return service.process is not None and service.process.poll() is not None

    await wait_for(exited, 60, "the service to stop by itself")


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    receiver = Receiver()
    await receiver.start()
    yield receiver
    await receiver.stop()


@pytest.mark.timeout(120)
@pytest.mark.parametrize("workers", [1, 2], ids=["one process", "two worker processes"])
async def test_a_record_that_cannot_be_processed_is_dead_lettered_and_the_stream_goes_on(
    tmp_path: Path, receiver: Receiver, workers: int
) -> None:
    blocked = tmp_path / "not-a-directory"
    blocked.write_text("")
    config = service_config(tmp_path, [webhook_output("hooks", receiver.url("/alerts"))], ROUTES)
    config["service"]["staging_output"] = str(blocked / "staging.jsonl")
    config["service"]["workers"] = workers
    service = DetectorService(config, tmp_path)
    body = feature_branch_deploy_job()
    gitlab = gitlab_event()
    service.start()
    try:
        async with aiohttp.ClientSession() as client:
            await service.ready(client)
            headers = github_job_headers(body, "0b9e6f2a-cc78-11ef-9a4c-5d2e7f1b3c88")
            assert (await post(client, service.url("github"), body, headers)).status == 202
            answer = await post(client, service.url("gitlab"), gitlab, gitlab_headers(gitlab))
            assert answer.status == 202
            await wait_for(lambda: service.settled(client, 2), 30, "the GitLab alerts")
            metrics = await service.metrics(client)
            assert metrics.value("detector_dead_letters_total", reason="internal error") == 1
            assert metrics.value("detector_events_normalized_total") == 2
            async with client.get(f"{service.base}/readyz") as response:
                assert response.status == 200
    finally:
        code = await service.stop()
    assert code == 0, service.output()
    assert alerts(receiver.delivered("/alerts")) == dict.fromkeys(gitlab_alerts("48230"), 1)
    [letter] = [orjson.loads(line) for line in (tmp_path / "dead.jsonl").read_bytes().splitlines()]
    assert letter["reason"].startswith("internal error: FileExistsError: ")
    assert str(blocked) in letter["reason"]
    assert letter["origin"] == "http:github:0b9e6f2a-cc78-11ef-9a4c-5d2e7f1b3c88"
    assert letter["source"] == "github_actions"
    assert letter["original"] == body.decode(), "the record can be fed again"


@pytest.mark.timeout(120)
@pytest.mark.parametrize("workers", [1, 2], ids=["one process", "two worker processes"])
async def test_a_pipeline_that_cannot_even_dead_letter_stops_the_service(
    tmp_path: Path, receiver: Receiver, workers: int
) -> None:
    blocked = tmp_path / "not-a-directory"
    blocked.write_text("")
    config = service_config(tmp_path, [webhook_output("hooks", receiver.url("/alerts"))], ROUTES)
    config["service"]["staging_output"] = str(blocked / "staging.jsonl")
    config["service"]["workers"] = workers
    config["service"]["dead_letter"] = str(blocked / "dead.jsonl")
    service = DetectorService(config, tmp_path)
    body = feature_branch_deploy_job()
    service.start()
    try:
        async with aiohttp.ClientSession() as client:
            await service.ready(client)
            headers = github_job_headers(body, "7c1d0e3b-cc78-11ef-8f2a-6e3d8a2c4d99")
            assert (await post(client, service.url("github"), body, headers)).status == 202
            await stopped_by_itself(service)
    finally:
        code = await service.stop()
    assert code == 1
    output = service.output()
    assert (
        "record http:github:7c1d0e3b-cc78-11ef-8f2a-6e3d8a2c4d99 could not be processed" in output
    )
    assert "the pipeline failed: 0 accepted records were not processed" in output
    assert (tmp_path / "state.json").exists(), "the stop still saved the correlation state"


@pytest.mark.timeout(120)
async def test_a_crash_keeps_delivered_alerts_and_the_checkpointed_correlation_state(
    tmp_path: Path, receiver: Receiver
) -> None:
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "protected_branches_removed_twice.yml").write_text(TWICE)
    config = service_config(tmp_path, [webhook_output("hooks", receiver.url("/alerts"))], ROUTES)
    config["rules"] = {"paths": [str(PROTECTED_BRANCH_REMOVED), str(rules)]}
    config["correlation"].update(allowed_lateness_seconds=0, checkpoint_every_seconds=0.1)
    state = tmp_path / "state.json"
    service = DetectorService(config, tmp_path)
    first = gitlab_event("95001", "2025-02-11T09:16:40.512Z")
    second = gitlab_event("95002", "2025-02-11T09:17:40.512Z")
    later = gitlab_event("95003", "2025-02-11T11:16:40.512Z")  # closes the first hour
    try:
        async with aiohttp.ClientSession() as client:
            service.start()
            await service.ready(client)
            answer = await post(client, service.url("gitlab"), first, gitlab_headers(first))
            assert answer.status == 202

            async def checkpointed() -> bool:
                return state.exists() and b"95001" in state.read_bytes()

            await wait_for(lambda: service.settled(client, 1), 30, "the first alerts")
            await wait_for(checkpointed, 30, "a periodic checkpoint with the first event")
            await service.kill()

            service.start()
            await service.ready(client)
            for body in (second, later):
                answer = await post(client, service.url("gitlab"), body, gitlab_headers(body))
                assert answer.status == 202
            await wait_for(lambda: service.settled(client, 2), 30, "the alerts after the crash")
    finally:
        code = await service.stop()
    assert code == 0, service.output()
    delivered = receiver.delivered("/alerts")
    title = "GitLab Protected Branch Removed"
    assert alerts(delivered) == {(title, event): 1 for event in ("95001", "95002", "95003")}
    [twice] = [d for d in delivered if "window" in d]
    assert twice["rule"]["title"] == "Protected Branches Removed Twice By One Author Within An Hour"
    assert [e["id"] for e in twice["evidence"]] == ["95001", "95002"]
    assert twice["group"] == {"author_name": "mallory"}  # group keys compare case-insensitively


def worker_processes(service: int) -> list[int]:
    """The pids of the service's worker processes (its spawned children)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parent = stat.read_text().rsplit(")", 1)[1].split()[1]
            command = (stat.parent / "cmdline").read_bytes()
        except OSError:
            continue
        if parent == str(service) and b"spawn_main" in command:
            found.append(int(stat.parent.name))
    return found


@pytest.mark.timeout(120)
async def test_a_worker_process_that_dies_stops_the_service_with_an_error(
    tmp_path: Path, receiver: Receiver
) -> None:
    """At once, records or not."""
    config = service_config(tmp_path, [webhook_output("hooks", receiver.url("/alerts"))], ROUTES)
    config["service"]["workers"] = 2
    service = DetectorService(config, tmp_path)
    service.start()
    try:
        async with aiohttp.ClientSession() as client:
            await service.ready(client)
            assert service.process is not None
            workers = worker_processes(service.process.pid)
            assert len(workers) == 2
            os.kill(workers[0], signal.SIGKILL)
            await stopped_by_itself(service)
    finally:
        code = await service.stop()
    assert code == 1
    output = service.output()
    assert f"WorkerDiedError: worker 0 (pid {workers[0]}) ended: exit code -9" in output
    assert not Path(f"/proc/{workers[1]}").exists(), "the other worker is not left behind"


@pytest.mark.timeout(120)
async def test_the_workers_of_a_killed_service_exit(tmp_path: Path, receiver: Receiver) -> None:
    config = service_config(tmp_path, [webhook_output("hooks", receiver.url("/alerts"))], ROUTES)
    config["service"]["workers"] = 2
    service = DetectorService(config, tmp_path)
    service.start()
    async with aiohttp.ClientSession() as client:
        await service.ready(client)
    assert service.process is not None
    workers = worker_processes(service.process.pid)
    assert len(workers) == 2
    await service.kill()

    async def gone() -> bool:
        return not any(Path(f"/proc/{pid}").exists() for pid in workers)

    await wait_for(gone, 30, "the orphaned workers to exit")
