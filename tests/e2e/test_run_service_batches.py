"""`detector run` takes what has come in as a batch: the records of a JSON-lines body
(and of many bodies) are processed in their order, and a bad record among them is
dead-lettered with its reason and bytes while the ones after it go on."""

from __future__ import annotations

from pathlib import Path

import aiohttp
import orjson
import pytest

from detector.config import DEFAULT_RULES
from tests.e2e.service_helpers import (
    DetectorService,
    Metrics,
    gitlab_event,
    post,
    service_config,
    wait_for,
)
from tests.intake.support import BITBUCKET_WHSEC, standard_headers

PROTECTED_BRANCH_REMOVED = DEFAULT_RULES / "gitlab" / "gitlab_protected_branch_removed.yml"
#: GitLab records through a log forwarder: JSON lines, signed with Standard Webhooks.
ROUTES = {"generic": {"gitlab": {"secret": {"env": "BITBUCKET_WHSEC"}}}}
BODIES = 4
LINES = 50  # per body; every seventh is bad


def body(number: int) -> tuple[bytes, list[str], list[bytes]]:
    """A JSON-lines body: the event ids it should alert on, in order, and its bad lines
    (not JSON, or JSON that is no GitLab audit event)."""
    lines, ids, bad = [], [], []
    for line in range(LINES):
        event_id = str(100_000 + number * LINES + line)
        if line % 7 == 3:
            record = b"{not json " + event_id.encode()
            bad.append(record)
        elif line % 7 == 5:
            record = orjson.dumps({"unrelated": event_id})
            bad.append(record)
        else:
            record = gitlab_event(event_id)
            ids.append(event_id)
        lines.append(record)
    return b"\n".join(lines) + b"\n", ids, bad


@pytest.mark.timeout(120)
@pytest.mark.parametrize("workers", [1, 2], ids=["one process", "two worker processes"])
async def test_records_are_processed_in_order_and_bad_ones_dead_lettered_with_reasons(
    tmp_path: Path, workers: int
) -> None:
    output = tmp_path / "alerts.jsonl"
    config = service_config(
        tmp_path, [{"name": "file", "type": "file", "path": str(output)}], ROUTES
    )
    config["rules"] = {"paths": [str(PROTECTED_BRANCH_REMOVED)]}
    config["service"]["workers"] = workers
    service = DetectorService(config, tmp_path)
    expected: list[str] = []
    bad: list[bytes] = []
    try:
        async with aiohttp.ClientSession() as client:
            service.start()
            await service.ready(client)
            for number in range(BODIES):
                data, ids, wrong = body(number)
                expected += ids
                bad += wrong
                headers = standard_headers(data, BITBUCKET_WHSEC, f"msg_batch{number}")
                answer = await post(client, service.url("generic/gitlab"), data, headers)
                assert answer.status == 202, answer.text
                assert orjson.loads(answer.text) == {"accepted": LINES}
            await wait_for(
                lambda: service.settled(client, BODIES * LINES), 60, "every record processed"
            )
            metrics: Metrics = await service.metrics(client)
    finally:
        code = await service.stop()
    assert code == 0, service.output()
    alerted = [orjson.loads(line)["evidence"][0]["id"] for line in output.read_bytes().splitlines()]
    assert alerted == expected
    letters = [orjson.loads(line) for line in (tmp_path / "dead.jsonl").read_bytes().splitlines()]
    assert sorted(letter["original"].encode() for letter in letters) == sorted(bad)
    for letter in letters:
        assert letter["origin"].startswith("http:gitlab:msg_batch"), letter
        if letter["original"].startswith("{not json"):
            assert letter["reason"].startswith("not JSON: "), letter
        else:
            assert letter["reason"] == "gitlab: no created_at or time", letter
    assert metrics.value("detector_dead_letters_total") == len(bad)
    assert metrics.value("detector_events_normalized_total", source="gitlab") == len(expected)
