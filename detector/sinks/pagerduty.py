"""PagerDuty Events API v2: one `trigger` per detection.

`dedup_key` is the detection id, so a redelivered detection updates the open alert
instead of opening a second one. Severity follows the rule level: critical → critical,
high → error, medium → warning, low and informational → info; a rule without a level
counts as medium. `source` names the audit sources of the evidence (PagerDuty wants
the affected system; the detection does not name one). The whole detection travels in
`custom_details`.
"""

from __future__ import annotations

from typing import Any

import orjson

from detector.detections import Detection, Level
from detector.sinks.base import Outcome
from detector.sinks.http import HttpSink
from detector.timestamps import format_timestamp

DEFAULT_URL = "https://events.pagerduty.com/v2/enqueue"
SEVERITY: dict[Level | None, str] = {
    "critical": "critical",
    "high": "error",
    "medium": "warning",
    None: "warning",
    "low": "info",
    "informational": "info",
}
#: PagerDuty's limit on `payload.summary`.
SUMMARY_LIMIT = 1024


def pagerduty_event(detection: Detection, routing_key: str) -> dict[str, Any]:
    """The Events API v2 body that triggers an alert for `detection`."""
    summary = detection.message
    if len(summary) > SUMMARY_LIMIT:
        summary = summary[: SUMMARY_LIMIT - 1] + "…"
    sources = sorted({evidence.source for evidence in detection.evidence})
    return {
        "routing_key": routing_key,
        "event_action": "trigger",
        "dedup_key": detection.id,
        "client": "detector",
        "payload": {
            "summary": summary,
            "source": ", ".join(sources) or "detector",
            "severity": SEVERITY[detection.rule.level],
            "timestamp": format_timestamp(detection.timestamp),
            "class": detection.rule.title,
            "custom_details": detection.to_dict(),
        },
    }


class PagerDutySink(HttpSink):
    """Triggers a PagerDuty alert per detection through the service's integration key."""

    def __init__(self, name: str, routing_key: str, url: str = DEFAULT_URL) -> None:
        super().__init__(name, url, secrets=[routing_key])
        self._routing_key = routing_key

    async def send(self, detection: Detection) -> Outcome:
        return await self.post(orjson.dumps(pagerduty_event(detection, self._routing_key)))
