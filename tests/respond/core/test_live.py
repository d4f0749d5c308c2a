"""Responders in the live service and in replay, through their real entry points: the
intake and `/actions` over HTTP, and `detector replay --playbooks` on the command line."""

from __future__ import annotations

import asyncio
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
import yaml
from aiohttp import web
from click.testing import CliRunner, Result

from detector.cli import main
from detector.config import DEFAULT_RULES, Settings
from detector.respond.factory import open_responder
from detector.respond.playbooks import Playbook
from detector.runtime.service import Service
from tests.intake.support import GITHUB_SECRET, github_headers
from tests.respond.core.counting import RULE, FakeSystem, detection, serving

ROOT = Path(__file__).resolve().parents[3]
RUNNER_RULE = DEFAULT_RULES / "github" / "github_self_hosted_runner_registered.yml"
#: a GitHub audit-log record that the runner rule matches
RUNNER_REGISTERED = {
    "@timestamp": 1740962467000,
    "_document_id": "WF73XmfuJy35MIGJJv1QT7",
    "action": "repo.register_self_hosted_runner",
    "actor": "mallory-dev",
    "actor_ip": "203.0.113.77",
    "org": "octo-org",
    "repo": "octo-org/payments-ui",
    "created_at": 1740962467000,
}
APPROVER_TOKEN = "approver-token-Xk2pQ9vN4mZ8"
PLAYBOOK = {
    "name": "runner",
    "match": {"rules": ["f8ecccfd-74e2-43bc-9a89-44056b65ef57"], "min_level": "low"},
    "actions": [
        {"action": "test.block", "with": {"user": "{{ event['user.name'] }}"}, "mode": "auto"},
        {"action": "test.wipe", "with": {"user": "{{ actor }}"}},
    ],
}


def _files(tmp_path: Path, url: str) -> dict[str, Any]:
    rules = tmp_path / "rules"
    rules.mkdir()
    shutil.copy(RUNNER_RULE, rules)
    playbooks = tmp_path / "playbooks"
    playbooks.mkdir()
    (playbooks / "runner.yml").write_text(yaml.safe_dump(PLAYBOOK))
    return {
        "rules": {"paths": [str(rules)], "watch": False},
        "intake": {"port": 0, "github": {"secret": {"env": "GITHUB_SECRET"}}},
        "sinks": {"outbox_dir": str(tmp_path / "outbox")},
        "service": {
            "dead_letter": str(tmp_path / "dead.jsonl"),
            "staging_output": str(tmp_path / "staged.jsonl"),
            "metrics_port": None,
        },
        "responders": {
            "playbooks": [str(playbooks)],
            "state": str(tmp_path / "state.sqlite3"),
            "audit": str(tmp_path / "actions.jsonl"),
            "systems": {"test": {"url": url}},
            "approvers": [{"name": "alice", "token": {"env": "APPROVER_TOKEN"}}],
        },
    }


