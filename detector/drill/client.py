"""Sending vendor records to a running service's intake the way each vendor does: the
route of each source and its credential (detector/intake/auth.py)."""

from __future__ import annotations

import hashlib
import hmac
import ssl
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime

import aiohttp
import orjson
from standardwebhooks.webhooks import Webhook

from detector.intake.app import GITHUB_DELIVERY, GITHUB_EVENT
from detector.intake.auth import (
    GITHUB_SIGNATURE,
    GITLAB_TOKEN,
    WEBHOOK_ID,
    WEBHOOK_SIGNATURE,
    WEBHOOK_TIMESTAMP,
)


class IntakeError(RuntimeError):
    """The intake refused a record (the message says which and why)."""


def route_of(source: str) -> str:
    """The intake route a source's records are posted to: the vendor push routes where a
    vendor pushes (Kubernetes audit webhook, GitLab streaming, GitHub webhooks for
    Actions), Standard Webhooks (`generic/<source>`) for the others."""
    if source in ("kubernetes", "gitlab"):
        return source
    if source == "github_actions":
        return "github"
    return f"generic/{source}"


class IntakeClient:
    """Posts one record at a time to `base` (`https://host:port`), signed with the secret
    of its route from `secrets` (route → secret); `tls` trusts the service's CA and may
    carry a client certificate (routes that require one)."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        base: str,
        secrets: Mapping[str, str],
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self.session = session
        self.base = base.rstrip("/")
        self.secrets = secrets
        self.tls: ssl.SSLContext | bool = tls if tls is not None else True

    async def send(self, source: str, data: bytes) -> None:
        route = route_of(source)
        body, headers = self._request(route, data, self.secrets[route])
        url = f"{self.base}/intake/{route}"
        async with self.session.post(url, data=body, headers=headers, ssl=self.tls) as answer:
            if answer.status != 202:
                text = (await answer.text())[:200]
                raise IntakeError(f"/intake/{route} answered {answer.status}: {text}")

    @staticmethod
    def _request(route: str, data: bytes, secret: str) -> tuple[bytes, dict[str, str]]:
        json = {"Content-Type": "application/json"}
        if route == "kubernetes":  # the audit webhook posts an EventList
            record = orjson.loads(data)
            if record.get("kind") != "EventList":
                data = orjson.dumps(
                    {"kind": "EventList", "apiVersion": "audit.k8s.io/v1", "items": [record]}
                )
            return data, {**json, "Authorization": f"Bearer {secret}"}
        if route == "gitlab":
            return data, {**json, GITLAB_TOKEN: secret}
        if route == "github":
            record = orjson.loads(data)
            event = "workflow_job" if "workflow_job" in record else "workflow_run"
            digest = hmac.new(secret.encode(), data, hashlib.sha256).hexdigest()
            return data, {
                **json,
                GITHUB_EVENT: event,
                GITHUB_DELIVERY: str(uuid.uuid4()),
                GITHUB_SIGNATURE: f"sha256={digest}",
            }
        message_id = f"msg_{uuid.uuid4().hex}"
        now = datetime.now(UTC)
        signature = Webhook(secret).sign(message_id, now, data.decode())
        content = json if data.lstrip().startswith((b"{", b"[")) else {"Content-Type": "text/plain"}
        return data, {
            **content,
            WEBHOOK_ID: message_id,
            WEBHOOK_TIMESTAMP: str(int(now.timestamp())),
            WEBHOOK_SIGNATURE: signature,
        }
