"""Generic webhook: the detection JSON, signed with the Standard Webhooks scheme.

`webhook-id` is the detection id, the same on every retry and after a restart, so the
receiver deduplicates on it; `webhook-timestamp` is the time of each attempt and the
signature (`v1,<base64 HMAC-SHA256>` of `id.timestamp.body`, computed by the
`standardwebhooks` library) covers the exact bytes sent.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

from standardwebhooks import Webhook

from detector.detections import Detection
from detector.sinks.base import Outcome
from detector.sinks.http import HttpSink


class WebhookSink(HttpSink):
    """POSTs `detection.to_json()` to `url`, signed with `secret` (`whsec_…`)."""

    def __init__(self, name: str, url: str, secret: str) -> None:
        super().__init__(name, url, secrets=[secret, secret.removeprefix("whsec_")])
        self._signer = Webhook(secret)

    async def send(self, detection: Detection) -> Outcome:
        body = detection.to_json()
        timestamp = int(time.time())
        signature = self._signer.sign(
            detection.id, datetime.fromtimestamp(timestamp, UTC), body.decode("utf-8")
        )
        return await self.post(
            body,
            {
                "webhook-id": detection.id,
                "webhook-timestamp": str(timestamp),
                "webhook-signature": signature,
            },
        )