async def _until(condition: Callable[[], bool], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {seconds}s: {what}")
        await asyncio.sleep(0.02)


@pytest.mark.parametrize("workers", [1, 2], ids=["one process", "two worker processes"])
async def test_the_service_responds_and_takes_decisions_over_http(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, workers: int
) -> None:
    """The playbook's templates see the event, also when worker processes matched it."""
    monkeypatch.setenv("APPROVER_TOKEN", APPROVER_TOKEN)
    monkeypatch.setenv("GITHUB_SECRET", GITHUB_SECRET)
    system = FakeSystem()
    async with serving(system) as url:
        files = _files(tmp_path, url)
        files["service"]["workers"] = workers
        service = Service(Settings.model_validate(files))
        await service.start()
        consumer = asyncio.create_task(service.consume())
        base = f"http://127.0.0.1:{service.intake.port}"
        auth = {"Authorization": f"Bearer {APPROVER_TOKEN}"}
        try:
            async with aiohttp.ClientSession() as client:
                body = orjson.dumps(RUNNER_REGISTERED)
                for _ in range(2):  # a redelivery changes nothing
                    headers = github_headers(body, event="audit_log")
                    async with client.post(
                        f"{base}/intake/github", data=body, headers=headers
                    ) as r:
                        assert r.status == 202
                await _until(lambda: system.blocked == {"mallory-dev"}, 10, "the user blocked")

                async with client.get(f"{base}/actions") as response:
                    assert response.status == 401
                async with client.get(
                    f"{base}/actions", params={"status": "pending"}, headers=auth
                ) as response:
                    [pending] = await response.json()
                assert (pending["action"], pending["targets"][0]["name"]) == (
                    "test.wipe",
                    "mallory-dev",
                )
                approve = f"{base}/actions/{pending['id']}/approve"
                wrong = {"Authorization": "Bearer approver-token-wrong"}
                async with client.post(approve, headers=wrong) as response:
                    assert response.status == 401
                async with client.post(approve, headers=auth, data=b"x" * 5000) as response:
                    assert response.status == 413
                assert system.calls["wipe"] == 0
                async with client.post(approve, headers=auth) as response:
                    assert response.status == 200
                    records = await response.json()
                assert [(r["status"], r["actor"]) for r in records] == [
                    ("approved", "alice"),
                    ("running", "alice"),
                    ("executed", "alice"),
                ]
                async with client.post(approve, headers=auth) as response:
                    assert response.status == 409
                async with client.post(f"{base}/actions/0123456789ab/reject", headers=auth) as r:
                    assert r.status == 404
        finally:
            service.request_stop()
            await service.stop(consumer)
    assert system.calls["block"] == 1
    assert system.calls["wipe"] == 1
    trail = [orjson.loads(line) for line in (tmp_path / "actions.jsonl").read_bytes().splitlines()]
    assert [(r["action"], r["status"]) for r in trail] == [
        ("test.block", "running"),
        ("test.block", "executed"),
        ("test.wipe", "pending"),
        ("test.wipe", "approved"),
        ("test.wipe", "running"),
        ("test.wipe", "executed"),
    ]


async def test_a_replay_with_playbooks_calls_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    system = FakeSystem()
    async with serving(system) as url:
        files = _files(tmp_path, url)
        config = tmp_path / "detector.yml"
        config.write_text(yaml.safe_dump(files))
        log = tmp_path / "audit.jsonl"
        log.write_bytes(orjson.dumps(RUNNER_REGISTERED) + b"\n")
        actions = tmp_path / "planned.jsonl"
        arguments = [
            "replay",
            str(log),
            "--config",
            str(config),
            "--rules",
            files["rules"]["paths"][0],
            "--playbooks",
            files["responders"]["playbooks"][0],
            "--actions-output",
            str(actions),
            "--dead-letter",
            str(tmp_path / "dead.jsonl"),
        ]
        result = await asyncio.to_thread(CliRunner().invoke, main, arguments)
        assert result.exit_code == 0, result.output
    assert system.calls.total() == 0
    planned = [orjson.loads(line) for line in actions.read_bytes().splitlines()]
    assert [(r["action"], r["status"], r["would_run"]) for r in planned] == [
        ("test.block", "planned", "auto"),
        ("test.wipe", "planned", "approve"),
    ]
    assert planned[0]["parameters"] == {"user": "mallory-dev"}
    assert "nothing executed" in result.output


async def test_decisions_from_the_command_line(tmp_path: Path) -> None:
    system = FakeSystem()
    async with serving(system) as url:
        files = _files(tmp_path, url)
        files["responders"]["approvers"] = []
        config = tmp_path / "detector.yml"
        config.write_text(yaml.safe_dump(files))
        settings = Settings.model_validate(files).responders
        responder = open_responder(settings)
        step = {"action": "test.block", "with": {"user": "{{ actor }}"}, "mode": "approve"}
        playbook = {"name": "twice", "match": {"rules": [RULE.id]}, "actions": [step, step]}
        responder.playbooks = [Playbook.model_validate(playbook)]
        first, second = await responder.handle(detection(1))
        responder.close()

        def cli(*arguments: str) -> Result:
            return CliRunner().invoke(main, [*arguments, "--config", str(config)])

        listed = await asyncio.to_thread(cli, "actions", "list", "--status", "pending", "--json")
        assert first.id[:12] in listed.output and second.id[:12] in listed.output
        refused = await asyncio.to_thread(cli, "actions", "approve", second.id[:12], "--as", "bob")
        assert refused.exit_code == 1
        assert "comes first" in refused.output
        approved = await asyncio.to_thread(cli, "actions", "approve", first.id[:12], "--as", "bob")
        assert approved.exit_code == 0, approved.output
        assert "executed test.block by bob" in approved.output
        assert system.blocked == {"mallory"}
        undone = await asyncio.to_thread(cli, "actions", "undo", first.id[:12], "--as", "bob")
        assert undone.exit_code == 0, undone.output
        assert system.blocked == set()
        rejected = await asyncio.to_thread(cli, "actions", "reject", second.id[:12], "--as", "eve")
        assert "rejected test.block by eve" in rejected.output
    assert system.calls["block"] == 1


def test_config_check_describes_the_responders(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GITHUB_SECRET", GITHUB_SECRET)
    config = tmp_path / "detector.yml"
    config.write_text(yaml.safe_dump(_files(tmp_path, "http://127.0.0.1:9")))
    missing = CliRunner().invoke(main, ["config", "check", str(config)])
    assert missing.exit_code == 1
    assert "APPROVER_TOKEN is missing or empty" in missing.output
    monkeypatch.setenv("APPROVER_TOKEN", APPROVER_TOKEN)
    result = CliRunner().invoke(main, ["config", "check", str(config)])
    assert result.exit_code == 0, result.output
    assert "responders: 1 playbooks" in result.output
    assert "  systems: test" in result.output
    assert "  approver alice: token from the environment variable APPROVER_TOKEN" in result.output
    assert APPROVER_TOKEN not in result.output


async def test_replaying_an_incident_plans_the_shipped_playbooks_and_sends_nothing(
    tmp_path: Path,
) -> None:
    calls: list[str] = []

    async def record(request: web.Request) -> web.Response:
        calls.append(f"{request.method} {request.path}")
        return web.json_response({})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", record)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    config = tmp_path / "detector.yml"
    config.write_text(
        yaml.safe_dump(
            {
                "responders": {
                    "systems": {name: {"url": url} for name in ("github", "kubernetes")},
                    "protected": [{"system": "github", "name": "octo-org/payments-ui/*"}],
                }
            }
        )
    )
    actions = tmp_path / "actions.jsonl"
    scenarios = ROOT / "replay"
    command = [
        *(sys.executable, "-m", "detector", "replay"),
        *(
            str(scenarios / "03-image-swap" / "logs"),
            str(scenarios / "04-deployment-hijack" / "logs"),
            str(scenarios / "05-rogue-runner" / "logs"),
        ),
        *("--config", str(config), "--playbooks", str(ROOT / "playbooks")),
        *("--actions-output", str(actions), "--dead-letter", str(tmp_path / "dead.jsonl")),
    ]
    try:
        done = await asyncio.create_subprocess_exec(
            *command, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE
        )
        _, err = await asyncio.wait_for(done.communicate(), 240)
    finally:
        await runner.cleanup()
    assert done.returncode == 0, err.decode()
    assert calls == []
    planned = {
        (r["action"], r["status"], r.get("would_run"))
        for r in map(orjson.loads, actions.read_bytes().splitlines())
    }
    assert ("kubernetes.lock_service_account", "planned", "approve") in planned
    # Argo CD's Request-level rollout names no GitOps object: nothing to suspend, scale only
    assert ("kubernetes.suspend_gitops", "failed", None) in planned
    assert ("kubernetes.scale_to_zero", "planned", "approve") in planned
    # the runner's repository is protected: the run is not cancelled, even in a replay
    assert ("github.cancel_run", "refused", None) in planned
