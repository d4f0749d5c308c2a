"""`detector run` reloads its rules without a restart, keeping the correlation state.

The service runs a Bitbucket rule and a correlation over it (two grants by one author
within an hour). A grant arrives; SIGHUP reloads the rules; a broken rule file is written
and refused, the running set goes on; the rule file is edited (a new title) and the
broken one removed, which the watcher picks up. The next grants alert under the new
title, and the correlation, unchanged through all of it, joins the grant from before the
reloads with one from after. With worker processes, each reload starts new ones with the
new rules.
"""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest

from tests.e2e.service_helpers import (
    BITBUCKET_RULE,
    ROUTES,
    DetectorService,
    Receiver,
    bitbucket_headers,
    bitbucket_permission_granted,
    post,
    service_config,
    wait_for,
    webhook_output,
)

TWICE = "5d0c2f7e-1b1a-4c3e-9f6a-7a8b9c0d1e2f"
CORRELATION = f"""\
title: Bitbucket Global Permission Granted Twice
id: {TWICE}
status: test
correlation:
  type: event_count
  rules: [0c6f3f0e-5b7c-4d52-9a8e-2f1d6c4b7a90]
  group-by: [author.name]
  timespan: 1h
  condition: {{gte: 2}}
  generate: true
level: high
"""
BROKEN_ID = "5d0c2f7e-1b1a-4c3e-9f6a-00000000dead"
BROKEN = f"""\
title: Broken
id: {BROKEN_ID}
logsource: {{product: bitbucket, service: audit}}
detection: {{condition: selection}}
"""
OLD_TITLE = "Bitbucket Global Permission Granted"
NEW_TITLE = "Bitbucket Global Permission Granted to a User"


def grant(second: int) -> bytes:
    """Bitbucket's `Global permission granted` record, `second` seconds after the fixture's."""
    record = orjson.loads(bitbucket_permission_granted())
    record["timestamp"]["epochSecond"] += second
    return orjson.dumps(record)


def log_lines(service: DetectorService) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in service.output().splitlines() if line.startswith("{")]


def messages(service: DetectorService, start: str) -> list[dict[str, Any]]:
    return [line for line in log_lines(service) if line["message"].startswith(start)]


@pytest.mark.timeout(120)
@pytest.mark.parametrize("workers", [1, 2], ids=["one process", "two worker processes"])
async def test_rules_reload_on_sighup_and_on_file_changes(tmp_path: Path, workers: int) -> None:
    rules = tmp_path / "rules"
    rules.mkdir()
    rule_file = rules / "permission.yml"
    rule_file.write_text(BITBUCKET_RULE)
    (rules / "twice.yml").write_text(CORRELATION)
    receiver = Receiver()
    await receiver.start()
    config = service_config(
        tmp_path,
        [webhook_output("siem", receiver.url("/siem"))],
        {"generic": ROUTES["generic"]},
    )
    config["rules"] = {"paths": [str(rules)]}
    config["correlation"]["allowed_lateness_seconds"] = 0
    config["service"]["workers"] = workers
    service = DetectorService(config, tmp_path)
    service.start()
    sent = 0
    try:
        async with aiohttp.ClientSession() as client:
            await service.ready(client)

            async def send(second: int) -> None:
                nonlocal sent
                body = grant(second)
                answer = await post(
                    client,
                    service.url("generic/bitbucket"),
                    body,
                    bitbucket_headers(body, f"m{second}"),
                )
                assert answer.status == 202
                sent += 1

                async def delivered() -> bool:
                    singles = [d for d in receiver.delivered("/siem") if "window" not in d]
                    return len(singles) == sent

                await wait_for(delivered, 30, f"the alert of grant {sent}")

            await send(0)

            assert service.process is not None
            service.process.send_signal(signal.SIGHUP)

            async def reloaded(times: int) -> bool:
                return len(messages(service, "rules reloaded")) == times

            await wait_for(lambda: reloaded(1), 30, "the reload on SIGHUP")
            [first] = messages(service, "rules reloaded")
            assert (first["kept"], first["changed"], first["removed"]) == ([TWICE], [], [])

            (rules / "broken.yml").write_text(BROKEN)

            async def refused() -> bool:
                return bool(messages(service, "rules not reloaded"))

            await wait_for(refused, 30, "the broken rule to be refused")
            [error] = messages(service, "rule not loaded")
            assert error["level"] == "ERROR"
            assert error["rule_id"] == BROKEN_ID
            assert error["path"] == str(rules / "broken.yml")
            assert error["reason"] == "No detections defined in Sigma rule"
            assert len(messages(service, "rules reloaded")) == 1

            rule_file.write_text(
                BITBUCKET_RULE.replace(f"title: {OLD_TITLE}\n", f"title: {NEW_TITLE}\n")
            )
            (rules / "broken.yml").unlink()
            await wait_for(lambda: reloaded(2), 30, "the reload on the edited rule file")
            assert messages(service, "rules reloaded")[1]["kept"] == [TWICE]

            await send(60)
            await send(120)  # releases the grant at 60 (no lateness): the correlation fires

            async def correlated() -> bool:
                return any("window" in d for d in receiver.delivered("/siem"))

            await wait_for(correlated, 30, "the correlation")
        assert await service.stop() == 0
    finally:
        if service.process is not None and service.process.poll() is None:
            await service.kill()
        await receiver.stop()

    detections = receiver.delivered("/siem")
    singles = [d["rule"]["title"] for d in detections if "window" not in d]
    assert singles == [OLD_TITLE, NEW_TITLE, NEW_TITLE]
    [twice] = [d for d in detections if "window" in d]
    assert twice["rule"]["id"] == TWICE
    assert twice["group"] == {"author.name": "admin"}
    first_grant, second_grant = (d["evidence"][0]["id"] for d in detections[:2])
    assert [e["id"] for e in twice["evidence"]] == [first_grant, second_grant]
    assert receiver.forged == 0
