"""How each route proves a request comes from its sender.

A credential is checked in two steps: `check_headers` before the body is read (the
whole check for bearer and verification tokens, so an unauthenticated client never
gets its body read; the presence of the signature for signed bodies), and
`check_body` once the body is in memory (the signature). Every comparison of secret
material is constant-time.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from collections.abc import Mapping
from typing import Protocol

from standardwebhooks.webhooks import EmptyWebhookSecretError, Webhook, WebhookVerificationError

from detector.secrets import SecretError

GITHUB_SIGNATURE = "X-Hub-Signature-256"
GITLAB_TOKEN = "X-Gitlab-Event-Streaming-Token"
WEBHOOK_ID = "webhook-id"
WEBHOOK_TIMESTAMP = "webhook-timestamp"
WEBHOOK_SIGNATURE = "webhook-signature"

#: `webhook-timestamp`: integer Unix seconds
_SECONDS = re.compile(r"[0-9]{1,12}")


class Credential(Protocol):
    """The check of one route's requests; `headers` is case-insensitive."""

    def check_headers(self, headers: Mapping[str, str]) -> bool: ...

    def check_body(self, headers: Mapping[str, str], body: bytes) -> bool: ...


def _same(given: str, expected: bytes) -> bool:
    # Header values may hold any byte (decoded with surrogateescape): compare bytes.
    return hmac.compare_digest(given.encode("utf-8", "surrogateescape"), expected)


class BearerToken:
    """`Authorization: Bearer <token>`, the `token` of the Kubernetes webhook kubeconfig."""

    def __init__(self, token: str) -> None:
        self._token = token.encode()

    def check_headers(self, headers: Mapping[str, str]) -> bool:
        scheme, _, value = headers.get("Authorization", "").partition(" ")
        return scheme.lower() == "bearer" and _same(value.strip(), self._token)

    def check_body(self, headers: Mapping[str, str], body: bytes) -> bool:
        return True


class HeaderToken:
    """A shared token sent as is in a header (GitLab's streaming verification token)."""

    def __init__(self, header: str, token: str) -> None:
        self._header = header
        self._token = token.encode()

    def check_headers(self, headers: Mapping[str, str]) -> bool:
        return _same(headers.get(self._header, ""), self._token)

    def check_body(self, headers: Mapping[str, str], body: bytes) -> bool:
        return True


class GitHubSignature:
    """`X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the raw body>`."""

    def __init__(self, secret: str) -> None:
        self._secret = secret.encode()

    def check_headers(self, headers: Mapping[str, str]) -> bool:
        return headers.get(GITHUB_SIGNATURE, "").startswith("sha256=")

    def check_body(self, headers: Mapping[str, str], body: bytes) -> bool:
        digest = hmac.new(self._secret, body, hashlib.sha256).hexdigest()
        return _same(headers.get(GITHUB_SIGNATURE, ""), f"sha256={digest}".encode())


class StandardWebhookSignature:
    """Standard Webhooks `v1` signatures, verified by the `standardwebhooks` library.

    The library accepts a timestamp up to five minutes away; `tolerance` (seconds, at
    most 300) narrows that window before the library runs.
    """

    def __init__(self, secret: str, tolerance: int) -> None:
        try:
            self._webhook = Webhook(secret)
        except (EmptyWebhookSecretError, ValueError) as exc:
            raise SecretError(f"not a Standard Webhooks signing secret: {exc}") from None
        self._tolerance = tolerance

    def check_headers(self, headers: Mapping[str, str]) -> bool:
        if not (headers.get(WEBHOOK_ID) and headers.get(WEBHOOK_SIGNATURE)):
            return False
        stamp = headers.get(WEBHOOK_TIMESTAMP, "")
        return bool(_SECONDS.fullmatch(stamp)) and abs(time.time() - int(stamp)) <= self._tolerance

    def check_body(self, headers: Mapping[str, str], body: bytes) -> bool:
        names = (WEBHOOK_ID, WEBHOOK_TIMESTAMP, WEBHOOK_SIGNATURE)
        signed = {name: headers.get(name, "") for name in names}
        try:
            self._webhook.verify(body, signed, json_parse=False)
        except (WebhookVerificationError, ValueError):  # ValueError: malformed or not UTF-8
            return False
        return True
