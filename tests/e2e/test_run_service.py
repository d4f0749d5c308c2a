"""`detector run` end to end: a subprocess with a real intake, rules and a signed webhook sink.

A GitLab streaming delivery goes in over HTTP; the detection comes out at a local
webhook receiver that verifies its Standard Webhooks signature. Wrong credentials get
401, and no secret appears in what the service prints.
"""

from __future__ import annotations

import asyncio
import base64
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp import web
from standardwebhooks.webhooks import Webhook

GITLAB_TOKEN = "gl-stream-token-4f0c9a2e"
WEBHOOK_SECRET = "whsec_" + base64.b64encode(b"detector-e2e-signing-key-32bytes").decode()
EVENT = {
    "id": "91001",
    "author_id": 17,
    "entity_id": 204,
    "entity_type": "Project",
    "details": {
        "author_name": "Mallory",
        "author_class": "User",
        "target_id": 88,
        "target_type": "ProtectedBranch",
        "target_details": "main",
        "custom_message": "Unprotected branch main",
        "ip_address": "198.51.100.23",
        "entity_path": "acme/payments",
        "event_name": "protected_branch_removed",
    },
    "ip_address": "198.51.100.23",
    "author_name": "Mallory",
    "entity_path": "acme/payments",
    "target_details": "main",
    "created_at": "2026-11-26T09:10:58.020Z",
    "target_type": "ProtectedBranch",
    "target_id": 88,
    "event_type": "protected_branch_removed",
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def wait_for(condition: Any, deadline: float, what: str) -> None:
    """Poll `condition()` until it holds; fail with `what` after `deadline` seconds."""
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        if await condition():
            return
        await asyncio.sleep(0.05)
    pytest.fail(f"timed out waiting for {what}")


@pytest.mark.timeout(120)
async def test_a_gitlab_delivery_becomes_a_signed_alert(tmp_path: Path) -> None:
    received: list[dict[str, Any]] = []
    verifier = Webhook(WEBHOOK_SECRET)

    async def receive(request: web.Request) -> web.Response:
        body = await request.read()
        verifier.verify(body, dict(request.headers))  # raises on a bad signature
        assert request.headers["webhook-id"] == orjson.loads(body)["id"]
        received.append(orjson.loads(body))
        return web.Response(status=204)

    receiver = web.Application()
    receiver.router.add_post("/alerts", receive)
    runner = web.AppRunner(receiver)
    await runner.setup()
    receiver_port = free_port()
    await web.TCPSite(runner, "127.0.0.1", receiver_port).start()

    intake_port = free_port()
    config = tmp_path / "detector.yml"
    config.write_text(
        f"""
intake:
  port: {intake_port}
  gitlab: {{secret: {{env: E2E_GITLAB_TOKEN}}}}
sinks:
  outbox_dir: {tmp_path / "outbox"}
  outputs:
    - name: hooks
      type: webhook
      url: http://127.0.0.1:{receiver_port}/alerts
      secret: {{env: E2E_WEBHOOK_SECRET}}
      retry: {{base: 0.05, cap: 0.2, deadline: 60}}
service:
  dead_letter: {tmp_path / "dead.jsonl"}
  staging_output: {tmp_path / "staging.jsonl"}
  metrics_port: null
correlation:
  checkpoint: {tmp_path / "state.json"}
""",
        encoding="utf-8",
    )
    environ = {**os.environ, "E2E_GITLAB_TOKEN": GITLAB_TOKEN, "E2E_WEBHOOK_SECRET": WEBHOOK_SECRET}
    process = subprocess.Popen(
        [sys.executable, "-m", "detector", "run", "--config", str(config)],
        env=environ,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{intake_port}"
    try:
        async with aiohttp.ClientSession() as client:

            async def ready() -> bool:
                assert process.poll() is None, "detector run exited early"
                try:
                    async with client.get(f"{base}/readyz") as response:
                        return response.status == 200
                except aiohttp.ClientConnectionError:
                    return False

            await wait_for(ready, 60, "the service to be ready")
            body = orjson.dumps(EVENT)
            url = f"{base}/intake/gitlab"
            headers = {"X-Gitlab-Event-Streaming-Token": "wrong"}
            async with client.post(url, data=body, headers=headers) as response:
                assert response.status == 401
            headers = {"X-Gitlab-Event-Streaming-Token": GITLAB_TOKEN}
            async with client.post(url, data=body, headers=headers) as response:
                assert response.status == 202

            async def alerted() -> bool:
                return any(d["rule"]["title"] == "Protected Branch Removed" for d in received)

            await wait_for(alerted, 30, "the signed alert")
    finally:
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=60)
        await runner.cleanup()
    assert process.returncode == 0, output.decode()
    detection = next(d for d in received if d["rule"]["title"] == "Protected Branch Removed")
    assert detection["evidence"][0]["actor"] == "Mallory"
    assert len({d["id"] for d in received}) == len(received), "each alert delivered once"
    text = output.decode()
    assert GITLAB_TOKEN not in text and WEBHOOK_SECRET not in text
    assert (tmp_path / "state.json").exists(), "the correlation state is checkpointed on stop"
