"""Helpers of the intake tests: secrets, settings, the running server, senders' signatures."""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry
from standardwebhooks.webhooks import Webhook

from detector.config import SourcesSettings
from detector.intake.queue import RecordQueue
from detector.intake.server import IntakeServer
from detector.intake.settings import IntakeSettings
from detector.normalize.builtin import build_registry
from detector.normalize.declared import DeclaredSource
from detector.sources.records import RawRecord

FIXTURES = Path(__file__).parents[1] / "fixtures" / "sources"

K8S_TOKEN = "k8s-bearer-7Qm2vX9pLr4TgW"
GITLAB_TOKEN = "gitlab-stream-3Jf8sKq1WzYe"
GITHUB_SECRET = "github-hook-9Hd2mNc5PbUa"
GITHUB_WHSEC = "whsec_" + base64.b64encode(b"generic-github-signing-key-0001").decode()
BITBUCKET_WHSEC = "whsec_" + base64.b64encode(b"generic-bitbucket-signing-key-02").decode()
ENVIRON = {
    "K8S_TOKEN": K8S_TOKEN,
    "GITLAB_TOKEN": GITLAB_TOKEN,
    "GITHUB_SECRET": GITHUB_SECRET,
    "GITHUB_WHSEC": GITHUB_WHSEC,
    "BITBUCKET_WHSEC": BITBUCKET_WHSEC,
}
#: every secret-bearing value a test sends or configures, for the log checks
SECRETS = (K8S_TOKEN, GITLAB_TOKEN, GITHUB_SECRET, GITHUB_WHSEC, BITBUCKET_WHSEC)

SOURCES = build_registry(SourcesSettings(declared=[DeclaredSource(name="bitbucket")])).names


def fixture(relative: str) -> bytes:
    return (FIXTURES / relative).read_bytes()


def intake_settings(**overrides: Any) -> IntakeSettings:
    """Every route enabled, its secret from `ENVIRON`, on an ephemeral port."""
    values: dict[str, Any] = {
        "port": 0,
        "kubernetes": {"secret": {"env": "K8S_TOKEN"}},
        "gitlab": {"secret": {"env": "GITLAB_TOKEN"}},
        "github": {"secret": {"env": "GITHUB_SECRET"}},
        "generic": {
            "github": {"secret": {"env": "GITHUB_WHSEC"}},
            "bitbucket": {"secret": {"env": "BITBUCKET_WHSEC"}},
        },
    }
    values.update(overrides)
    return IntakeSettings(**values)


@dataclass
class Running:
    server: IntakeServer
    queue: RecordQueue
    registry: CollectorRegistry
    url: str

    def metric(self, name: str, **labels: str) -> float | None:
        return self.registry.get_sample_value(name, labels)

    async def take_all(self) -> list[RawRecord]:
        """Everything queued, oldest first (never waits: only what is there)."""
        return [await self.queue.get() for _ in range(len(self.queue))]


StartIntake = Callable[..., Awaitable[Running]]


def github_headers(
    body: bytes,
    event: str = "workflow_job",
    delivery: str = "72d3162e-cc78-11e3-81ab-4c9367dc0958",
    secret: str = GITHUB_SECRET,
) -> dict[str, str]:
    """What GitHub sends with a webhook delivery."""
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return {
        "Content-Type": "application/json",
        "User-Agent": "GitHub-Hookshot/044aadd",
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": delivery,
        "X-GitHub-Hook-ID": "292430182",
        "X-Hub-Signature-256": f"sha256={digest}",
    }


def standard_headers(
    body: bytes,
    secret: str,
    msg_id: str = "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W",
    when: datetime | None = None,
) -> dict[str, str]:
    """Standard Webhooks headers, signed by the reference library."""
    when = when or datetime.now(UTC)
    signature = Webhook(secret).sign(msg_id, when, body.decode())
    return {
        "Content-Type": "application/json",
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(when.timestamp())),
        "webhook-signature": signature,
    }
