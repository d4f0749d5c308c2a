"""Sending vendor records to a running service's intake the way each vendor does: the
route of each source and its credential (detector/intake/auth.py)."""

from __future__ import annotations

import asyncio
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

#: answers that mean "later": a full queue, a service shutting down or starting
RETRY_STATUSES = frozenset({429, 503})
MAX_ATTEMPTS = 30


def _retry_after(header: str | None) -> float:
    """Seconds from a `Retry-After` header (1 s when absent or a date), at most 30."""
    try:
        return min(max(float(header or 1), 0.0), 30.0)
    except ValueError:
        return 1.0


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
        """Post one record; a full queue (429) or a restart (503) is retried after the
        `Retry-After` the intake asks for, signed anew (signatures carry their time)."""
        route = route_of(source)
        url = f"{self.base}/intake/{route}"
        for attempt in range(1, MAX_ATTEMPTS + 1):
            body, headers = self._request(route, data, self.secrets[route])
            async with self.session.post(url, data=body, headers=headers, ssl=self.tls) as answer:
                if answer.status == 202:
                    return
                text = (await answer.text())[:200]
                if answer.status not in RETRY_STATUSES or attempt == MAX_ATTEMPTS:
                    raise IntakeError(
                        f"/intake/{route} answered {answer.status} (attempt {attempt}): {text}"
                    )
                wait = _retry_after(answer.headers.get("Retry-After"))
            await asyncio.sleep(wait)

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
