"""Generic webhook: the detection JSON, signed with the Standard Webhooks scheme.

`webhook-id` is the detection id, the same on every retry and after a restart, so the
receiver deduplicates on it; `webhook-timestamp` is the time of each attempt and the
signature (`v1,<base64 HMAC-SHA256>` of `id.timestamp.body`, computed by the
`standardwebhooks` library) covers the exact bytes sent. One attempt posts up to
`in_flight` detections at once, each in its own request with its own outcome.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from datetime import UTC, datetime

from standardwebhooks import Webhook

from detector.detections import Detection
from detector.sinks.base import Outcome
from detector.sinks.http import HttpSink


class WebhookSink(HttpSink):
    """POSTs `detection.to_json()` to `url`, signed with `secret` (`whsec_…`), up to
    `in_flight` at once."""

    def __init__(self, name: str, url: str, secret: str, in_flight: int = 1) -> None:
        super().__init__(name, url, secrets=[secret, secret.removeprefix("whsec_")])
        self._signer = Webhook(secret)
        self.batch_size = in_flight

    async def send_batch(self, detections: Sequence[Detection]) -> list[Outcome]:
        """Every detection posted at once; an outcome for each, in order."""
        return list(await asyncio.gather(*(self.send(detection) for detection in detections)))

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
